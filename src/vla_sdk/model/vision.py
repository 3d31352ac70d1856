"""Image encoders shared by all cameras: ``[B, H, W, 3]`` in [-1, 1] -> ``[B, N, d_model]``.

Both start with the same stem: an optional ``stem_patch`` x ``stem_patch`` patch embedding, then ``stem_layers``
3x3 stride-2 GELU convolutions (any height and width that the total stride divides).

* ``vision="patches"`` (:class:`VisionEncoder`): a ViT-style patchify covers the remaining stride, plus fixed 2-D
  sincos positions: ``N = (H / patch_size) * (W / patch_size)`` tokens.
* ``vision="keypoints"`` (:class:`KeypointEncoder`): one more 3x3 conv, then ``N = keypoints`` spatial-softmax maps
  (Levine et al. 2016, as robomimic and Diffusion Policy use). Each keypoint's token is projected from its expected
  image coordinates (where, to sub-pixel precision) and the features pooled under its map (what). Few tokens that
  localize small objects precisely: the encoder of choice for training from scratch on little data.

Tokens of one image never mix with other images here: all mixing happens in the prefix transformer, under its masks.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from vla_sdk.model.config import ModelConfig


def sincos_2d(height: int, width: int, dim: int) -> np.ndarray:
    """Fixed 2-D sine-cosine position embedding ``[height * width, dim]`` (row-major); ``dim`` divisible by 4."""
    quarter = dim // 4
    freqs = 1.0 / (10000.0 ** (np.arange(quarter) / quarter))
    ys, xs = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    parts = []
    for coord in (ys.reshape(-1), xs.reshape(-1)):
        angles = coord[:, None] * freqs[None, :]
        parts += [np.sin(angles), np.cos(angles)]
    return np.concatenate(parts, axis=1).astype(np.float32)


class PatchEmbed(nnx.Module):
    """Non-overlapping ``p`` x ``p`` patches (space-to-depth) through one dense layer: a stride-``p`` conv with a
    ``p`` x ``p`` kernel, written as the reshape and matmul it is (fast on a CPU at a camera's full resolution)."""

    def __init__(self, p: int, cin: int, cout: int, dtype, rngs: nnx.Rngs):
        self.p = p
        self.dense = nnx.Linear(p * p * cin, cout, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        b, h, w, c = x.shape
        p = self.p
        x = x.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5).reshape(b, h // p, w // p, p * p * c)
        return self.dense(x)


def conv_stem(config: ModelConfig, rngs: nnx.Rngs) -> tuple[nnx.List, int]:
    """The stem's layers (optional patch embedding, ``stem_layers`` 3x3 stride-2 convs; each followed by GELU) and
    the channel count they end with."""
    stem, channels = [], 3
    if config.stem_patch > 1:
        stem.append(PatchEmbed(config.stem_patch, channels, config.stem_channels, config.compute_dtype, rngs))
        channels = config.stem_channels
    for _ in range(config.stem_layers):
        stem.append(
            nnx.Conv(
                channels, config.stem_channels, (3, 3), strides=2, padding="SAME", dtype=config.compute_dtype, rngs=rngs
            )
        )
        channels = config.stem_channels
    return nnx.List(stem), channels


def make_vision_encoder(config: ModelConfig, rngs: nnx.Rngs) -> nnx.Module:
    """The encoder ``config.vision`` names."""
    return KeypointEncoder(config, rngs=rngs) if config.vision == "keypoints" else VisionEncoder(config, rngs=rngs)


class VisionEncoder(nnx.Module):
    """Conv stem + patchify + LayerNorm + fixed 2-D positions."""

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
        dtype = config.compute_dtype
        self.stem, channels = conv_stem(config, rngs)
        rest = config.patch_size // config.stem_stride
        self.patchify = nnx.Conv(
            channels, config.d_model, (rest, rest), strides=rest, padding="VALID", dtype=dtype, rngs=rngs
        )
        self.ln = nnx.LayerNorm(config.d_model, epsilon=1e-6, dtype=dtype, rngs=rngs)

    def __call__(self, images: jax.Array) -> jax.Array:
        x = images
        for conv in self.stem:
            x = jax.nn.gelu(conv(x))
        x = self.patchify(x)  # [B, H / patch, W / patch, d]
        b, h, w, d = x.shape
        x = self.ln(x.reshape(b, h * w, d))
        return x + sincos_2d(h, w, d).astype(x.dtype)  # a compile-time constant, not a parameter


def spatial_softmax(logits: jax.Array, feats: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Keypoints from ``logits [B, h, w, K]``: expected (x, y) ``[B, K, 2]`` in [-1, 1] (x to the right, y down,
    pixel centres at the ends) under each map's softmax over the image, and ``feats [B, h, w, C]`` pooled under it
    ``[B, K, C]``. Computed in float32."""
    b, h, w, k = logits.shape
    attn = jax.nn.softmax(logits.reshape(b, h * w, k).astype(jnp.float32), axis=1)  # [B, hw, K]
    ys, xs = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    grid = np.stack([xs.reshape(-1), ys.reshape(-1)], axis=1).astype(np.float32)  # [hw, 2]
    where = jnp.einsum("bnk,nd->bkd", attn, grid)
    what = jnp.einsum("bnk,bnc->bkc", attn, feats.reshape(b, h * w, -1).astype(jnp.float32))
    return where, what


class KeypointEncoder(nnx.Module):
    """Conv stem + 3x3 conv + spatial softmax: ``keypoints`` tokens, each from (x, y, pooled features)."""

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
        dtype, c = config.compute_dtype, config.stem_channels
        self.stem, channels = conv_stem(config, rngs)
        self.conv = nnx.Conv(channels, c, (3, 3), padding="SAME", dtype=dtype, rngs=rngs)
        self.logits = nnx.Conv(c, config.keypoints, (1, 1), dtype=dtype, rngs=rngs)
        self.proj = nnx.Linear(c + 2, config.d_model, dtype=dtype, rngs=rngs)
        self.embed = nnx.Param(0.02 * jax.random.normal(rngs.params(), (config.keypoints, config.d_model)))
        self.ln = nnx.LayerNorm(config.d_model, epsilon=1e-6, dtype=dtype, rngs=rngs)
        self.sharpness = float(config.keypoint_sharpness)

    def __call__(self, images: jax.Array) -> jax.Array:
        x = images
        for conv in self.stem:
            x = jax.nn.gelu(conv(x))
        feats = jax.nn.gelu(self.conv(x))  # [B, h, w, C]
        where, what = spatial_softmax(self.sharpness * self.logits(feats), feats)
        tokens = self.proj(jnp.concatenate([where, what], axis=-1).astype(feats.dtype))
        return self.ln(tokens + self.embed[...].astype(tokens.dtype))
