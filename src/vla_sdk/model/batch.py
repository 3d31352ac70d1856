"""What the model consumes: :class:`Observation` (policy inputs) and :class:`Batch` (inputs + training targets).

Both are frozen dataclasses registered as JAX pytrees, so they pass through ``jax.jit``. Plain dicts with the same
keys are accepted wherever a model takes one (see :func:`as_observation`, :func:`as_batch`). Shapes: B batch,
(H, W) ``image_size``, S ``state_dim``, L ``max_tokens``, T ``horizon``, A ``action_dim`` (all from the config).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from vla_sdk.model.config import ModelConfig
from vla_sdk.model.tokenizer import ByteTokenizer


@dataclass(frozen=True, kw_only=True)
class Observation:
    """Policy inputs, already normalized and padded by the data pipeline."""

    images: dict[str, jax.Array]  # camera name -> [B, H, W, 3] float in [-1, 1] (uint8 is rescaled); one per camera
    image_masks: dict[str, jax.Array]  # camera name -> [B] bool; False = camera absent, its tokens are masked out
    state: jax.Array  # [B, S] float, normalized robot state, zero-padded to S
    state_mask: jax.Array  # [B, S] bool, True = real state dimension (others are ignored)
    tokens: jax.Array  # [B, L] int32, instruction ids from ByteTokenizer(max_tokens).encode_batch
    token_mask: jax.Array  # [B, L] bool, True = real token
    action_mask: jax.Array | None = None  # [B, A] bool, True = real action dim; None = all real. Others sample as 0


@dataclass(frozen=True, kw_only=True)
class Batch(Observation):
    """A training batch: an :class:`Observation` plus the action chunk to predict."""

    actions: jax.Array  # [B, T, A] float, normalized future actions, zero-padded to A
    action_is_pad: jax.Array | None = None  # [B, T] bool, True = step past the episode end (no loss); None = none
    env_state: jax.Array | None = None  # [B, E] float, normalized object positions: a training-only target


jax.tree_util.register_dataclass(Observation)
jax.tree_util.register_dataclass(Batch)


def _from_mapping(cls, data: Mapping):
    names = [f.name for f in dataclasses.fields(cls)]
    required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
    missing = [n for n in required if n not in data]
    if missing:
        raise KeyError(f"{cls.__name__} is missing {missing}; it needs {required}")
    return cls(**{n: data[n] for n in names if n in data})


def as_observation(obs: Observation | Mapping) -> Observation:
    """An :class:`Observation` as is; a :class:`Batch` or a dict becomes one (extra fields and keys are dropped)."""
    if type(obs) is Observation:
        return obs
    if isinstance(obs, Observation):
        return Observation(**{f.name: getattr(obs, f.name) for f in dataclasses.fields(Observation)})
    return _from_mapping(Observation, obs)


def as_batch(batch: Batch | Mapping) -> Batch:
    """A :class:`Batch` as is; a dict becomes one (extra keys are ignored)."""
    return batch if isinstance(batch, Batch) else _from_mapping(Batch, batch)


FAKE_INSTRUCTIONS = ("pick up the red cube", "put the block in the bin", "stack the green cube on the blue one")


def _numpy_rng(rng) -> np.random.Generator:
    """An int seed, a numpy Generator or a JAX key as a numpy Generator (fake data is made on the host: no compiles)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, int | np.integer):
        return np.random.default_rng(int(rng))
    return np.random.default_rng(np.asarray(jax.random.key_data(rng)).ravel().tolist())


def fake_obs(
    config: ModelConfig, batch_size: int = 2, rng=0, *, state_dims: int = 14, action_dims: int = 14
) -> Observation:
    """A random, correctly shaped :class:`Observation` for tests and benchmarks.

    ``rng`` is an int seed, a numpy Generator or a JAX key. The first ``state_dims`` / ``action_dims`` dimensions are
    real; padded state dims hold zeros. Every camera is present; instructions cycle through :data:`FAKE_INSTRUCTIONS`.
    """
    gen = _numpy_rng(rng)
    shape = (batch_size, *config.image_size, 3)
    images = {cam: gen.uniform(-1.0, 1.0, shape).astype(np.float32) for cam in config.cameras}
    image_masks = {cam: np.ones((batch_size,), bool) for cam in config.cameras}
    state_mask = np.broadcast_to(np.arange(config.state_dim) < state_dims, (batch_size, config.state_dim))
    state = np.where(state_mask, gen.standard_normal((batch_size, config.state_dim)), 0.0).astype(np.float32)
    texts = [FAKE_INSTRUCTIONS[i % len(FAKE_INSTRUCTIONS)] for i in range(batch_size)]
    tokens, token_mask = ByteTokenizer(config.max_tokens).encode_batch(texts)
    action_mask = np.broadcast_to(np.arange(config.action_dim) < action_dims, (batch_size, config.action_dim))
    obs = Observation(
        images=images,
        image_masks=image_masks,
        state=state,
        state_mask=state_mask,
        tokens=tokens,
        token_mask=token_mask,
        action_mask=action_mask,
    )
    return jax.tree.map(jnp.asarray, obs)


def fake_batch(config: ModelConfig, batch_size: int = 2, rng=0, *, pad_steps: int = 0, **kwargs) -> Batch:
    """:func:`fake_obs` plus smooth random action chunks (zeros in padded dims); the last ``pad_steps`` are pads."""
    gen = _numpy_rng(rng)
    obs = fake_obs(config, batch_size, gen, **kwargs)
    steps = np.linspace(0.0, 1.0, config.horizon)[None, :, None]
    start, slope = gen.standard_normal((2, batch_size, 1, config.action_dim))
    actions = np.where(np.asarray(obs.action_mask)[:, None, :], start + slope * steps, 0.0).astype(np.float32)
    is_pad = np.zeros((batch_size, config.horizon), bool)
    if pad_steps:
        is_pad[:, -pad_steps:] = True
    fields = {f.name: getattr(obs, f.name) for f in dataclasses.fields(obs)}
    return Batch(**fields, actions=jnp.asarray(actions), action_is_pad=jnp.asarray(is_pad))
