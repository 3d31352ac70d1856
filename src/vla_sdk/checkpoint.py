"""Checkpoints as the SDK reads them: the format, its integrity check, and :func:`read_checkpoint` (flax-free core).

A checkpoint is an orbax folder ``RUN/checkpoints/<step>/`` (or ``RUN/best/<step>/``) with ``state/`` (params, EMA
params, optimizer state, step) and ``meta/``: format version, resolved train and model configs, normalization
statistics, the embodiment schema and metrics. :mod:`vla_sdk.train.checkpoint` writes them; inference (the policy,
export) reads them through this module and never imports the trainer.

Integrity: ``meta["sha256"]`` holds the SHA-256 of the EMA and the training weights (:func:`tree_sha256`: every
leaf's path, dtype, shape and bytes) and ``meta["meta_sha256"]`` that of the meta's canonical JSON without that
field. Reading re-hashes both: a flipped byte inside raw tensor data, which orbax would load as a different number,
or an edited meta value is refused by name. Checkpoints written before these fields load unchecked.

Robots: one robot's parts sit at the top of the meta; a checkpoint of several keeps them per robot under
``robots`` (:mod:`vla_sdk.multi_robot`).

LoRA runs (``vla train --finetune lora``) store params as ``{"base": ..., "lora": {"path/to/kernel": {"a", "b"}}}``;
:func:`merge_lora` folds the adapters in, so what is read is always plain model params.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from vla_sdk.errors import InputError, NotFound

CHECKPOINT_FORMAT = 1
HASHED = ("ema", "params")  # the weight trees whose hashes the meta carries


def _key(k) -> str:
    for attr in ("key", "idx", "name"):  # DictKey / FlattenedIndexKey, SequenceKey, GetAttrKey
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def tree_sha256(tree) -> str:
    """SHA-256 of a pytree of arrays: (path, dtype, shape, bytes) of every leaf in sorted path order, keys as
    strings (orbax restores integer keys as strings), so the saved and the restored tree hash alike."""
    leaves = [("/".join(_key(k) for k in path), leaf) for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]]
    h = hashlib.sha256()
    for name, leaf in sorted(leaves, key=lambda kv: kv[0]):
        a = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _canonical(meta: dict) -> bytes:
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def seal(state: dict, meta: dict) -> dict:
    """``meta`` as saved: plain JSON, with the weight hashes and its own hash."""
    meta = json.loads(json.dumps({**meta, "sha256": {k: tree_sha256(state[k]) for k in HASHED if k in state}}))
    return {**meta, "meta_sha256": hashlib.sha256(_canonical(meta)).hexdigest()}


def check_integrity(path: Path, state: dict, meta) -> None:
    """Raise :class:`InputError` when a restored checkpoint is not what was saved (see the module docstring)."""
    if not isinstance(meta, dict):
        raise InputError(f"checkpoint {path}: meta is not a JSON object (got {type(meta).__name__})")
    want = meta.get("meta_sha256")
    if want is not None and want != hashlib.sha256(_canonical(meta)).hexdigest():
        raise InputError(f"checkpoint {path}: meta/metadata failed its SHA-256 check: the meta was modified or damaged")
    hashes = meta.get("sha256") or {}
    if not isinstance(hashes, dict):
        raise InputError(f"checkpoint {path}: meta field 'sha256' must be an object, got {hashes!r:.60}")
    for k, h in hashes.items():
        if k in state and tree_sha256(state[k]) != h:
            raise InputError(
                f"checkpoint {path}: the {k} weights failed their SHA-256 check: the tensor files under state/ "
                "were modified or damaged"
            )


def lora_key(path: tuple) -> str:
    """The adapters' key of a kernel: its path in the params, joined by "/"."""
    return "/".join(map(str, path))


def is_lora(params: dict) -> bool:
    """Params of a LoRA run: ``{"base": model params, "lora": adapters}``."""
    return set(params) == {"base", "lora"}


def merge_lora(params: dict) -> dict:
    """Plain model params: base weights with the adapters folded in (works on numpy and traced arrays)."""
    if not is_lora(params):
        return params
    lora = params["lora"]

    def walk(tree, prefix=()):
        out = {}
        for k, v in tree.items():
            path = (*prefix, k)
            if isinstance(v, dict):
                out[k] = walk(v, path)
            elif lora_key(path) in lora:
                ad = lora[lora_key(path)]
                out[k] = v + (jnp.asarray(ad["a"]) @ jnp.asarray(ad["b"])).astype(v.dtype)
            else:
                out[k] = v
        return out

    return walk(params["base"])


def read_checkpoint(path: str | Path) -> tuple[dict, dict]:
    """(params as a pure dict: the EMA weights, meta) from a run folder (its latest step), a step folder, or the
    name of a base the package ships (``"vla-base"``, :mod:`vla_sdk.bases`; its card is checked against it)."""
    from vla_sdk import bases

    base = str(path) if bases.is_base_name(str(path)) else None
    path = (bases.base_dir(base) / bases.CHECKPOINT if base else Path(path)).absolute()  # orbax: absolute paths
    if (path / "checkpoints").is_dir():
        steps = sorted(int(p.name) for p in (path / "checkpoints").iterdir() if p.name.isdigit())
        if not steps:
            raise NotFound(f"{path}: no checkpoints in {path / 'checkpoints'}")
        path = path / "checkpoints" / str(steps[-1])
    if not (path / "meta").exists() or not (path / "state").exists():
        raise NotFound(f"{path} is not a vla-sdk checkpoint (expected state/ and meta/ inside)")
    ckptr = ocp.Checkpointer(ocp.CompositeCheckpointHandler())
    try:
        out = ckptr.restore(
            path, args=ocp.args.Composite(state=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore())
        )
    except Exception as e:  # noqa: BLE001
        raise InputError(f"checkpoint {path} cannot be read ({type(e).__name__}: {e})") from e
    meta = out["meta"]
    check_integrity(path, out["state"], meta)
    version = meta.get("format_version", 0)
    if not isinstance(version, int):
        raise InputError(f"checkpoint {path}: meta format_version must be an integer, got {version!r:.60}")
    if not isinstance(out["state"], dict) or not isinstance(out["state"].get("ema"), dict):
        raise InputError(f"checkpoint {path}: the state holds no EMA weights")
    if version > CHECKPOINT_FORMAT:
        raise InputError(
            f"checkpoint {path} has format_version {meta['format_version']}; this vla-sdk reads up to "
            f"{CHECKPOINT_FORMAT} (upgrade vla-sdk)"
        )
    if base:
        bases.check_card(base, meta)
    return merge_lora(out["state"]["ema"]), meta
