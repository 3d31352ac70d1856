"""The tiny preset must be able to memorize one fixed batch (a loss that cannot fall points to a wiring bug)."""

import dataclasses

import jax
import jax.numpy as jnp
import optax
import pytest
from flax import nnx

from vla_sdk.model import VLA, fake_batch, get_preset


def overfit(head: str, steps: int, lr: float, **changes) -> tuple[float, float]:
    """Mean loss over 16 fixed rngs before and after ``steps`` Adam steps (a fresh rng each step) on one batch.

    The batch holds NaN/inf in its padded action dims and pad steps: a leak into the loss or its gradients fails.
    """
    cfg = get_preset("vla-tiny").replace(head=head, **changes)
    model = VLA(cfg, rngs=nnx.Rngs(jax.random.key(0, impl="rbg")))
    batch = fake_batch(cfg, 2, 0, pad_steps=2)
    junk = batch.actions.at[:, :, 14:].set(jnp.nan).at[:, -2:, :].set(jnp.inf)  # padded dims and pad steps
    batch = dataclasses.replace(batch, actions=junk)  # must not poison the gradients
    graphdef, state = nnx.split((model, nnx.Optimizer(model, optax.adam(lr), wrt=nnx.Param)))

    @jax.jit
    def step(state, key):
        model, opt = nnx.merge(graphdef, state)
        opt.update(model, nnx.grad(lambda m: m.loss(batch, key)[0])(model))
        return nnx.state((model, opt))

    @jax.jit
    def evaluate(state, key):
        return nnx.merge(graphdef, state)[0].loss(batch, key)[0]

    def mean_loss(state):
        return sum(float(evaluate(state, jax.random.key(1000 + i))) for i in range(16)) / 16

    before = mean_loss(state)
    for i in range(steps):
        state = step(state, jax.random.key(i))
    return before, mean_loss(state)


@pytest.mark.parametrize(
    "head, steps, changes", [("flow", 300, {}), ("l1", 100, {}), ("l1", 100, {"vision": "keypoints", "keypoints": 4})]
)
def test_tiny_preset_overfits_one_batch(head, steps, changes):
    before, after = overfit(head, steps, 3e-3, **changes)
    assert before > 0.5 and after < before / 10, (before, after)
