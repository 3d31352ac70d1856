"""`vla export --format onnx`: the inference function as an ONNX graph (converted by jax2onnx), for onnxruntime.

The graph is the function the StableHLO artifact holds (normalized inputs -> action chunk; preprocessing stays in
:class:`vla_sdk.transforms.PolicyTransform`), with two differences:

* the weights are initializers inside the graph (``model.onnx`` is self-contained: any ONNX tool can open it), so
  the artifact has no ``weights.npz``. int8 kernels are stored as int8 initializers, each feeding a
  ``DequantizeLinear`` node (one float32 scale per output channel, ``axis`` = the last axis): the QDQ weight-only
  form that onnxruntime (and TensorRT) run. Activations stay float32.
* the sampling noise is an explicit input, ``noise`` float32 [1, T, A]: an ONNX graph has no JAX random key. The
  ONNX runtime draws it as ``jax.random.normal(fold_in(key(seed), call_index), [1, T, A])``, which is what
  ``Policy`` and the StableHLO artifact draw inside their function, so one seed gives the same actions from all
  three. The Euler loop of the flow head is unrolled (``flow_steps`` decoder passes), as in JAX.

Inputs: ``image_<camera>`` uint8 [1, H, W, 3] per camera in config order, ``state`` float32 [1, S] (normalized,
zero-padded), ``state_mask`` bool [1, S], ``tokens`` int32 [1, L], ``token_mask`` bool [1, L], ``action_mask``
bool [1, A], ``noise`` float32 [1, T, A]; output ``actions`` float32 [1, T, A]. Batch 1, fixed shapes.

jax2onnx, onnx and onnxruntime are the optional extra ``vla-sdk[onnx]``; nothing here is imported by the package
unless ``--format onnx`` is asked for. A primitive jax2onnx cannot convert is an :class:`OnnxUnsupported` naming it
and the layer (source line) that uses it.
"""

from __future__ import annotations

import collections
import logging
import re

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from vla_sdk.errors import InputError, RuntimeFailure
from vla_sdk.export.artifact import ONNX_FUNCTION
from vla_sdk.export.quantize import dequantize
from vla_sdk.model import VLA, ModelConfig, as_observation
from vla_sdk.model.heads import FlowHead, dim_mask

ONNX_MODES = ("none", "int8")
OPSET = 23  # jax2onnx's default; DequantizeLinear with per-axis float32 scales needs >= 13
INSTALL = "pip install 'vla-sdk[onnx]'"


class OnnxUnsupported(InputError):
    """The policy uses a layer jax2onnx cannot express: export it with the default format (StableHLO)."""


def require(what: str = "vla export --format onnx"):
    """``(jax2onnx, onnx)``, or a clear error naming the extra to install."""
    try:
        logging.getLogger("jax2onnx").setLevel(logging.ERROR)  # it logs every optional plugin it cannot import
        import jax2onnx
        import onnx
    except ImportError as e:
        raise RuntimeFailure(
            f"{what} needs jax2onnx and onnx, which are not installed ({e}); install them with {INSTALL}, "
            "or export with the default format (--format stablehlo)"
        ) from None
    return jax2onnx, onnx


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("jax2onnx")
    except PackageNotFoundError:
        return "(unknown version)"


def check_onnx_mode(mode: str) -> str:
    if mode not in ONNX_MODES:
        raise InputError(
            f"--format onnx supports --quantize {' or '.join(ONNX_MODES)}, not {mode!r}; "
            "bf16 and int4 artifacts use the default format (--format stablehlo)"
        )
    return mode


