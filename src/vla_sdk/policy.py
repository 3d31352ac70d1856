"""A trained policy: raw observation -> normalized inputs -> sample_actions -> unnormalized action chunk.

``Policy.load(path)`` takes a training run folder (its latest checkpoint) or one checkpoint folder and uses the EMA
weights. The transforms are the ones training used (:mod:`vla_sdk.transforms`), with the checkpoint's statistics.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
from flax import nnx

from vla_sdk.errors import InputError, VlaError
from vla_sdk.model import VLA, ModelConfig, jit_sample_actions
from vla_sdk.multi_robot import for_robot
from vla_sdk.transforms import PolicyTransform


class Policy:
    """``policy(obs) -> actions [T, A_robot]`` for one raw observation {"images", "state", "instruction"}."""

    def __init__(self, params: dict, meta: dict, seed: int = 0, robot: str | None = None, where: str = "the policy"):
        self.meta = meta = for_robot(meta, robot, where)  # a multi-robot checkpoint acts as one of its robots
        self.config = ModelConfig.from_dict(meta["model_config"])
        self.embodiment = meta.get("embodiment", {})
        self.transform = PolicyTransform(
            self.config, meta["action_names"], meta["stats"], meta.get("delta_mask"), meta.get("cameras")
        )
        # Abstract construction (no random init: that would compile one small program per initializer, ~10 s on
        # a CPU), then the checkpoint's weights; every variable of the model is a Param, so none stays abstract.
        model = nnx.eval_shape(lambda: VLA(self.config, rngs=nnx.Rngs(0)))
        state = nnx.state(model, nnx.Param)
        nnx.replace_by_pure_dict(state, jax.tree.map(jax.numpy.asarray, params))
        nnx.update(model, state)
        leaves = jax.tree_util.tree_leaves_with_path(state)
        missing = [jax.tree_util.keystr(k) for k, v in leaves if not isinstance(v, jax.Array)]
        if missing:
            raise InputError(f"the checkpoint has no weights for {missing[:5]} ({len(missing)} in all)")
        self.model = model
        self._sample = jit_sample_actions(model)
        self._read_env = None
        self._rng = jax.random.key(seed)
        self.calls = 0

    @classmethod
    def load(cls, path: str | Path, seed: int = 0, robot: str | None = None) -> Policy:
        """A training run, a checkpoint folder, or an exported artifact file (`vla export`); ``robot``: the robot it
        is to act for (needed for a checkpoint of several robots; checked against any other)."""
        if Path(path).is_file():  # an exported artifact; see vla_sdk.export.runtime
            from vla_sdk.export.runtime import load_artifact

            return load_artifact(path, seed, robot)
        from vla_sdk.checkpoint import read_checkpoint

        params, meta = read_checkpoint(path)
        try:
            return cls(params, meta, seed, robot, where=str(path))
        except VlaError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:  # a meta or weights that do not fit
            raise InputError(
                f"checkpoint {path}: its meta and weights do not make a vla-sdk policy ({type(e).__name__}: {e})"
            ) from e

    @property
    def cameras(self) -> tuple[str, ...]:
        return self.transform.cameras

    @property
    def image_size(self) -> tuple[int, int]:
        return self.config.image_size

    @property
    def horizon(self) -> int:
        return self.config.horizon

    @property
    def robot(self) -> str | None:
        return self.embodiment.get("name")

    @property
    def execute(self) -> int | None:
        """Actions to execute per chunk, as trained (`vla train --execute`); None: the runner's default."""
        return self.meta.get("execute")

    def reset(self, seed: int, calls: int = 0) -> None:
        """Make the sampling noise a function of (seed, call index): same seeds, same results, in any process.
        ``calls``: continue that stream from this call index (a server keeps one stream per client)."""
        self._rng, self.calls = jax.random.key(seed), calls

    def __call__(self, obs: dict) -> np.ndarray:
        inputs = self.transform.observation(obs["images"], obs["state"], obs["instruction"])
        rng = jax.random.fold_in(self._rng, self.calls)
        self.calls += 1
        chunk = self._sample(inputs, rng)  # [1, T, A]
        return self.transform.unactions(np.asarray(chunk), obs["state"])[0]

    def read_env_state(self, obs: dict) -> np.ndarray:
        """Where the policy's image tokens place the objects, in the units of the training data's
        ``observation.environment_state`` [E] (a policy trained with --env-state-weight; diagnostics only)."""
        if self.transform.env_norm is None or self.config.env_state_dim == 0:
            raise InputError("this policy has no environment-state readout (trained without --env-state-weight)")
        if self._read_env is None:
            self._read_env = nnx.jit(lambda model, inputs: model.read_env_state(inputs))
        inputs = self.transform.observation(obs["images"], obs["state"], obs["instruction"])
        return self.transform.env_norm.inverse(np.asarray(self._read_env(self.model, inputs)))[0]
