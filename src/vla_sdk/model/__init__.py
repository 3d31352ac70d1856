"""Compact vision-language-action policies in Flax NNX.

``VLA(config, rngs=nnx.Rngs(0))`` builds a model from a :class:`ModelConfig` (see :data:`PRESETS`);
``model.loss(batch, rng)`` trains it and ``model.sample_actions(obs, rng)`` runs it. Inputs are described by
:class:`Observation` and :class:`Batch`; instructions are encoded by :class:`ByteTokenizer`.
"""

import importlib

# Names resolve on first use, so `vla_sdk.model.config` and `vla_sdk.model.tokenizer` (part of the flax-free core:
# transforms, the export runtime) can be imported without importing flax.
_WHERE = {
    "Batch": "batch",
    "Observation": "batch",
    "as_batch": "batch",
    "as_observation": "batch",
    "fake_batch": "batch",
    "fake_obs": "batch",
    "PRESETS": "config",
    "ModelConfig": "config",
    "get_preset": "config",
    "ByteTokenizer": "tokenizer",
    "VLA": "vla",
    "jit_sample_actions": "vla",
    "param_count": "vla",
}

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


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'vla_sdk.model' has no attribute {name!r}")
    return getattr(importlib.import_module(f"vla_sdk.model.{_WHERE[name]}"), name)