def sample_with_noise(vla: VLA, obs: dict, noise: jax.Array) -> jax.Array:
    """``vla.sample_actions`` with the initial noise given instead of drawn from a key (the Euler loop of
    :meth:`vla_sdk.model.heads.FlowHead.sample`, unrolled as there; the L1 head draws nothing)."""
    head = vla.head
    if not isinstance(head, FlowHead):
        return vla.sample_actions(obs, jax.random.key(0))  # deterministic head: the key is unused
    prefix, mask = vla.encode_prefix(as_observation(obs))
    kvs = head.decoder.context_kv(prefix)
    b, steps = prefix.shape[0], vla.config.flow_steps
    dims = dim_mask(obs["action_mask"], b, noise.shape[-1])
    dt = 1.0 / steps
    x = jnp.where(dims, noise, 0.0)
    for i in range(steps):
        t = jnp.full((b,), 1.0 - i * dt, jnp.float32)
        x = jnp.where(dims, x - dt * head.velocity(x, t, kvs, mask), 0.0)
    return x


def _input_specs(cfg: ModelConfig, cameras: tuple[str, ...]) -> list[tuple[str, tuple, str]]:
    s, a, length = cfg.state_dim, cfg.action_dim, cfg.max_tokens
    specs = [(f"image_{c}", (1, *cfg.image_size, 3), "uint8") for c in cameras]
    specs += [("state", (1, s), "float32"), ("state_mask", (1, s), "bool"), ("tokens", (1, length), "int32")]
    specs += [("token_mask", (1, length), "bool"), ("action_mask", (1, a), "bool")]
    return specs + [("noise", (1, cfg.horizon, a), "float32")]


def inference_function(cfg: ModelConfig, treedef, qmeta: dict, stored: dict, cameras: tuple[str, ...]):
    """``fn(*images, state, state_mask, tokens, token_mask, action_mask, noise) -> actions [1, T, A]`` with the
    stored (quantized) weights as constants, dequantized inside."""
    model = nnx.eval_shape(lambda: VLA(cfg, rngs=nnx.Rngs(0)))
    graphdef, template, rest = nnx.split(model, nnx.Param, ...)
    tensors = qmeta["tensors"]  # insertion order = tree order
    cams = tuple(cameras)  # the robot's camera slots; the model's others stay masked out

    def fn(*args):
        *images, state, state_mask, tokens, token_mask, action_mask, noise = args
        leaves = [
            dequantize(info, {x: jnp.asarray(stored[f"{n}.{x}"]) for x in info["arrays"]})
            for n, info in tensors.items()
        ]
        state_vars = jax.tree.map(lambda x: x, template)
        nnx.replace_by_pure_dict(state_vars, jax.tree_util.tree_unflatten(treedef, leaves))
        vla = nnx.merge(graphdef, state_vars, rest)
        obs = {
            "images": dict(zip(cams, images, strict=True)),
            "image_masks": {c: jnp.ones((1,), bool) for c in cams},
            "state": state,
            "state_mask": state_mask,
            "tokens": tokens,
            "token_mask": token_mask,
            "action_mask": action_mask,
        }
        return sample_with_noise(vla, obs, noise)

    return fn


def _where(fn, avals, primitive: str) -> str:
    """The source line (and function) of the first use of ``primitive`` in ``fn``'s jaxpr, innermost first."""
    from jax._src import source_info_util
    from jax.extend.core import jaxprs_in_params

    try:
        closed = jax.make_jaxpr(fn)(*avals)
    except Exception:  # noqa: BLE001 - only for the message
        return "unknown layer"

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == primitive:
                return eqn
            for sub in jaxprs_in_params(eqn.params):
                found = walk(sub)
                if found is not None:
                    return found
        return None

    eqn = walk(closed.jaxpr)
    return "unknown layer" if eqn is None else source_info_util.summarize(eqn.source_info)


