"""Run an exported artifact: numpy, jax and the flax-free core only (no flax, optax or orbax).

``policy = load_artifact("policy.vla")`` verifies the file (format version, every SHA-256; see
:mod:`vla_sdk.export.artifact`) and returns an :class:`ArtifactPolicy`, a drop-in for :class:`vla_sdk.policy.Policy`
wherever a policy is driven (``vla_sdk.runner.PolicyRunner``, evaluation, replay): ``policy(obs) -> [T, A_robot]``
with ``.cameras``, ``.image_size``, ``.horizon``, ``.robot``, ``.reset(seed)`` and ``.transform`` (``action_names``,
``robot_dim``): the :class:`vla_sdk.protocols.Policy` interface. The preprocessing IS :mod:`vla_sdk.transforms`'
``PolicyTransform``, built from the manifest's model config, action names, statistics and delta mask (cameras bound
by name, antialiased bilinear resize only when sizes differ, byte tokenizer, normalization, zero padding with masks;
and back: slice to the robot's dimensions and unnormalize), so training, the checkpoint policy and the artifact share
one code path.
Sampling noise is ``fold_in(key(seed), call_index)``, as ``Policy``, so the same seed gives the same actions.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import jax
import numpy as np

from vla_sdk.errors import InputError
from vla_sdk.export.artifact import ArtifactError, read_artifact
from vla_sdk.model.config import ModelConfig
from vla_sdk.model.tokenizer import BOS, EOS, PAD
from vla_sdk.multi_robot import for_robot
from vla_sdk.transforms import PolicyTransform

# sha256 of sample.stablehlo -> (Exported, its jitted call): loading the same artifact again (a server reloading it,
# an evaluation of several copies) reuses the compiled function; the weights are arguments, not constants.
_CALLS: dict[str, tuple] = {}
_CALLS_KEPT = 4


def _compiled(function: bytes, where: str, manifest: dict):
    key = hashlib.sha256(function).hexdigest()
    if key in _CALLS:
        return _CALLS[key]
    try:
        exported = jax.export.deserialize(bytearray(function))
    except Exception as e:  # noqa: BLE001 - any failure: this jax cannot load the function
        raise ArtifactError(
            f"{where}: cannot deserialize sample.stablehlo with jax {jax.__version__} (exported with jax "
            f"{manifest.get('jax_version')}): {type(e).__name__}: {e}"
        ) from e
    if not _platform_names() & set(exported.platforms):
        raise ArtifactError(
            f"{where}: exported for {list(exported.platforms)}, this machine runs {sorted(_platform_names())}; "
            "re-export with --platforms including it"
        )
    while len(_CALLS) >= _CALLS_KEPT:
        _CALLS.pop(next(iter(_CALLS)))
    _CALLS[key] = exported, jax.jit(exported.call)
    return _CALLS[key]


def _platform_names() -> set[str]:
    platform = jax.devices()[0].platform
    return {"cuda", "rocm"} if platform == "gpu" else {platform}


class ArtifactPolicy:
    """``policy(obs) -> actions [T, A_robot]`` from an exported artifact; see the module docstring."""

    def __init__(self, manifest: dict, weights: dict[str, np.ndarray], function: bytes, seed: int = 0, where=""):
        where = where or "artifact"
        self._describe(manifest, where)
        fn = manifest["function"]
        arrays = []
        for spec in fn["weights"]:
            a = weights.get(spec["name"])
            if a is None:
                raise ArtifactError(f"{where}: weights.npz has no array {spec['name']!r}")
            if list(a.shape) != spec["shape"] or str(a.dtype) != spec["dtype"]:
                raise ArtifactError(
                    f"{where}: weights.npz {spec['name']!r} is {a.dtype}{list(a.shape)}, "
                    f"the function takes {spec['dtype']}{spec['shape']}"
                )
            arrays.append(a)
        _, self._fn = _compiled(function, where, manifest)
        self._weights = [jax.device_put(a) for a in arrays]
        self.reset(seed)

    def _describe(self, manifest: dict, where: str) -> None:
        """What every artifact format shares: config, the one transform, tokenizer check, embodiment, rng."""
        self.manifest = self.meta = manifest
        try:
            self.config = ModelConfig.from_dict(manifest["model_config"])
            # the one transform (vla_sdk.transforms), with the statistics the checkpoint trained with
            self.transform = PolicyTransform(
                self.config,
                manifest["action_names"],
                manifest["stats"],
                manifest.get("delta_mask"),
                manifest.get("cameras"),  # the robot's camera slots (all of the model's when absent)
            )
        except (InputError, TypeError) as e:
            raise ArtifactError(f"{where}: the manifest does not describe a policy this vla-sdk can run: {e}") from e
        tok, have = manifest["tokenizer"], self.transform.tokenizer
        want = {"max_len": have.max_len, "pad": PAD, "bos": BOS, "eos": EOS}
        if {k: tok.get(k) for k in want} != want:
            raise ArtifactError(f"{where}: tokenizer {tok} is not this vla-sdk's byte tokenizer {want}")
        self.embodiment = manifest.get("embodiment") or {}
        self._input_dtypes = [np.dtype(i["dtype"]) for i in manifest["function"]["inputs"]]
        self._impl = manifest["rng"]["impl"]

    @property
    def cameras(self) -> tuple[str, ...]:
        return self.transform.cameras

    @property
    def image_size(self) -> tuple[int, int]:
        return self.config.image_size

    @property
    def horizon(self) -> int:
        return int(self.config.horizon)

    @property
    def robot(self) -> str | None:
        return self.embodiment.get("name")

    @property
    def execute(self) -> int | None:
        """Actions to execute per chunk, carried from the checkpoint; None: the runner's default."""
        return self.manifest.get("execute")

    def reset(self, seed: int, calls: int = 0) -> None:
        """Sampling noise as a function of (seed, call index), as :meth:`vla_sdk.policy.Policy.reset`."""
        self._rng, self.calls = jax.random.key(seed, impl=self._impl), calls

    def sample(self, inputs: list[np.ndarray]) -> np.ndarray:
        """The exported function on prepared inputs: model actions [1, T, A] (normalized, padded)."""
        key = jax.random.key_data(jax.random.fold_in(self._rng, self.calls))
        self.calls += 1
        return np.asarray(self._fn(*self._weights, *inputs, key))

    def inputs(self, obs: dict) -> list[np.ndarray]:
        """The exported function's inputs (batch 1, in its order) from one raw observation, by the one transform."""
        state = np.asarray(obs["state"], np.float32)
        if state.ndim != 1:
            raise InputError(
                f"state has shape {state.shape}, expected ({self.transform.robot_dim},) "
                f"({', '.join(self.transform.action_names)}); an exported policy takes one observation at a time"
            )
        if not isinstance(obs["instruction"], str):
            raise InputError(f"instruction must be a string, got {type(obs['instruction']).__name__}")
        m = self.transform.observation(obs["images"], state, obs["instruction"])
        arrays = [m["images"][c] for c in self.cameras]
        arrays += [m["state"], m["state_mask"], m["tokens"], m["token_mask"], m["action_mask"]]
        return [np.asarray(x, dt) for x, dt in zip(arrays, self._input_dtypes, strict=False)]

    def __call__(self, obs: dict) -> np.ndarray:
        return self.transform.unactions(self.sample(self.inputs(obs)), obs["state"])[0]


