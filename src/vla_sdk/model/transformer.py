"""Transformer building blocks: masked multi-head attention, GELU MLP, pre-LN encoder and decoder blocks.

Shapes: B batch, Q query tokens, K key tokens, D width, H heads. A key mask ``[B, K]`` (True = attend) removes
masked tokens entirely: their logits get a large negative value, so whatever they hold cannot reach the output.
Matmuls run in the config's compute dtype; attention logits and softmax always run in float32.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

KV = tuple[jax.Array, jax.Array]  # keys and values, each [B, K, H, D/H]


def linear(d_in: int, d_out: int, dtype, rngs: nnx.Rngs) -> nnx.Linear:
    return nnx.Linear(d_in, d_out, dtype=dtype, rngs=rngs)


def layer_norm(d: int, dtype, rngs: nnx.Rngs) -> nnx.LayerNorm:
    return nnx.LayerNorm(d, epsilon=1e-6, dtype=dtype, rngs=rngs)


def attend(q: jax.Array, k: jax.Array, v: jax.Array, key_mask: jax.Array | None) -> jax.Array:
    """Dot-product attention: q ``[B, Q, H, d]``, k/v ``[B, K, H, d]``, key_mask ``[B, K]`` -> ``[B, Q, H, d]``."""
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k, preferred_element_type=jnp.float32) / math.sqrt(q.shape[-1])
    if key_mask is not None:
        logits = jnp.where(key_mask[:, None, None, :], logits, -1e30)  # finite: a fully masked row stays NaN-free
    probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    return jnp.einsum("bhqk,bkhd->bqhd", probs, v)


class SelfAttention(nnx.Module):
    """Bidirectional multi-head self-attention with a key mask."""

    def __init__(self, d: int, heads: int, *, dtype, rngs: nnx.Rngs):
        self.heads = heads
        self.qkv = linear(d, 3 * d, dtype, rngs)
        self.out = linear(d, d, dtype, rngs)

    def __call__(self, x: jax.Array, key_mask: jax.Array | None = None) -> jax.Array:
        b, n, d = x.shape
        q, k, v = jnp.split(self.qkv(x).reshape(b, n, 3 * self.heads, d // self.heads), 3, axis=2)
        return self.out(attend(q, k, v, key_mask).reshape(b, n, d))


class CrossAttention(nnx.Module):
    """Queries from ``x`` attend to a context; its keys/values come from :meth:`context_kv`, computed once."""

    def __init__(self, d: int, d_context: int, heads: int, *, dtype, rngs: nnx.Rngs):
        self.heads = heads
        self.q = linear(d, d, dtype, rngs)
        self.kv = linear(d_context, 2 * d, dtype, rngs)
        self.out = linear(d, d, dtype, rngs)

    def context_kv(self, context: jax.Array) -> KV:
        """Keys and values of a context ``[B, K, d_context]``; reuse them for every query pass."""
        b, n, _ = context.shape
        d = self.out.in_features
        k, v = jnp.split(self.kv(context).reshape(b, n, 2 * self.heads, d // self.heads), 2, axis=2)
        return k, v

    def __call__(self, x: jax.Array, kv: KV, key_mask: jax.Array | None = None) -> jax.Array:
        b, n, d = x.shape
        q = self.q(x).reshape(b, n, self.heads, d // self.heads)
        return self.out(attend(q, kv[0], kv[1], key_mask).reshape(b, n, d))


class MLP(nnx.Module):
    """Linear -> GELU -> Linear."""

    def __init__(self, d: int, hidden: int, *, dtype, rngs: nnx.Rngs):
        self.fc1 = linear(d, hidden, dtype, rngs)
        self.fc2 = linear(hidden, d, dtype, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fc2(jax.nn.gelu(self.fc1(x)))


class EncoderBlock(nnx.Module):
    """Pre-LN block: ``x + attn(ln(x)); x + mlp(ln(x))``."""

    def __init__(self, d: int, heads: int, mlp_ratio: float, *, dtype, rngs: nnx.Rngs):
        self.ln1 = layer_norm(d, dtype, rngs)
        self.attn = SelfAttention(d, heads, dtype=dtype, rngs=rngs)
        self.ln2 = layer_norm(d, dtype, rngs)
        self.mlp = MLP(d, int(d * mlp_ratio), dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array | None) -> jax.Array:
        x = x + self.attn(self.ln1(x), mask)
        return x + self.mlp(self.ln2(x))


class Encoder(nnx.Module):
    """A stack of :class:`EncoderBlock` and a final LayerNorm: ``[B, N, d], mask [B, N] -> [B, N, d]``."""

    def __init__(self, d: int, depth: int, heads: int, mlp_ratio: float, *, dtype, rngs: nnx.Rngs):
        self.blocks = nnx.List([EncoderBlock(d, heads, mlp_ratio, dtype=dtype, rngs=rngs) for _ in range(depth)])
        self.ln = layer_norm(d, dtype, rngs)

    def __call__(self, x: jax.Array, mask: jax.Array | None) -> jax.Array:
        for block in self.blocks:
            x = block(x, mask)
        return self.ln(x)


def _modulate(h: jax.Array, shift: jax.Array | None, scale: jax.Array | None) -> jax.Array:
    return h if shift is None else h * (1 + scale) + shift


def _gated(y: jax.Array, gate: jax.Array | None) -> jax.Array:
    return y if gate is None else gate * y


def zero_linear(d_in: int, d_out: int, dtype, rngs: nnx.Rngs) -> nnx.Linear:
    return nnx.Linear(d_in, d_out, dtype=dtype, kernel_init=nnx.initializers.zeros, rngs=rngs)


class DecoderBlock(nnx.Module):
    """Pre-LN block: self-attention over the queries, cross-attention to the context, MLP.

    With ``cond_dim`` the block is conditioned adaLN-Zero style (as DiT): a per-sample vector ``cond [B, cond_dim]``
    sets a shift and a scale after each LayerNorm and a gate on each residual branch. The modulation starts at zero,
    so a fresh block is the identity (a fresh flow expert ignores the prefix until training opens the gates).
    """

    def __init__(
        self, d: int, d_context: int, heads: int, mlp_ratio: float, *, cond_dim: int | None = None, dtype, rngs
    ):
        self.ln1 = layer_norm(d, dtype, rngs)
        self.self_attn = SelfAttention(d, heads, dtype=dtype, rngs=rngs)
        self.ln2 = layer_norm(d, dtype, rngs)
        self.cross_attn = CrossAttention(d, d_context, heads, dtype=dtype, rngs=rngs)
        self.ln3 = layer_norm(d, dtype, rngs)
        self.mlp = MLP(d, int(d * mlp_ratio), dtype=dtype, rngs=rngs)
        self.modulation = None if cond_dim is None else zero_linear(cond_dim, 9 * d, dtype, rngs)

    def __call__(self, x: jax.Array, kv: KV, context_mask: jax.Array | None, cond: jax.Array | None = None):
        if self.modulation is None:
            mods = [None] * 9
        else:
            mods = jnp.split(self.modulation(cond)[:, None, :], 9, axis=-1)  # 9 x [B, 1, d]
        x = x + _gated(self.self_attn(_modulate(self.ln1(x), *mods[0:2])), mods[2])
        x = x + _gated(self.cross_attn(_modulate(self.ln2(x), *mods[3:5]), kv, context_mask), mods[5])
        return x + _gated(self.mlp(_modulate(self.ln3(x), *mods[6:8])), mods[8])


class Decoder(nnx.Module):
    """A stack of :class:`DecoderBlock` and a final LayerNorm, cross-attending to one fixed context.

    Call :meth:`context_kv` once per context and pass its result to every ``__call__`` (e.g. every flow step).
    With ``cond_dim``, every block and the final LayerNorm are modulated by ``cond [B, cond_dim]``.
    """

    def __init__(self, d: int, d_context: int, depth: int, heads: int, mlp_ratio: float, *, cond_dim=None, dtype, rngs):
        self.blocks = nnx.List(
            [
                DecoderBlock(d, d_context, heads, mlp_ratio, cond_dim=cond_dim, dtype=dtype, rngs=rngs)
                for _ in range(depth)
            ]
        )
        self.ln = layer_norm(d, dtype, rngs)
        self.modulation = None if cond_dim is None else zero_linear(cond_dim, 2 * d, dtype, rngs)

    def context_kv(self, context: jax.Array) -> list[KV]:
        """Per-block cross-attention keys/values of ``context [B, K, d_context]``."""
        return [block.cross_attn.context_kv(context) for block in self.blocks]

    def __call__(self, x: jax.Array, kvs: list[KV], context_mask: jax.Array | None, cond: jax.Array | None = None):
        for block, kv in zip(self.blocks, kvs, strict=True):
            x = block(x, kv, context_mask, cond)
        if self.modulation is None:
            return self.ln(x)
        return _modulate(self.ln(x), *jnp.split(self.modulation(cond)[:, None, :], 2, axis=-1))
