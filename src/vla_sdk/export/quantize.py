"""Weight quantization for exported artifacts: numpy on the way in, ``jax.numpy`` dequantization inside the graph.

Modes (per tensor; which tensors are eligible is decided by :func:`keep_float_reason`):

  none  every tensor float32
  bf16  eligible kernels stored as bfloat16 bit patterns (uint16), widened to float32 inside the exported function
  int8  eligible kernels symmetric int8, one float16 scale per output channel (the last axis): ``w = q * scale``
  int4  eligible kernels symmetric int4 in [-7, 7], one float16 scale per group of input rows (32-128, see
        :func:`int4_group`) and output channel; two values per uint8 (even input row in the low nibble, odd row in
        the high nibble). The input dim (all axes but the last, flattened, so conv kernels too) is zero-padded to a
        multiple of the group when no group size divides it. Each (group, channel) scale is the one of
        ``CLIP_RATIOS * absmax / 7`` with the least squared error: with only 15 levels, clipping a few outliers to
        +-7 buys a finer step for all the other weights (relative RMS error 0.10 -> 0.09 on a trained vla-xs, and
        half the largest action error: 0.33 -> 0.16 rad)

Scales are float16 (half the bytes of float32; their 2^-11 relative rounding is far below the quantization step)
and the values are rounded against the float16 scale, so what is stored is what was measured.

Tensors that stay float32 (with the reason, listed in the artifact): biases, norm scales, kernels and tables
(token, position, query) under :data:`MIN_ELEMENTS` elements, and the final action projection (its error goes
straight into the actions, and it is small). A table [N, d] of at least that size is quantized like a kernel:
scales per embedding dim. Imports numpy and jax only.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from vla_sdk.errors import InputError

MODES = ("none", "bf16", "int8", "int4")
GROUP = 64  # int4: input rows per scale
CLIP_RATIOS = np.linspace(1.0, 0.5, 21)  # int4: candidate scales, as fractions of the group's absmax / 7
MIN_ELEMENTS = 1024  # kernels smaller than this stay float32
ACTION_PROJECTION = "head.action_out.kernel"


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise InputError(f"unknown quantization mode {mode!r}; valid modes: {', '.join(MODES)}")
    return mode


def keep_float_reason(name: str, w: np.ndarray) -> str | None:
    """Why tensor ``name`` stays float32, or None when it is a kernel to quantize."""
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "bias":
        return "bias"
    if leaf == "scale":
        return "norm"
    table = leaf not in ("kernel", "embedding")  # learned position / query / keypoint tables [N, d]
    if w.ndim < 2:
        return "embedding/position table" if table else "not a matrix"
    if w.size < MIN_ELEMENTS:
        return "embedding/position table" if table else f"small (< {MIN_ELEMENTS} elements)"
    if name == ACTION_PROJECTION:
        return "final action projection"
    return None


SCALE_DTYPE = np.float16
_TINY = float(np.finfo(np.float16).tiny)  # smallest normal float16


def _safe_scale(absmax: np.ndarray, levels: int) -> np.ndarray:
    """float16 scales; an all-zero channel gets scale 1 and dequantizes to 0, a channel too small for float16's
    normal range gets the smallest normal scale (its values round to 0: an error below 1e-4 absolute)."""
    scale = np.where(absmax > 0, np.maximum(absmax / levels, _TINY), 1.0)
    return scale.astype(SCALE_DTYPE)


def to_bf16_bits(w: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns as uint16, rounded to nearest even (weights are finite)."""
    bits = np.ascontiguousarray(w, np.float32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def quantize_int8(w: np.ndarray) -> dict[str, np.ndarray]:
    scale = _safe_scale(np.abs(w).reshape(-1, w.shape[-1]).max(0), 127)  # [out]
    q = np.clip(np.round(w / scale.astype(np.float32)), -127, 127).astype(np.int8)
    return {"q": q, "scale": scale}


def int4_group(rows: int) -> int:
    """Input rows per int4 scale: the largest even divisor of ``rows`` in [32, 128] (no padding: a 96-row kernel
    takes one group of 96, not two of 64 with a third of them padding; an even kernel of under 32 rows is one group),
    else :data:`GROUP` with zero padding."""
    return next((g for g in range(128, 1, -2) if rows % g == 0 and (g >= 32 or g == rows)), GROUP)


def quantize_int4(w: np.ndarray) -> dict[str, np.ndarray]:
    out = w.shape[-1]
    rows = math.prod(w.shape[:-1])
    group = int4_group(rows)
    groups = -(-rows // group)
    w2 = np.zeros((groups * group, out), np.float32)
    w2[:rows] = w.reshape(rows, out)
    wg = w2.reshape(groups, group, out)
    absmax = np.abs(wg).max(1)  # [G, out]
    scale, best_err = np.ones(absmax.shape, SCALE_DTYPE), np.full(absmax.shape, np.inf)
    for clip in CLIP_RATIOS:  # the first (1.0: no clipping) wins ties
        s = _safe_scale(clip * absmax, 7)
        sf = s.astype(np.float32)[:, None, :]
        err = ((np.clip(np.round(wg / sf), -7, 7) * sf - wg) ** 2).sum(1)
        better = err < best_err
        scale, best_err = np.where(better, s, scale), np.where(better, err, best_err)
    q = np.clip(np.round(wg / scale.astype(np.float32)[:, None, :]), -7, 7).astype(np.int8).reshape(groups * group, out)
    nib = (q & 0xF).astype(np.uint8)  # two's complement nibbles
    return {"q": (nib[0::2] | (nib[1::2] << 4)).astype(np.uint8), "scale": scale}


def quantize_tensor(name: str, w: np.ndarray, mode: str) -> tuple[dict[str, np.ndarray], dict]:
    """Stored arrays (suffix -> array) and the tensor's quantization metadata."""
    w = np.asarray(w, np.float32)
    reason = None if mode == "none" else keep_float_reason(name, w)
    stored_mode = "float32" if mode == "none" or reason is not None else mode
    if stored_mode == "float32":
        arrays = {"w": w}
    elif stored_mode == "bf16":
        arrays = {"w": to_bf16_bits(w)}
    elif stored_mode == "int8":
        arrays = quantize_int8(w)
    else:
        arrays = quantize_int4(w)
    info = {"mode": stored_mode, "shape": list(w.shape), "arrays": sorted(arrays)}
    if stored_mode == "int4":
        info["group_size"] = int4_group(math.prod(w.shape[:-1]))
    if reason is not None:
        info["float_reason"] = reason
    if stored_mode != "float32":  # relative RMS error of the stored weights, from the numpy round trip
        err = dequantize(info, arrays, np) - w
        info["rel_rms_error"] = float(np.sqrt(np.mean(err**2)) / max(np.sqrt(np.mean(w**2)), 1e-12))
    return arrays, info


def dequantize(info: dict, arrays: dict, xp=jnp):
    """float32 weights from stored arrays, with ``xp`` = jax.numpy (traceable: runs inside the exported function)
    or numpy (at export, to measure the error)."""
    mode, shape = info["mode"], tuple(info["shape"])
    if mode == "float32":
        return arrays["w"]
    if mode == "bf16":
        bits = arrays["w"].astype(xp.uint32) << 16
        return bits.view(np.float32) if xp is np else jax.lax.bitcast_convert_type(bits, jnp.float32)
    if mode == "int8":
        return arrays["q"].astype(xp.float32) * arrays["scale"].astype(xp.float32)
    if mode == "int4":
        packed, scale = arrays["q"], arrays["scale"].astype(xp.float32)
        nib = xp.stack([packed & 0xF, packed >> 4], axis=1).reshape(-1, packed.shape[-1]).astype(xp.int32)
        q = xp.where(nib >= 8, nib - 16, nib).astype(xp.float32)
        groups, out = scale.shape
        w = (q.reshape(groups, -1, out) * scale[:, None, :]).reshape(-1, out)
        return w[: math.prod(shape[:-1])].reshape(shape)
    raise InputError(f"unknown stored tensor mode {mode!r}")


def quantize_params(named: list[tuple[str, np.ndarray]], mode: str) -> tuple[dict[str, np.ndarray], dict]:
    """All tensors: the arrays for weights.npz (``<name>.<suffix>``) and the manifest's quantization section."""
    check_mode(mode)
    stored, tensors = {}, {}
    float_bytes = stored_bytes = qf_bytes = qs_bytes = 0
    for name, w in named:
        arrays, info = quantize_tensor(name, w, mode)
        tensors[name] = info
        nbytes = sum(a.nbytes for a in arrays.values())
        float_bytes += 4 * int(np.size(w))
        stored_bytes += nbytes
        if info["mode"] != "float32":
            qf_bytes += 4 * int(np.size(w))
            qs_bytes += nbytes
        for suffix, a in arrays.items():
            stored[f"{name}.{suffix}"] = a
    kept = {n: i["float_reason"] for n, i in tensors.items() if "float_reason" in i}
    return stored, {
        "mode": mode,
        "group_size": "per tensor (tensors.<name>.group_size)" if mode == "int4" else None,
        "min_elements": MIN_ELEMENTS,
        "tensors": tensors,
        "float_kept": kept,
        "bytes": {
            "float32": float_bytes,  # all tensors as float32
            "stored": stored_bytes,  # all tensors as stored (payload, without container headers)
            "quantized_float32": qf_bytes,  # the quantized tensors only, as float32
            "quantized_stored": qs_bytes,  # the quantized tensors only, as stored (values + scales)
        },
    }
