"""Run an ONNX artifact (``vla export --format onnx``) with onnxruntime: no flax, optax or orbax, and no jax.export.

:class:`vla_sdk.export.runtime.OnnxArtifactPolicy` is ``ArtifactPolicy`` with this module's :class:`OnnxGraph`
(onnxruntime) in place of the StableHLO call: the same manifest checks, the same one transform
(:class:`vla_sdk.transforms.PolicyTransform`) from raw observation to the graph's inputs and back, the same
:class:`vla_sdk.protocols.Policy` interface, so ``vla eval``, ``vla run``, ``vla serve`` and ``Policy.load`` take it
like any policy (``load_artifact`` dispatches on ``manifest["function"]["format"]``).

The graph takes its sampling noise as an input (see :mod:`vla_sdk.export.onnx_build`); it is drawn as
``jax.random.normal(fold_in(key(seed), call_index), [1, T, A])``, the noise ``Policy`` and the StableHLO artifact
draw, so the same seed gives the same actions. jax is still imported (by the core: the transform's resize and the
model config), but nothing of it runs the network. onnxruntime is the optional extra ``vla-sdk[onnx]``.
"""

from __future__ import annotations

import hashlib

import jax
import numpy as np

from vla_sdk.errors import RuntimeFailure
from vla_sdk.export.artifact import ArtifactError

# sha256 of model.onnx -> InferenceSession (thread-safe for run): reloading the same artifact reuses it
_SESSIONS: dict[str, object] = {}
_SESSIONS_KEPT = 4


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError as e:
        raise RuntimeFailure(
            f"this artifact is an ONNX graph and needs onnxruntime, which is not installed ({e}); install it with "
            "pip install 'vla-sdk[onnx]', or re-export the policy with the default format (--format stablehlo)"
        ) from None
    return onnxruntime


def session(model: bytes, where: str, threads: int = 0):
    """An onnxruntime CPU session of ``model`` (cached by its SHA-256); ``threads`` 0: onnxruntime's default."""
    key = hashlib.sha256(model).hexdigest()
    if threads == 0 and key in _SESSIONS:
        return _SESSIONS[key]
    ort = _onnxruntime()
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only (not the optimizer's notes on unused initializers)
    # onnxruntime fuses DequantizeLinear + MatMul into MatMulNBits, by default computing with int8 activations
    # (accuracy level 4): 1.5x the action error of the JAX int8 artifact on vla-m. Level 1 computes in float32, as
    # the JAX function does: weight-only quantization, the same actions.
    options.add_session_config_entry("session.qdq_matmulnbits_accuracy_level", "1")
    # no busy-waiting worker threads: on a shared or small CPU spinning costs more than it saves (vla-m, 2 cores:
    # p50 16.6 -> 10.5 ms)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
    try:
        sess = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - any failure: this onnxruntime cannot run the graph
        raise ArtifactError(
            f"{where}: onnxruntime {ort.__version__} cannot load model.onnx: {type(e).__name__}: {e}"
        ) from e
    if threads == 0:
        while len(_SESSIONS) >= _SESSIONS_KEPT:
            _SESSIONS.pop(next(iter(_SESSIONS)))
        _SESSIONS[key] = sess
    return sess


class OnnxGraph:
    """The ONNX artifact's function: ``graph(inputs, key_or_noise) -> model actions [1, T, A]`` (normalized, padded)
    on the prepared inputs of :meth:`vla_sdk.export.runtime.ArtifactPolicy.inputs`, with the noise drawn from a JAX
    key as the StableHLO function draws it, or given as an array [1, T, A]."""

    def __init__(self, manifest: dict, model: bytes, where: str, threads: int = 0):
        fn = manifest["function"]
        self.session = session(model, where, threads)
        want = [i["name"] for i in fn["inputs"]]
        have = [i.name for i in self.session.get_inputs()]
        if have != want:
            raise ArtifactError(f"{where}: model.onnx takes inputs {have}, the manifest says {want}")
        self.names = want
        shape = tuple(fn["inputs"][-1]["shape"])
        self._normal = jax.jit(lambda key: jax.random.normal(key, shape))

    def __call__(self, inputs: list[np.ndarray], noise) -> np.ndarray:
        if isinstance(noise, jax.Array) and jax.dtypes.issubdtype(noise.dtype, jax.dtypes.prng_key):
            noise = self._normal(noise)
        feeds = dict(zip(self.names, [*inputs, np.asarray(noise, np.float32)], strict=True))
        return self.session.run(None, feeds)[0]
