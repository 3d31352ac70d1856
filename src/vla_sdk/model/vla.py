"""The VLA policy: a shared vision encoder, a prefix transformer over [images, state, language], an action head.

Prefix layout (``P = C * N + 1 + L / p`` tokens): the N image tokens of each of the C cameras in config order (each
plus its learned camera embedding), one state token, then the instruction: its L bytes, each embedded with its
position, merged p at a time (``text_patch``) into L / p tokens. Attention in the prefix is
bidirectional; absent cameras and padding tokens are masked out as keys everywhere (prefix and action head), and
an absent camera's pixels are zeroed first, so nothing of it reaches the output.

Typical use::

    model = VLA(get_preset("vla-tiny"), rngs=nnx.Rngs(0))
    loss, metrics = model.loss(batch, jax.random.key(1))      # batch: Batch or dict
    actions = model.sample_actions(obs, jax.random.key(2))    # [B, T, A], zeros in padded dims
    fast = jit_sample_actions(model)                          # split/merge + jax.jit, for serving
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp
from flax import nnx

from vla_sdk.errors import InputError
from vla_sdk.model.batch import Batch, Observation, as_batch, as_observation
from vla_sdk.model.config import ModelConfig
from vla_sdk.model.heads import HEAD_CLASSES
from vla_sdk.model.tokenizer import VOCAB_SIZE
from vla_sdk.model.transformer import Encoder, linear
from vla_sdk.model.vision import make_vision_encoder


def _images(obs: Observation, config: ModelConfig, batch_size: int):
    """Images ``[B, C, H, W, 3]`` (float, absent cameras zeroed) and presence ``[B, C]`` in config camera order."""
    unknown = sorted(set(obs.images) - set(config.cameras))
    if unknown:
        raise InputError(f"images for unknown camera(s) {unknown}; the model's cameras are {list(config.cameras)}")
    shape = (batch_size, *config.image_size, 3)
    images, present = [], []
    for cam in config.cameras:
        img = obs.images.get(cam)
        if img is None:  # a camera the sample lacks entirely: zero pixels, masked out
            images.append(jnp.zeros(shape, config.compute_dtype))
            present.append(jnp.zeros((batch_size,), bool))
            continue
        if img.shape != shape:
            raise InputError(f"camera {cam!r}: images must be {shape} [B, H, W, 3], got {img.shape}")
        img = img.astype(jnp.float32) / 127.5 - 1.0 if img.dtype == jnp.uint8 else img
        mask = obs.image_masks.get(cam)
        mask = jnp.ones((batch_size,), bool) if mask is None else jnp.asarray(mask, bool)
        images.append(jnp.where(mask[:, None, None, None], img, 0.0).astype(config.compute_dtype))
        present.append(mask)
    return jnp.stack(images, axis=1), jnp.stack(present, axis=1)


class VLA(nnx.Module):
    """Vision-language-action policy; see the module docstring for the prefix layout."""

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
        self.config = config
        d, dtype = config.d_model, config.compute_dtype
        self.vision = make_vision_encoder(config, rngs)
        self.camera_embed = nnx.Param(0.02 * jax.random.normal(rngs.params(), (len(config.cameras), d)))
        self.state_proj = linear(2 * config.state_dim, d, dtype, rngs)  # [state * mask, mask] -> one token
        self.token_embed = nnx.Embed(VOCAB_SIZE, d, dtype=dtype, rngs=rngs)
        self.token_pos = nnx.Param(0.02 * jax.random.normal(rngs.params(), (config.max_tokens, d)))
        p = config.text_patch  # > 1: groups of p embedded bytes -> one token (ModelConfig.text_patch)
        self.text_merge = linear(p * d, d, dtype, rngs) if p > 1 else None
        self.encoder = Encoder(d, config.num_layers, config.num_heads, config.mlp_ratio, dtype=dtype, rngs=rngs)
        self.head = HEAD_CLASSES[config.head](config, rngs=rngs)
        n_img = len(config.cameras) * config.tokens_per_camera
        # training-only readout of the object positions from the image tokens (see ModelConfig.env_state_dim)
        self.env_readout = linear(n_img * d, config.env_state_dim, dtype, rngs) if config.env_state_dim else None

    def encode_prefix(self, obs: Observation | Mapping) -> tuple[jax.Array, jax.Array]:
        """Prefix outputs ``[B, P, d_model]`` and their key mask ``[B, P]`` (True = real token)."""
        obs, cfg = as_observation(obs), self.config
        b = obs.state.shape[0]
        images, present = _images(obs, cfg, b)
        c, n = len(cfg.cameras), cfg.tokens_per_camera
        img = self.vision(images.reshape(b * c, *images.shape[2:])).reshape(b, c, n, cfg.d_model)
        img = (img + self.camera_embed[...].astype(img.dtype)[None, :, None, :]).reshape(b, c * n, cfg.d_model)
        img_mask = jnp.repeat(present, n, axis=1)

        state_mask = jnp.asarray(obs.state_mask, bool) & cfg.proprio  # proprio=False: every state is "no state"
        state = jnp.where(state_mask, obs.state, 0.0)
        state_tok = self.state_proj(jnp.concatenate([state, state_mask], axis=-1).astype(cfg.compute_dtype))[:, None]

        if obs.tokens.shape[1] != cfg.max_tokens:
            raise InputError(f"tokens must be [B, {cfg.max_tokens}] (config.max_tokens), got {obs.tokens.shape}")
        lang = self.token_embed(obs.tokens) + self.token_pos[...].astype(cfg.compute_dtype)
        lang_mask = jnp.asarray(obs.token_mask, bool)
        if self.text_merge is not None:  # a group is a real token when any of its bytes is
            lang = self.text_merge(lang.reshape(b, cfg.text_tokens, cfg.text_patch * cfg.d_model))
            lang_mask = lang_mask.reshape(b, cfg.text_tokens, cfg.text_patch).any(axis=-1)

        x = jnp.concatenate([img, state_tok.astype(img.dtype), lang.astype(img.dtype)], axis=1)
        mask = jnp.concatenate([img_mask, jnp.ones((b, 1), bool), lang_mask], axis=1)
        return self.encoder(x, mask), mask

    def loss(self, batch: Batch | Mapping, rng: jax.Array, env_state_weight: float = 0.0) -> tuple[jax.Array, dict]:
        """Scalar training loss (float32) and a metrics dict; only real dims of non-pad steps count. With
        ``env_state_weight`` > 0 (and a model and batch with an environment state) the loss adds that weight times
        the mean squared error of the object positions read out of the image tokens (``env_state_mse``)."""
        batch = as_batch(batch)
        prefix, mask = self.encode_prefix(batch)
        loss, metrics = self.head.loss(prefix, mask, batch, rng)
        if self.env_readout is not None and batch.env_state is not None:
            pred = self._read_env_state(prefix, mask)
            metrics["env_state_mse"] = jnp.mean(jnp.square(pred - batch.env_state))
            loss = loss + env_state_weight * metrics["env_state_mse"]
        return loss, {"loss": loss, **metrics}

    def read_env_state(self, obs: Observation | Mapping) -> jax.Array:
        """The readout's normalized object positions ``[B, E]`` (float32), for diagnostics: what the image tokens
        say about where the objects are. Needs ``config.env_state_dim`` > 0."""
        if self.env_readout is None:
            raise InputError("this model has no environment-state readout (it was trained without --env-state-weight)")
        return self._read_env_state(*self.encode_prefix(obs))

    def _read_env_state(self, prefix: jax.Array, mask: jax.Array) -> jax.Array:
        n_img = len(self.config.cameras) * self.config.tokens_per_camera
        img = jnp.where(mask[:, :n_img, None], prefix[:, :n_img], 0.0)  # absent cameras say nothing
        return self.env_readout(img.reshape(img.shape[0], -1)).astype(jnp.float32)

    def sample_actions(self, obs: Observation | Mapping, rng: jax.Array, num_steps: int | None = None) -> jax.Array:
        """One action chunk ``[B, T, A]`` (float32, zeros in padded dims). ``num_steps`` defaults to flow_steps."""
        obs = as_observation(obs)
        prefix, mask = self.encode_prefix(obs)
        steps = self.config.flow_steps if num_steps is None else num_steps
        return self.head.sample(prefix, mask, obs.action_mask, rng, steps)


def param_count(model: VLA | ModelConfig) -> int:
    """Number of trainable parameters; a config is counted abstractly (``nnx.eval_shape``, nothing allocated)."""
    if isinstance(model, ModelConfig):
        config = model
        model = nnx.eval_shape(lambda: VLA(config, rngs=nnx.Rngs(0)))
    return sum(math.prod(x.shape) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def jit_sample_actions(model: VLA, num_steps: int | None = None):
    """A jitted ``fn(obs, rng) -> [B, T, A]`` over a snapshot of ``model``'s current weights (split/merge)."""
    graphdef, state = nnx.split(model)

    @jax.jit
    def fn(state, obs, rng):
        return nnx.merge(graphdef, state).sample_actions(obs, rng, num_steps)

    return lambda obs, rng: fn(state, as_observation(obs), rng)
