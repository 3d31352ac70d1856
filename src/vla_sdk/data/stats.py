"""Exact normalization statistics: min, max, mean, std, count and quantiles q01, q10, q50, q90, q99.

Vector features (state, action) are computed from every frame of the chosen episodes. Camera images are uint8, so a
256-bin histogram per channel holds everything needed for exact statistics; each episode's histogram is stored with
the episode, and the statistics of any subset of episodes (a training split) are exact, not approximated. Image
statistics are per channel on the [0, 1] scale, shaped [3, 1, 1] as LeRobot expects.
"""

from __future__ import annotations

import numpy as np

from vla_sdk.data.layout import QUANTILES
from vla_sdk.errors import InputError


def _qkey(q: float) -> str:
    return f"q{round(q * 100):02d}"


def vector_stats(x: np.ndarray) -> dict[str, list]:
    """Stats of x [N, D] over N (exact; quantiles by linear interpolation, numpy's default)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if len(x) == 0:
        raise InputError("cannot compute statistics of zero frames")
    out = {"min": x.min(0), "max": x.max(0), "mean": x.mean(0), "std": x.std(0), "count": np.array([len(x)])}
    qs = np.quantile(x, QUANTILES, axis=0)
    out |= {_qkey(q): qs[i] for i, q in enumerate(QUANTILES)}
    return {k: v.tolist() for k, v in out.items()}


def image_histogram(frame: np.ndarray) -> np.ndarray:
    """Per-channel histogram [3, 256] (int64) of a uint8 image [h, w, 3]."""
    flat = frame.reshape(-1, 3)
    return np.stack([np.bincount(flat[:, c], minlength=256) for c in range(3)]).astype(np.int64)


def histogram_stats(hist: np.ndarray, frames: int) -> dict[str, list]:
    """Exact per-channel stats on the [0, 1] scale from a summed histogram [3, 256]; count = ``frames``."""
    hist = np.asarray(hist, dtype=np.float64)
    values = np.arange(256) / 255.0
    n = hist.sum(1)
    if np.any(n == 0):
        raise InputError("cannot compute image statistics from an empty histogram")
    mean = (hist * values).sum(1) / n
    std = np.sqrt(np.maximum((hist * values**2).sum(1) / n - mean**2, 0.0))
    nz = hist > 0
    vmin = np.array([values[np.argmax(nz[c])] for c in range(3)])
    vmax = np.array([values[255 - np.argmax(nz[c][::-1])] for c in range(3)])
    cdf = np.cumsum(hist, 1) / n[:, None]
    out = {"min": vmin, "max": vmax, "mean": mean, "std": std}
    for q in QUANTILES:  # the smallest value whose cumulative share reaches q (exact for discrete data)
        out[_qkey(q)] = np.array([values[np.searchsorted(cdf[c], q - 1e-12)] for c in range(3)])
    res = {k: v.reshape(3, 1, 1).tolist() for k, v in out.items()}
    res["count"] = [int(frames)]
    return res
