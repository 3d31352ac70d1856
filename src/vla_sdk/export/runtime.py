"""Run an exported artifact: numpy, jax and the standard library only (no flax, optax, orbax or vla_sdk.model).

``policy = load_artifact("policy.vla")`` verifies the file (format version, every SHA-256; see
:mod:`vla_sdk.export.artifact`) and returns an :class:`ArtifactPolicy`, a drop-in for :class:`vla_sdk.policy.Policy`
wherever a policy is driven (``vla_sdk.runner.PolicyRunner``, evaluation, replay): ``policy(obs) -> [T, A_robot]``
with ``.cameras``, ``.image_size``, ``.horizon``, ``.robot``, ``.reset(seed)`` and ``.transform`` (``action_names``,
``robot_dim``). The preprocessing is the same as :mod:`vla_sdk.transforms`, re-implemented from the manifest:
cameras bound by name, antialiased bilinear resize only when sizes differ, byte tokenizer, normalization with the
checkpoint's statistics, zero padding with masks; and back: slice to the robot's dimensions and unnormalize.
Sampling noise is ``fold_in(key(seed), call_index)``, as ``Policy``, so the same seed gives the same actions.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace

import jax
import numpy as np

from vla_sdk.errors import InputError
from vla_sdk.export.artifact import ArtifactError, read_artifact

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


def _normalize_text(text: str) -> str:
    return " ".join(text.lower().split())


class ArtifactTransform:
    """Raw observation -> the exported function's input arrays; model actions -> raw robot actions."""

    def __init__(self, manifest: dict):
        cfg = manifest["model_config"]
        self.cameras = tuple(cfg["cameras"])
        self.image_size = int(cfg["image_size"])
        self.state_dim, self.action_dim = int(cfg["state_dim"]), int(cfg["action_dim"])
        self.action_names = list(manifest["action_names"])
        self.robot_dim = len(self.action_names)
        norm = manifest["normalization"]
        self.state_mean, self.state_std = (np.asarray(norm["state"][k], np.float32) for k in ("mean", "std"))
        self.action_mean, self.action_std = (np.asarray(norm["action"][k], np.float32) for k in ("mean", "std"))
        delta = manifest.get("delta_mask")  # absent in artifacts from before delta actions: absolute
        self.delta = np.asarray(delta, bool) if delta and any(delta) else None
        tok = manifest["tokenizer"]
        self.max_len, self.pad_id, self.bos_id, self.eos_id = (int(tok[k]) for k in ("max_len", "pad", "bos", "eos"))

    def check_cameras(self, given) -> None:
        expected = list(self.cameras)
        if sorted(given) != sorted(expected):
            raise InputError(
                f"cameras do not match the policy: expected {expected}, given {sorted(given)} "
                f"(missing {sorted(set(expected) - set(given))}, extra {sorted(set(given) - set(expected))})"
            )

    def tokens(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """[BOS, utf-8 bytes..., EOS, PAD...] of the normalized text (tail bytes cut, never inside a character)."""
        body = _normalize_text(text).encode("utf-8")
        limit = self.max_len - 2
        if len(body) > limit:
            end = limit
            while end > 0 and (body[end] & 0xC0) == 0x80:
                end -= 1
            body = body[:end]
        ids = np.full(self.max_len, self.pad_id, np.int32)
        n = len(body) + 2
        ids[0], ids[n - 1] = self.bos_id, self.eos_id
        ids[1 : n - 1] = np.frombuffer(body, np.uint8)
        return ids[None], (np.arange(self.max_len) < n)[None]

    def resize(self, image: np.ndarray, camera: str) -> np.ndarray:
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
            raise InputError(f"camera {camera!r}: expected one uint8 image [h, w, 3], got {image.dtype}{image.shape}")
        size = self.image_size
        if image.shape[:2] == (size, size):
            return image[None]
        out = jax.image.resize(image.astype(np.float32), (size, size, 3), method="linear", antialias=True)
        return np.clip(np.round(np.asarray(out)), 0, 255).astype(np.uint8)[None]

    def pad(self, x: np.ndarray, width: int) -> np.ndarray:
        out = np.zeros((1, width), np.float32)
        out[0, : x.shape[-1]] = x
        return out

    def observation(self, images: dict, state, instruction: str) -> list[np.ndarray]:
        """Inputs in the exported function's order: images per camera, state, state mask, tokens, token mask,
        action mask (batch 1)."""
        self.check_cameras(images)
        state = np.asarray(state, np.float32)
        if state.shape != (self.robot_dim,):
            raise InputError(
                f"state has shape {state.shape}, expected ({self.robot_dim},) ({', '.join(self.action_names)}); "
                "an exported policy takes one observation at a time"
            )
        if not isinstance(instruction, str):
            raise TypeError(f"instruction must be a string, got {type(instruction).__name__}")
        state = ((state - self.state_mean) / self.state_std).astype(np.float32)
        tokens, token_mask = self.tokens(instruction)
        return [
            *(self.resize(images[c], c) for c in self.cameras),
            self.pad(state, self.state_dim),
            (np.arange(self.state_dim) < self.robot_dim)[None],
            tokens,
            token_mask,
            (np.arange(self.action_dim) < self.robot_dim)[None],
        ]

    def unactions(self, model_actions, state: np.ndarray) -> np.ndarray:
        """Model output [..., T, A] and the (raw) state it was predicted from -> raw robot actions [..., T, A_robot]."""
        a = np.asarray(model_actions, np.float32)[..., : self.robot_dim]
        raw = (a * self.action_std + self.action_mean).astype(np.float32)
        if self.delta is not None:  # arm dims were predicted relative to the state
            raw = raw + np.where(self.delta, np.asarray(state, np.float32), 0.0)[..., None, :].astype(np.float32)
        return raw


def _platform_names() -> set[str]:
    platform = jax.devices()[0].platform
    return {"cuda", "rocm"} if platform == "gpu" else {platform}


class ArtifactPolicy:
    """``policy(obs) -> actions [T, A_robot]`` from an exported artifact; see the module docstring."""

    def __init__(self, manifest: dict, weights: dict[str, np.ndarray], function: bytes, seed: int = 0, where=""):
        where = where or "artifact"
        self.manifest = self.meta = manifest
        cfg = manifest["model_config"]  # fields read as on a ModelConfig (no vla_sdk.model import here)
        self.config = SimpleNamespace(**{**cfg, "cameras": tuple(cfg["cameras"])}, to_dict=lambda: dict(cfg))
        self.embodiment = manifest.get("embodiment") or {}
        self.transform = ArtifactTransform(manifest)
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
        self._impl = manifest["rng"]["impl"]
        self.reset(seed)

    @property
    def cameras(self) -> tuple[str, ...]:
        return self.transform.cameras

    @property
    def image_size(self) -> int:
        return self.transform.image_size

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

    def reset(self, seed: int) -> None:
        """Sampling noise as a function of (seed, call index), as :meth:`vla_sdk.policy.Policy.reset`."""
        self._rng, self.calls = jax.random.key(seed, impl=self._impl), 0

    def sample(self, inputs: list[np.ndarray]) -> np.ndarray:
        """The exported function on prepared inputs: model actions [1, T, A] (normalized, padded)."""
        key = jax.random.key_data(jax.random.fold_in(self._rng, self.calls))
        self.calls += 1
        return np.asarray(self._fn(*self._weights, *inputs, key))

    def __call__(self, obs: dict) -> np.ndarray:
        inputs = self.transform.observation(obs["images"], obs["state"], obs["instruction"])
        return self.transform.unactions(self.sample(inputs), obs["state"])[0]


def load_artifact(path: str | Path, seed: int = 0) -> ArtifactPolicy:
    """Read, verify and load an exported artifact (``vla export``)."""
    art = read_artifact(path)
    return ArtifactPolicy(art.manifest, art.weights, art.function, seed, where=str(path))
