"""LoRA for ``--finetune lora``: every 2-D linear kernel outside the action head gets W + A @ B (rank r).

Params become ``{"base": <model params>, "lora": {"path/to/kernel": {"a": [in, r], "b": [r, out]}}}``; only the
adapters and the action head train. ``merge`` folds the adapters into plain model params (inference, export).
B starts at zero, so training starts exactly from the base model.
"""

from __future__ import annotations

import jax
import numpy as np

# the params format ({base, lora}), its keys and merging live in the core: reading a checkpoint merges adapters
from vla_sdk.checkpoint import lora_key, merge_lora

merge = merge_lora  # lora.merge(params): plain model params with the adapters folded in


def _flat(tree: dict, prefix: tuple = ()) -> dict[tuple, object]:
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out |= _flat(v, (*prefix, k))
        else:
            out[(*prefix, k)] = v
    return out


def targets(params: dict) -> list[tuple]:
    """Paths of the kernels that get adapters: 2-D ``kernel`` leaves outside ``head``."""
    return [p for p, v in _flat(params).items() if p[-1] == "kernel" and np.ndim(v) == 2 and p[0] != "head"]


def init(params: dict, rank: int, seed: int) -> dict:
    keys = jax.random.split(jax.random.key(seed), max(1, len(targets(params))))
    out = {}
    for k, path in zip(keys, targets(params), strict=False):
        w = _flat(params)[path]
        fan_in, fan_out = np.shape(w)
        out[lora_key(path)] = {
            "a": np.asarray(jax.random.normal(k, (fan_in, rank)) / np.sqrt(fan_in), np.float32),
            "b": np.zeros((rank, fan_out), np.float32),
        }
    return out


def labels(params: dict) -> dict:
    """Optimizer labels: adapters and the action head train, the rest of the base is frozen."""
    base = {k: jax.tree.map(lambda _, k=k: "train" if k == "head" else "freeze", v) for k, v in params["base"].items()}
    return {"base": base, "lora": jax.tree.map(lambda _: "train", params["lora"])}
