"""Image encoder shared by all cameras: a small conv stem, a ViT-style patchify, 2-D sincos positions.

``[B, H, W, 3]`` in [-1, 1] -> ``[B, N, d_model]`` with ``N = (H / patch_size)^2``. The stem is ``stem_layers``
3x3 stride-2 GELU convolutions; a non-overlapping convolution then covers the remaining stride. Tokens of one image
never mix with other images here: all mixing happens in the prefix transformer, under its masks.
"""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx

from vla_sdk.model.config import ModelConfig


def sincos_2d(grid: int, dim: int) -> np.ndarray:
    """Fixed 2-D sine-cosine position embedding ``[grid * grid, dim]`` (row-major); ``dim`` divisible by 4."""
    quarter = dim // 4
    freqs = 1.0 / (10000.0 ** (np.arange(quarter) / quarter))
    ys, xs = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
    parts = []
    for coord in (ys.reshape(-1), xs.reshape(-1)):
        angles = coord[:, None] * freqs[None, :]
        parts += [np.sin(angles), np.cos(angles)]
    return np.concatenate(parts, axis=1).astype(np.float32)


class VisionEncoder(nnx.Module):
    """Conv stem + patchify + LayerNorm + fixed 2-D positions."""

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
        dtype = config.compute_dtype
        stem, channels = [], 3
        for _ in range(config.stem_layers):
            stem.append(
                nnx.Conv(channels, config.stem_channels, (3, 3), strides=2, padding="SAME", dtype=dtype, rngs=rngs)
            )
            channels = config.stem_channels
        self.stem = nnx.List(stem)
        rest = config.patch_size // 2**config.stem_layers
        self.patchify = nnx.Conv(
            channels, config.d_model, (rest, rest), strides=rest, padding="VALID", dtype=dtype, rngs=rngs
        )
        self.ln = nnx.LayerNorm(config.d_model, epsilon=1e-6, dtype=dtype, rngs=rngs)

    def __call__(self, images: jax.Array) -> jax.Array:
        x = images
        for conv in self.stem:
            x = jax.nn.gelu(conv(x))
        x = self.patchify(x)  # [B, grid, grid, d]
        b, h, w, d = x.shape
        x = self.ln(x.reshape(b, h * w, d))
        return x + sincos_2d(h, d).astype(x.dtype)  # a compile-time constant, not a parameter
