"""Action heads. Both decode a chunk ``[B, T, A]`` from the prefix through a :class:`Decoder` that cross-attends
to the prefix outputs; the prefix keys/values are computed once per observation and reused.

* :class:`FlowHead` (``head="flow"``, pi0 / SmolVLA style): an action expert predicts the flow-matching velocity.
  Convention (pi0's): ``x_t = t * noise + (1 - t) * actions``, so t=1 is pure noise and t=0 the data; the target
  velocity is ``noise - actions``. Training draws ``t = 0.001 + 0.999 * Beta(1.5, 1)`` (or uniform); sampling
  integrates Euler steps from t=1 down to t=0.
* :class:`L1Head` (``head="l1"``, ACT / OpenVLA-OFT style): T learned queries regress the chunk under an L1 loss.

Masking: only real action dims (``action_mask``) of non-pad steps (``~action_is_pad``) enter a loss. Targets in
padded dims or pad steps are replaced by zeros before anything else sees them (the flow head's noisy input
included), so they cannot change the loss or its gradients, whatever they hold (NaN too). Padded dims of the flow
state are held at zero, and sampled chunks are zero there.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from vla_sdk.model.batch import Batch
from vla_sdk.model.config import ModelConfig
from vla_sdk.model.transformer import Decoder, linear


def dim_mask(action_mask: jax.Array | None, batch_size: int, action_dim: int) -> jax.Array:
    """``[B, 1, A]`` bool: True on real action dims (all of them when ``action_mask`` is None)."""
    if action_mask is None:
        return jnp.ones((batch_size, 1, action_dim), bool)
    return jnp.asarray(action_mask, bool)[:, None, :]


def loss_mask(batch: Batch) -> jax.Array:
    """``[B, T, A]`` bool: the entries that count in a loss (real dims of non-pad steps)."""
    b, t, a = batch.actions.shape
    mask = jnp.broadcast_to(dim_mask(batch.action_mask, b, a), (b, t, a))
    if batch.action_is_pad is not None:
        mask = mask & ~jnp.asarray(batch.action_is_pad, bool)[:, :, None]
    return mask


def masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean of ``values`` where ``mask``; entries outside it (even NaN) cannot leak in."""
    total = jnp.where(mask, values, 0.0).sum()
    return total / jnp.maximum(mask.sum(), 1)


