"""Image augmentation on the accelerator, inside the jitted step: random shift (pad + crop) and colour jitter."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _shift(rng, img, pad: int):  # img [H, W, 3], any dtype: edge-pad by `pad`, crop back at a random offset
    h, w, _ = img.shape
    padded = jnp.pad(img, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    dy, dx = jax.random.randint(rng, (2,), 0, 2 * pad + 1)
    return jax.lax.dynamic_slice(padded, (dy, dx, 0), (h, w, 3))


def _factors(rng):  # one sample's shift key and brightness, contrast, saturation factors in [0.8, 1.2]
    k_shift, k_b, k_c, k_s = jax.random.split(rng, 4)
    return k_shift, *(jax.random.uniform(k, minval=0.8, maxval=1.2) for k in (k_b, k_c, k_s))


def augment_images(rng: jax.Array, images: dict[str, jax.Array], max_shift: int | None = None) -> dict[str, jax.Array]:
    """uint8 [B, H, W, 3] per camera -> augmented float [B, H, W, 3] in [-1, 1] (what the model takes).

    ``max_shift``: random shift of up to this many pixels each way (None: 1/16 of the image height; 0: none).
    Then, per image with its own factors b, c, s: brightness ``x * b``, contrast ``(x - mean) * c + mean``,
    saturation ``(x - gray) * s + gray``, clipped to [0, 1]. The three are affine in the pixel, so they are applied
    as one: ``s c b x + (1 - s) c b gray(x) + (1 - c) b mean(x)`` (gray: the pixel's channel mean; mean: the
    image's), one pass over the pixels where the three steps took one each plus two reductions (10x faster at
    240x320 on a CPU, the same values to float rounding; tests/train/test_augment.py checks it against the three
    steps)."""
    out = {}
    for i, (cam, img) in enumerate(sorted(images.items())):
        b, h = img.shape[0], img.shape[1]
        keys = jax.random.split(jax.random.fold_in(rng, i), b)
        k_shift, bright, contrast, sat = jax.vmap(_factors)(keys)
        pad = max(1, h // 16) if max_shift is None else max_shift
        if pad > 0:
            img = jax.vmap(_shift, in_axes=(0, 0, None))(k_shift, img, pad)
        x = img.astype(jnp.float32)
        gray = (x[..., 0:1] + x[..., 1:2] + x[..., 2:3]) * (1.0 / 3.0)
        mean = gray.mean(axis=(1, 2, 3), keepdims=True)

        def per_image(v):  # [B] -> [B, 1, 1, 1], with the uint8 -> [-1, 1] scale folded in
            return v[:, None, None, None] * (2.0 / 255.0)

        y = per_image(sat * contrast * bright) * x + per_image((1 - sat) * contrast * bright) * gray
        y = y + per_image((1 - contrast) * bright) * mean - 1.0
        out[cam] = jnp.clip(y, -1.0, 1.0)
    return out


def noisy_state(rng: jax.Array, state: jax.Array, state_mask: jax.Array, std: float) -> jax.Array:
    """Normalized state [B, S] + N(0, std^2) on the real dimensions (``state_mask``); padded dims stay zero."""
    noise = std * jax.random.normal(rng, state.shape, state.dtype)
    return jnp.where(state_mask, state + noise, state)


def drop_state(rng: jax.Array, state_mask: jax.Array, rate: float) -> jax.Array:
    """Clear the whole state mask [B, S] of a ``rate`` fraction of the samples: the model sees them without state."""
    keep = jax.random.bernoulli(rng, 1.0 - rate, (state_mask.shape[0], 1))
    return jnp.logical_and(state_mask, keep)
