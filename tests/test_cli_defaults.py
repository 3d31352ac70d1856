"""The CLI's flags, choices and defaults are the config dataclasses': a default or a choice list written in cli.py
that differs from the dataclass it fills fails here, so the two cannot drift."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from vla_sdk import cli


def _subparser(*names: str) -> argparse.ArgumentParser:
    p = cli._parser()
    for n in names:
        p = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices[n]
    return p


def _configs():
    from vla_sdk.data.record import RecordConfig
    from vla_sdk.evaluation import EvalConfig
    from vla_sdk.train.config import TrainConfig

    return [(("train",), TrainConfig), (("record",), RecordConfig), (("eval",), EvalConfig)]


def _plain(v):
    return str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v


@pytest.mark.parametrize("names, config", _configs(), ids=lambda x: x[0] if isinstance(x, tuple) else x.__name__)
def test_flag_defaults_are_the_dataclass_defaults(names, config):
    fields = {f.name: f for f in dataclasses.fields(config)}
    mapped = 0
    for action in _subparser(*names)._actions:
        f = fields.get(action.dest)
        mapped += f is not None
        if f is None or action.required or f.default is dataclasses.MISSING or action.default is None:
            continue  # required, or None: "the config decides" (the dataclass default applies)
        assert _plain(action.default) == _plain(f.default), (
            f"vla {' '.join(names)} --{action.dest.replace('_', '-')}: cli default {action.default!r}, "
            f"{config.__name__}.{f.name} default {f.default!r}"
        )
    assert mapped >= 5, f"vla {' '.join(names)}: no flag maps onto {config.__name__} (renamed fields?)"


def test_choices_are_the_registries():
    from vla_sdk.export.quantize import MODES
    from vla_sdk.runner import STRATEGIES
    from vla_sdk.train.config import FINETUNE

    def choices(names, dest):
        return tuple(next(a for a in _subparser(*names)._actions if a.dest == dest).choices)

    assert choices(("export",), "quantize") == tuple(MODES)
    assert choices(("train",), "finetune") == tuple(FINETUNE)
    assert choices(("eval",), "execution") == tuple(STRATEGIES)
    assert choices(("run",), "execution") == tuple(STRATEGIES)