def time_embedding(t: jax.Array, dim: int) -> jax.Array:
    """Sine-cosine embedding ``[B, dim]`` of flow times ``t [B]`` in [0, 1] (periods 4e-3 .. 4, as pi0)."""
    periods = np.geomspace(4e-3, 4.0, dim // 2).astype(np.float32)
    angles = t[:, None].astype(jnp.float32) * (2 * np.pi / periods)[None, :]
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


class _ChunkHead(nnx.Module):
    """What both heads share: the decoder over T tokens, learned step positions, and the output projection."""

    def __init__(self, config: ModelConfig, *, cond_dim: int | None = None, rngs: nnx.Rngs):
        self.config = config
        d, dtype = config.expert_d_model, config.compute_dtype
        self.pos = nnx.Param(0.02 * jax.random.normal(rngs.params(), (config.horizon, d)))  # [T, d]
        self.decoder = Decoder(
            d,
            config.d_model,
            config.expert_layers,
            config.expert_heads,
            config.mlp_ratio,
            cond_dim=cond_dim,
            dtype=dtype,
            rngs=rngs,
        )
        self.action_out = linear(d, config.action_dim, dtype, rngs)

    def decode(self, h: jax.Array, kvs, prefix_mask: jax.Array, cond: jax.Array | None = None) -> jax.Array:
        h = h + self.pos[...].astype(h.dtype)
        return self.action_out(self.decoder(h, kvs, prefix_mask, cond)).astype(jnp.float32)


class FlowHead(_ChunkHead):
    """Flow-matching action expert: noisy chunk ``[B, T, A]`` + flow time ``[B]`` -> velocity ``[B, T, A]``.

    The time enters every decoder block through adaLN-Zero modulation (as DiT; pi0.5 conditions its expert on time
    through adaptive norms too).
    """

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
        d, dtype = config.expert_d_model, config.compute_dtype
        super().__init__(config, cond_dim=d, rngs=rngs)
        self.action_in = linear(config.action_dim, d, dtype, rngs)
        self.time_in = linear(d, d, dtype, rngs)  # sincos(t) -> MLP -> conditioning vector
        self.time_out = linear(d, d, dtype, rngs)

    def velocity(self, x_t: jax.Array, t: jax.Array, kvs, prefix_mask: jax.Array) -> jax.Array:
        """Predicted velocity for noisy actions ``x_t [B, T, A]`` at times ``t [B]``."""
        h = self.action_in(x_t)
        cond = self.time_out(nnx.swish(self.time_in(time_embedding(t, h.shape[-1]).astype(h.dtype))))
        return self.decode(h, kvs, prefix_mask, nnx.swish(cond))

    def sample_time(self, rng: jax.Array, batch_size: int) -> jax.Array:
        if self.config.time_sampling == "uniform":
            return jax.random.uniform(rng, (batch_size,))
        u = jax.random.uniform(rng, (batch_size,))
        return 0.001 + 0.999 * u ** (1 / 1.5)  # Beta(1.5, 1) by inverse CDF (its CDF is x^1.5)

    def loss(self, prefix: jax.Array, prefix_mask: jax.Array, batch: Batch, rng: jax.Array):
        mask = loss_mask(batch)
        b, _, a = batch.actions.shape
        dims = dim_mask(batch.action_mask, b, a)
        actions = jnp.where(mask, batch.actions.astype(jnp.float32), 0.0)
        k_noise, k_time = jax.random.split(rng)
        noise = jax.random.normal(k_noise, actions.shape)
        t = self.sample_time(k_time, b)
        x_t = jnp.where(dims, t[:, None, None] * noise + (1 - t[:, None, None]) * actions, 0.0)
        v = self.velocity(x_t, t, self.decoder.context_kv(prefix), prefix_mask)
        loss = masked_mean(jnp.square(v - (noise - actions)), mask)
        return loss, {"flow_mse": loss}

    def sample(self, prefix, prefix_mask, action_mask, rng: jax.Array, num_steps: int) -> jax.Array:
        """Euler-integrate from noise (t=1) to actions (t=0) in ``num_steps`` steps; prefix K/V computed once."""
        kvs = self.decoder.context_kv(prefix)
        b = prefix.shape[0]
        shape = (b, self.config.horizon, self.config.action_dim)
        dims = dim_mask(action_mask, b, shape[-1])
        dt = 1.0 / num_steps

        def step(i, x):
            t = jnp.full((b,), 1.0 - i * dt, jnp.float32)
            return jnp.where(dims, x - dt * self.velocity(x, t, kvs, prefix_mask), 0.0)

        x = jnp.where(dims, jax.random.normal(rng, shape), 0.0)
        for i in range(num_steps):  # unrolled: XLA:CPU runs a while-loop body on one thread, 1.6x slower here
            x = step(i, x)
        return x


class L1Head(_ChunkHead):
    """T learned queries decoded against the prefix, regressed with an L1 loss."""

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
        super().__init__(config, rngs=rngs)
        self.queries = nnx.Param(0.02 * jax.random.normal(rngs.params(), (config.horizon, config.expert_d_model)))

    def predict(self, prefix: jax.Array, prefix_mask: jax.Array) -> jax.Array:
        h = jnp.broadcast_to(self.queries[...], (prefix.shape[0], *self.queries.shape))
        return self.decode(h.astype(self.config.compute_dtype), self.decoder.context_kv(prefix), prefix_mask)

    def loss(self, prefix: jax.Array, prefix_mask: jax.Array, batch: Batch, rng: jax.Array):
        del rng  # deterministic head
        mask = loss_mask(batch)
        actions = jnp.where(mask, batch.actions.astype(jnp.float32), 0.0)  # no NaN from padding, even in gradients
        loss = masked_mean(jnp.abs(self.predict(prefix, prefix_mask) - actions), mask)
        return loss, {"l1": loss}

    def sample(self, prefix, prefix_mask, action_mask, rng: jax.Array, num_steps: int) -> jax.Array:
        del rng, num_steps  # deterministic head
        pred = self.predict(prefix, prefix_mask)
        return jnp.where(dim_mask(action_mask, pred.shape[0], pred.shape[-1]), pred, 0.0)


HEAD_CLASSES = {"flow": FlowHead, "l1": L1Head}