def to_qdq(model) -> int:
    """Rewrite ``Mul(Cast(int8 initializer), per-channel scale)`` into ``DequantizeLinear`` (axis = last); returns
    how many weights were rewritten. Any other pattern is left as jax2onnx wrote it (still correct)."""
    import onnx
    from onnx import helper, numpy_helper

    g = model.graph
    inits = {i.name: i for i in g.initializer}
    consumers = collections.defaultdict(list)
    for node in g.node:
        for name in node.input:
            consumers[name].append(node)
    replace, drop, scales = {}, set(), {}
    for cast in g.node:
        if (
            cast.op_type != "Cast"
            or cast.input[0] not in inits
            or inits[cast.input[0]].data_type != onnx.TensorProto.INT8
        ):
            continue
        to = next((a.i for a in cast.attribute if a.name == "to"), None)
        users = consumers[cast.output[0]]
        if to != onnx.TensorProto.FLOAT or len(users) != 1 or users[0].op_type != "Mul":
            continue
        mul = users[0]
        other = mul.input[1] if mul.input[0] == cast.output[0] else mul.input[0]
        dims = list(inits[cast.input[0]].dims)
        if other not in inits or other == cast.output[0] or not dims:
            continue
        scale = numpy_helper.to_array(inits[other])
        if scale.dtype != np.float32 or scale.size != dims[-1] or (scale.ndim and scale.shape[-1] != dims[-1]):
            continue
        name = f"{cast.input[0]}_scale"
        scales[name] = numpy_helper.from_array(scale.reshape(-1), name)
        dq = helper.make_node(
            "DequantizeLinear", [cast.input[0], name], [mul.output[0]], name=f"{cast.input[0]}_dq", axis=len(dims) - 1
        )
        replace[id(mul)], drop = dq, drop | {id(cast)}
    nodes = [replace.get(id(n), n) for n in g.node if id(n) not in drop]
    del g.node[:]
    g.node.extend(nodes)
    g.initializer.extend(scales.values())
    used = {name for n in g.node for name in n.input} | {o.name for o in g.output}
    kept = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(kept)
    return len(replace)


def trace_onnx(cfg: ModelConfig, treedef, qmeta: dict, stored: dict, cameras: tuple[str, ...]) -> tuple[bytes, dict]:
    """The serialized ONNX model of the inference function and the manifest's ``function`` section."""
    jax2onnx, onnx = require()
    check_onnx_mode(qmeta["mode"])
    fn = inference_function(cfg, treedef, qmeta, stored, cameras)
    specs = _input_specs(cfg, cameras)
    avals = [jax.ShapeDtypeStruct(sh, np.dtype(dt)) for _, sh, dt in specs]
    try:
        model = jax2onnx.to_onnx(
            fn, avals, model_name="vla_sdk_policy", opset=OPSET, input_names=[n for n, _, _ in specs],
            output_names=["actions"],
        )  # fmt: skip
    except NotImplementedError as e:
        m = re.search(r"primitive '([^']+)'", str(e))
        what = f"primitive {m.group(1)!r} (used at {_where(fn, avals, m.group(1))})" if m else f"a layer ({e})"
        raise OnnxUnsupported(
            f"--format onnx: jax2onnx {_version()} cannot express {what} of this policy; "
            "export it with the default format (--format stablehlo), which runs every JAX operation"
        ) from e
    except Exception as e:  # noqa: BLE001 - any converter failure is "this policy cannot be ONNX"
        raise OnnxUnsupported(
            f"--format onnx: jax2onnx {_version()} failed to convert this policy "
            f"({type(e).__name__}: {e}); export it with the default format (--format stablehlo)"
        ) from e
    qdq = to_qdq(model) if qmeta["mode"] == "int8" else 0
    int8 = sum(info["mode"] == "int8" for info in qmeta["tensors"].values())
    onnx.checker.check_model(model)
    ops = collections.Counter(n.op_type for n in model.graph.node)
    section = {
        "format": "onnx",
        "file": ONNX_FUNCTION,
        "opset": OPSET,
        "jax2onnx_version": _version(),
        "onnx_version": onnx.__version__,
        "weights": [],  # initializers inside the graph
        "dequantize_linear": {"weights": qdq, "int8_tensors": int8},
        "op_counts": dict(sorted(ops.items())),
        "inputs": [{"name": n, "shape": list(sh), "dtype": dt} for n, sh, dt in specs],
        "output": {"name": "actions", "shape": [1, cfg.horizon, cfg.action_dim], "dtype": "float32"},
    }
    return model.SerializeToString(), section
