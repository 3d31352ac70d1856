"""Shared, cached tiny models and jitted functions: building and compiling dominate these tests' runtime.

The models get random weights everywhere (a fresh flow expert starts adaLN-Zero gated shut, which would make it
ignore its observation), so that masking tests show what any trained model would do.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest
from flax import nnx

from vla_sdk.model import VLA, get_preset, jit_sample_actions


def fast_rngs(seed: int) -> nnx.Rngs:
    """Rngs over the "rbg" PRNG: initializers compile about twice as fast as with the default threefry."""
    return nnx.Rngs(jax.random.key(seed, impl="rbg"))


def randomize(model: VLA, seed: int = 0, scale: float = 0.1) -> VLA:
    """Add Gaussian noise to every parameter (made on the host: no compiles)."""
    gen = np.random.default_rng(seed)
    params = nnx.state(model, nnx.Param)
    nnx.update(model, jax.tree.map(lambda p: p + scale * gen.standard_normal(p.shape).astype(p.dtype), params))
    return model


@functools.cache
def _tiny(head: str) -> VLA:
    return randomize(VLA(get_preset("vla-tiny").replace(head=head), rngs=fast_rngs(0)))


@functools.cache
def _jitted_loss(head: str):
    graphdef, state = nnx.split(_tiny(head))
    fn = jax.jit(lambda state, batch, rng: nnx.merge(graphdef, state).loss(batch, rng)[0])
    return lambda batch, rng: fn(state, batch, rng)


@functools.cache
def _jitted_sample(head: str):
    return jit_sample_actions(_tiny(head))


@pytest.fixture(params=["flow", "l1"])
def head(request) -> str:
    return request.param


@pytest.fixture
def tiny():
    """``tiny(head) -> VLA``: the tiny preset with that head, built once per session."""
    return _tiny


@pytest.fixture
def loss_fn():
    """``loss_fn(head)(batch, rng) -> scalar``: the tiny model's loss, jitted once per session."""
    return _jitted_loss


@pytest.fixture
def sample_fn():
    """``sample_fn(head)(obs, rng) -> [B, T, A]``: the tiny model's sample_actions, jitted once per session."""
    return _jitted_sample
