"""Compact vision-language-action policies in Flax NNX.

``VLA(config, rngs=nnx.Rngs(0))`` builds a model from a :class:`ModelConfig` (see :data:`PRESETS`);
``model.loss(batch, rng)`` trains it and ``model.sample_actions(obs, rng)`` runs it. Inputs are described by
:class:`Observation` and :class:`Batch`; instructions are encoded by :class:`ByteTokenizer`.
"""

from vla_sdk.model.batch import Batch, Observation, as_batch, as_observation, fake_batch, fake_obs
from vla_sdk.model.config import PRESETS, ModelConfig, get_preset
from vla_sdk.model.tokenizer import ByteTokenizer
from vla_sdk.model.vla import VLA, jit_sample_actions, param_count

__all__ = [
    "PRESETS",
    "VLA",
    "Batch",
    "ByteTokenizer",
    "ModelConfig",
    "Observation",
    "as_batch",
    "as_observation",
    "fake_batch",
    "fake_obs",
    "get_preset",
    "jit_sample_actions",
    "param_count",
]
