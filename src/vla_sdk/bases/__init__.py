"""The base policies the package ships, by name: ``--base vla-base``, ``vla eval vla-base``, ``vla export vla-base``.

A base is a folder ``bases/<name>/`` inside the package, so the wheel carries it and nothing is ever downloaded:

  checkpoint/   a slim checkpoint: the EMA weights and the meta (configs, per-robot statistics, embodiments,
                cameras), no optimizer state; read like any checkpoint (:func:`vla_sdk.checkpoint.read_checkpoint`)
  card.json     the model card: what it was trained on (data per task), steps, hours, machine, per-task success
                with 95 % intervals, the recommended fine-tuning settings, and ``sha256``: the hash of the weights
                (the meta's ``sha256.ema``), checked every time the base is read; ``complete``: false while the
                build's training goes on (such a base loads by name, but `vla train` does not default to it)

``python tools/build_base.py`` rebuilds it (records, trains, evaluates, writes the card).
"""

from __future__ import annotations

import json
from pathlib import Path

from vla_sdk.errors import InputError, NotFound

BASES = ("vla-base",)  # the names the package knows
DEFAULT = "vla-base"  # what `vla train` fine-tunes without --preset or --base, when this build carries it
HERE = Path(__file__).resolve().parent
CARD = "card.json"
CHECKPOINT = "checkpoint"


def is_base_name(text) -> bool:
    return isinstance(text, str) and text in BASES


def is_shipped(name: str) -> bool:
    """This build carries the base ``name``."""
    return (HERE / name / CHECKPOINT).is_dir() and (HERE / name / CARD).is_file()


def is_released(name: str) -> bool:
    """This build carries the base ``name`` and its training is done: what `vla train` fine-tunes by default."""
    return is_shipped(name) and read_card(name).get("complete", True) is not False


def base_dir(name: str) -> Path:
    """The folder of the shipped base ``name``; refused with what to do when this build does not carry it."""
    folder = HERE / name
    if not is_shipped(name):
        raise NotFound(
            f"base {name!r} is not in this build of vla-sdk ({folder} holds no {CHECKPOINT}/ and {CARD}); "
            "rebuild it with `python tools/build_base.py`, or give a checkpoint folder"
        )
    return folder


def read_card(name: str) -> dict:
    """The model card of the shipped base ``name`` (see the module docstring)."""
    path = base_dir(name) / CARD
    try:
        card = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: not a readable model card ({e})") from e
    if not isinstance(card, dict) or not isinstance(card.get("sha256"), str):
        raise InputError(f"{path}: field 'sha256': expected the hash of the base's weights")
    return card


def check_card(name: str, meta: dict) -> None:
    """The card describes these weights: its ``sha256`` is the one the checkpoint's meta carries (and that
    :func:`vla_sdk.checkpoint.check_integrity` verified against the tensors)."""
    card = read_card(name)
    have = (meta.get("sha256") or {}).get("ema")
    if card["sha256"] != have:
        raise InputError(
            f"base {name!r}: its card ({base_dir(name) / CARD}) describes weights with sha256 "
            f"{card['sha256'][:12]}..., the checkpoint holds {str(have)[:12]}...: publish the base again "
            "(`python tools/build_base.py --stage publish`)"
        )
