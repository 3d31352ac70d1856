"""`vla export`: a checkpoint -> one self-contained artifact (see :mod:`vla_sdk.export.artifact` for the layout).

The inference function is traced from the Flax model at export time and serialized with ``jax.export``::

    fn(*weights, *images, state, state_mask, tokens, token_mask, action_mask, key_data) -> actions [1, T, A]

``weights`` are the stored arrays in ``manifest["function"]["weights"]`` order (quantized values and scales);
dequantization (int8 * scale, unpacked int4 * scale, bfloat16 bits -> float32) happens inside the function, so
quantized weights travel and sit in memory quantized. ``images`` are uint8 [1, H, W, 3] per camera in config order;
``state`` is normalized and zero-padded [1, S]; masks are bool; ``key_data`` is the uint32 data of the sampling key
(``jax.random.key_data``). Batch size 1, fixed shapes. ``format="onnx"`` (``--format onnx``) writes the same
function as an ONNX graph instead (:mod:`vla_sdk.export.onnx_build`: weights inside the graph, noise an input).
Before writing, the artifact is loaded in memory by the runtime and compared with the float checkpoint policy (the
accuracy report) and timed (the latency profile); both go into the manifest.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import vla_sdk
from vla_sdk.errors import InputError
from vla_sdk.export import artifact as A
from vla_sdk.export.gate import compare, gate_frames
from vla_sdk.export.quantize import check_mode, dequantize, quantize_params
from vla_sdk.export.runtime import ArtifactPolicy
from vla_sdk.model import VLA, ModelConfig
from vla_sdk.model.tokenizer import BOS, EOS, PAD
from vla_sdk.multi_robot import for_robot
from vla_sdk.policy import Policy
from vla_sdk.transforms import STD_FLOOR, Normalizer

DEFAULT_PLATFORMS = ("cpu", "cuda")
FORMATS = ("stablehlo", "onnx")  # the function's serialization: jax.export (default) or ONNX (jax2onnx)


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    return fmt


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray | np.generic | jax.Array):
        return np.asarray(x).tolist()
    return x


def check_meta(meta: dict, where: str) -> None:
    for key in ("model_config", "action_names"):
        if key not in meta:
            raise InputError(f"{where}: the checkpoint's meta has no {key!r}; it cannot be exported")
    stats = meta.get("stats") or {}
    missing = [k for k in ("observation.state", "action") if k not in stats]
    if missing:
        raise InputError(
            f"{where}: the checkpoint has no normalization statistics for {missing} (meta 'stats'); an exported "
            "policy needs them to normalize states and unnormalize actions. Re-save it from a training run"
        )


def _named(params: dict) -> tuple[list[tuple[str, np.ndarray]], object]:
    flat, treedef = jax.tree_util.tree_flatten_with_path(params)
    names = [".".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path) for path, _ in flat]
    return [(n, np.asarray(v, np.float32)) for n, (_, v) in zip(names, flat, strict=True)], treedef


def trace_function(
    cfg: ModelConfig, treedef, qmeta: dict, stored: dict, platforms, cameras: tuple[str, ...]
) -> tuple[bytes, dict]:
    """Serialized ``jax.export`` of the inference function and the manifest's ``function`` section; it takes the
    images of ``cameras`` (the robot's camera slots: a slot no camera of this robot fills stays masked out)."""
    model = nnx.eval_shape(lambda: VLA(cfg, rngs=nnx.Rngs(0)))
    graphdef, template, rest = nnx.split(model, nnx.Param, ...)
    tensors = qmeta["tensors"]  # insertion order = tree order
    weight_keys = [f"{n}.{s}" for n, info in tensors.items() for s in info["arrays"]]
    cams, s, a, length = tuple(cameras), cfg.state_dim, cfg.action_dim, cfg.max_tokens
    impl = str(jax.random.key_impl(jax.random.key(0)))
    key_shape = jax.random.key_data(jax.random.key(0)).shape

    def fn(*args):
        weights, (*images, state, state_mask, tokens, token_mask, action_mask, key_data) = (
            args[: len(weight_keys)],
            args[len(weight_keys) :],
        )
        by_key = dict(zip(weight_keys, weights, strict=True))
        leaves = [dequantize(info, {x: by_key[f"{n}.{x}"] for x in info["arrays"]}) for n, info in tensors.items()]
        params = jax.tree_util.tree_unflatten(treedef, leaves)
        state_vars = jax.tree.map(lambda x: x, template)
        nnx.replace_by_pure_dict(state_vars, params)
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
        return vla.sample_actions(obs, jax.random.wrap_key_data(key_data, impl=impl))

    sd = jax.ShapeDtypeStruct
    inputs = [(f"image:{c}", (1, *cfg.image_size, 3), "uint8") for c in cams]
    inputs += [("state", (1, s), "float32"), ("state_mask", (1, s), "bool"), ("tokens", (1, length), "int32")]
    inputs += [("token_mask", (1, length), "bool"), ("action_mask", (1, a), "bool")]
    inputs += [("key_data", key_shape, "uint32")]
    avals = [sd(stored[k].shape, stored[k].dtype) for k in weight_keys] + [sd(sh, dt) for _, sh, dt in inputs]
    exported = jax.export.export(jax.jit(fn), platforms=tuple(platforms))(*avals)
    section = {
        "file": A.FUNCTION,
        "platforms": list(exported.platforms),
        "calling_convention_version": exported.calling_convention_version,
        "weights": [{"name": k, "shape": list(stored[k].shape), "dtype": str(stored[k].dtype)} for k in weight_keys],
        "inputs": [{"name": n, "shape": list(sh), "dtype": dt} for n, sh, dt in inputs],
        "output": {"name": "actions", "shape": [1, cfg.horizon, a], "dtype": "float32"},
    }
    return exported.serialize(), {"section": section, "impl": impl}


def latency_profile(policy, obs: dict, runs: int) -> dict:
    for _ in range(2):  # compile and warm up
        policy(obs)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        policy(obs)
        times.append(1000 * (time.perf_counter() - t))
    dev = jax.devices()[0]
    return {
        "p50": float(np.percentile(times, 50)),
        "p99": float(np.percentile(times, 99)),
        "mean": float(np.mean(times)),
        "runs": runs,
        "what": "one policy call: preprocessing + exported function + unnormalization, batch 1",
        "platform": dev.platform,
        "device": dev.device_kind,
        "cpu_count": os.cpu_count(),
        "machine": f"{platform.system()} {platform.machine()}",
    }


def export_policy(
    params: dict,
    meta: dict,
    out: str | Path,
    quantize: str = "none",
    *,
    source: str = "checkpoint",
    platforms=DEFAULT_PLATFORMS,
    gate_count: int = 32,
    latency_runs: int = 30,
    seed: int = 0,
    reference: Policy | None = None,
    format: str = "stablehlo",
    robot: str | None = None,
) -> tuple[dict, Policy, ArtifactPolicy]:
    """Export ``(params, meta)`` (as :func:`vla_sdk.checkpoint.read_checkpoint` returns them) to ``out``.

    ``reference``: the float policy of the same checkpoint, when the caller has one (saves a compile).
    ``gate_count`` / ``latency_runs`` 0 skip the accuracy report / latency profile (tests; `vla export` keeps both).
    ``format``: ``"stablehlo"`` (jax.export; every mode) or ``"onnx"`` (jax2onnx; none or int8, ``platforms`` unused).
    ``robot``: the robot the artifact is for (a checkpoint of several robots exports one at a time).
    Returns the export summary and both policies (float checkpoint, loaded artifact) for further checks.
    """
    check_mode(quantize)
    if check_format(format) == "onnx":
        from vla_sdk.export import onnx_build

        onnx_build.require()
        onnx_build.check_onnx_mode(quantize)
    meta = for_robot(meta, robot, source)
    check_meta(meta, source)
    float_policy = reference or Policy(params, meta, seed)
    cfg = float_policy.config
    if cfg.env_state_dim:  # the object-position readout is a training target only: inference never calls it
        params = {k: v for k, v in params.items() if k != "env_readout"}
        cfg = dataclasses.replace(cfg, env_state_dim=0)
    named, treedef = _named(params)
    stored, qmeta = quantize_params(named, quantize)
    if format == "onnx":
        impl = str(jax.random.key_impl(jax.random.key(0)))
        blob, fn = onnx_build.trace_onnx(cfg, treedef, qmeta, stored, float_policy.cameras)
        fn = {"section": fn, "impl": impl}
    else:
        blob, fn = trace_function(cfg, treedef, qmeta, stored, platforms, float_policy.cameras)
    keys = {"state": "observation.state", "action": "action"}
    norms = {k: Normalizer.from_stats(meta["stats"], key) for k, key in keys.items()}
    manifest = {
        "format": A.FORMAT,
        "format_version": A.FORMAT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "vla_sdk_version": vla_sdk.__version__,
        "jax_version": jax.__version__,
        "source": {"checkpoint": source, "step": (meta.get("metrics") or {}).get("step")},
        "model_config": cfg.to_dict(),
        "embodiment": _jsonable(meta.get("embodiment") or {}),
        "action_names": list(meta["action_names"]),
        "cameras": list(float_policy.cameras),  # the model's camera slots this robot fills, in input order
        "delta_mask": meta.get("delta_mask"),  # arm actions relative to the state they were predicted from
        "execute": meta.get("execute"),  # the runner's default actions per chunk (None: half the chunk)
        "stats": _jsonable(meta["stats"]),
        "normalization": {
            "std_floor": STD_FLOOR,
            **{k: {"mean": n.mean.tolist(), "std": n.std.tolist()} for k, n in norms.items()},
        },
        "tokenizer": {"kind": "utf8-bytes", "max_len": cfg.max_tokens, "pad": PAD, "bos": BOS, "eos": EOS},
        "rng": {
            "impl": fn["impl"],
            "per_call": "normal(fold_in(key(seed), call_index), [1, T, A]) as the noise input"
            if format == "onnx"
            else "key_data(fold_in(key(seed), call_index))",
        },
        "function": fn["section"],
        "quantization": qmeta,
    }
    if format == "onnx":
        import onnxruntime

        from vla_sdk.export.runtime import OnnxArtifactPolicy

        manifest["onnxruntime_version"] = onnxruntime.__version__
        weights, parts = b"", {A.ONNX_FUNCTION: blob}
        art_policy = OnnxArtifactPolicy(manifest, blob, seed, where=str(out))
    else:
        weights = A.weights_bytes(stored)
        parts = {A.WEIGHTS: weights, A.FUNCTION: blob}
        art_policy = ArtifactPolicy(manifest, A.load_weights(weights), blob, seed, where=str(out))
    frames, frames_source = gate_frames(meta, cfg, max(gate_count, 1)) if gate_count or latency_runs else ([], "")
    if gate_count:
        manifest["accuracy"] = {"source": frames_source, **compare(float_policy, art_policy, frames, seed)}
    if latency_runs:
        manifest["latency_ms"] = latency_profile(art_policy, frames[0], latency_runs)
        if format == "onnx":
            manifest["latency_ms"].update(platform="onnxruntime", device="CPUExecutionProvider")
        manifest["latency_ms"]["float_checkpoint_p50"] = latency_profile(float_policy, frames[0], latency_runs)["p50"]
    sealed = A.write_artifact(out, manifest, parts)
    A.read_artifact(out)  # verify what was written
    art_policy.manifest = art_policy.meta = sealed
    q = qmeta["bytes"]
    summary = {
        "artifact": str(out),
        "quantize": quantize,
        "format": format,
        "file_bytes": Path(out).stat().st_size,
        "weights_npz_bytes": len(weights),
        "function_bytes": len(blob),
        "weights_bytes": q,
        "weights_ratio": q["stored"] / q["float32"],
        "quantized_ratio": q["quantized_stored"] / q["quantized_float32"] if q["quantized_float32"] else None,
        "quantized_tensors": sum(i["mode"] != "float32" for i in qmeta["tensors"].values()),
        "float_kept": len(qmeta["float_kept"]),
        "platforms": fn["section"].get("platforms", ["onnxruntime CPUExecutionProvider"]),
        "accuracy": manifest.get("accuracy"),
        "latency_ms": manifest.get("latency_ms"),
    }
    return summary, float_policy, art_policy


def export_checkpoint(
    path: str | Path,
    out: str | Path,
    quantize: str = "none",
    *,
    check_task: str | None = None,
    episodes: int = 10,
    execute: int | None = None,
    **kwargs,
) -> dict:
    """``vla export``: read a run/checkpoint folder, export it, optionally compare success rates in simulation."""
    check_mode(quantize)  # before the (slow) checkpoint read
    if check_format(kwargs.get("format", "stablehlo")) == "onnx":
        from vla_sdk.export import onnx_build

        onnx_build.require()
        onnx_build.check_onnx_mode(quantize)
    from vla_sdk.checkpoint import read_checkpoint

    params, meta = read_checkpoint(path)
    summary, float_policy, art_policy = export_policy(params, meta, out, quantize, source=str(path), **kwargs)
    if check_task:
        from vla_sdk.export.gate import check_task as run_check

        summary["check_task"] = run_check(float_policy, art_policy, check_task, episodes, str(path), execute=execute)
    return summary


def format_summary(s: dict) -> str:
    acc, lat, wb = s["accuracy"], s["latency_ms"], s["weights_bytes"]
    lines = [
        f"{s['artifact']}: {s.get('format', 'stablehlo')} {s['quantize']}, {s['file_bytes'] / 1e6:.2f} MB "
        f"(weights {wb['stored'] / 1e6:.2f} MB = {100 * s['weights_ratio']:.1f} % of float32; "
        f"{s['quantized_tensors']} tensors quantized, {s['float_kept']} kept float), platforms {s['platforms']}"
    ]
    if acc:
        lines.append(
            f"  action error vs the float checkpoint on {acc['source']}: "
            f"mean {acc['mean_abs']:.2e}, max {acc['max_abs']:.2e} (raw action units)"
        )
    if lat:
        lines.append(
            f"  latency p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms on {lat['device']} "
            f"(float checkpoint p50 {lat['float_checkpoint_p50']:.1f} ms)"
        )
    ct = s.get("check_task")
    if ct:
        f, q = ct["float"], ct["quantized"]
        lines.append(
            f"  {ct['task']}: success float {f['successes']}/{ct['episodes']} "
            f"(95% CI {f['ci95'][0]:.2f}-{f['ci95'][1]:.2f}), exported {q['successes']}/{ct['episodes']} "
            f"(95% CI {q['ci95'][0]:.2f}-{q['ci95'][1]:.2f}); change {ct['change']:+.2f}, "
            f"{ct['same_outcome']}/{ct['episodes']} episodes with the same outcome"
        )
    return "\n".join(lines)
