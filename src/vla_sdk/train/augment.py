"""Image augmentation on the accelerator, inside the jitted step: random shift (pad + crop) and colour jitter."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _one(rng, img, pad: int):  # img [H, W, 3] float in [0, 1]
    k_shift, k_b, k_c, k_s = jax.random.split(rng, 4)
    h, w, _ = img.shape
    if pad > 0:
        padded = jnp.pad(img, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
        dy, dx = jax.random.randint(k_shift, (2,), 0, 2 * pad + 1)
        img = jax.lax.dynamic_slice(padded, (dy, dx, 0), (h, w, 3))
    img = img * jax.random.uniform(k_b, minval=0.8, maxval=1.2)  # brightness
    mean = img.mean()
    img = (img - mean) * jax.random.uniform(k_c, minval=0.8, maxval=1.2) + mean  # contrast
    gray = img.mean(-1, keepdims=True)
    img = (img - gray) * jax.random.uniform(k_s, minval=0.8, maxval=1.2) + gray  # saturation
    return jnp.clip(img, 0.0, 1.0)


def augment_images(rng: jax.Array, images: dict[str, jax.Array], max_shift: int | None = None) -> dict[str, jax.Array]:
    """uint8 [B, H, W, 3] per camera -> augmented float [B, H, W, 3] in [-1, 1] (what the model takes).

    ``max_shift``: random shift of up to this many pixels each way (None: 1/16 of the image height; 0: none)."""
    out = {}
    for i, (cam, img) in enumerate(sorted(images.items())):
        b, h = img.shape[0], img.shape[1]
        keys = jax.random.split(jax.random.fold_in(rng, i), b)
        pad = max(1, h // 16) if max_shift is None else max_shift
        x = jax.vmap(_one, in_axes=(0, 0, None))(keys, img.astype(jnp.float32) / 255.0, pad)
        out[cam] = x * 2.0 - 1.0
    return out


def noisy_state(rng: jax.Array, state: jax.Array, state_mask: jax.Array, std: float) -> jax.Array:
    """Normalized state [B, S] + N(0, std^2) on the real dimensions (``state_mask``); padded dims stay zero."""
    noise = std * jax.random.normal(rng, state.shape, state.dtype)
    return jnp.where(state_mask, state + noise, state)


def drop_state(rng: jax.Array, state_mask: jax.Array, rate: float) -> jax.Array:
    """Clear the whole state mask [B, S] of a ``rate`` fraction of the samples: the model sees them without state."""
    keep = jax.random.bernoulli(rng, 1.0 - rate, (state_mask.shape[0], 1))
    return jnp.logical_and(state_mask, keep)