class OnnxArtifactPolicy(ArtifactPolicy):
    """An ONNX artifact (``vla export --format onnx``): the same checks, transform and interface as
    :class:`ArtifactPolicy`, onnxruntime in place of the StableHLO call (:mod:`vla_sdk.export.onnx_runtime`), the
    noise drawn from the same per-call key and passed to the graph."""

    def __init__(self, manifest: dict, model: bytes, seed: int = 0, where: str = "", threads: int = 0):
        from vla_sdk.export.onnx_runtime import OnnxGraph

        where = where or "artifact"
        self._describe(manifest, where)
        self._graph = OnnxGraph(manifest, model, where, threads)
        self.reset(seed)

    def sample(self, inputs: list[np.ndarray], noise: np.ndarray | None = None) -> np.ndarray:
        """The graph on prepared inputs: model actions [1, T, A]; ``noise`` [1, T, A] instead of the seeded draw
        (the call index advances either way)."""
        key = jax.random.fold_in(self._rng, self.calls)
        self.calls += 1
        return self._graph(inputs, key if noise is None else noise)


def load_artifact(path: str | Path, seed: int = 0, robot: str | None = None) -> ArtifactPolicy:
    """Read, verify and load an exported artifact (``vla export``; either format, by the manifest); ``robot``:
    the robot it is to act for, checked against the one it was exported for."""
    art = read_artifact(path)
    for_robot(art.manifest, robot, where=str(path))
    if art.manifest["function"].get("format") == "onnx":  # vla export --format onnx: onnxruntime runs it
        return OnnxArtifactPolicy(art.manifest, art.function, seed, where=str(path))
    return ArtifactPolicy(art.manifest, art.weights, art.function, seed, where=str(path))
