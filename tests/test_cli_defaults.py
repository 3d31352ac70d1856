"""The CLI's flags, choices and defaults are the config dataclasses': a default, a choice list or a default stated in
a help text written in cli.py that differs from the dataclass it fills fails here, so the two cannot drift."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from vla_sdk import cli


def _subparser(*names: str) -> argparse.ArgumentParser:
    p = cli._parser()
    for n in names:
        p = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices[n]
    return p


def _configs():
    from vla_sdk.data.record_config import RecordConfig
    from vla_sdk.eval_config import EvalConfig
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


@pytest.mark.parametrize("names, config", _configs(), ids=lambda x: x[0] if isinstance(x, tuple) else x.__name__)
def test_the_help_shows_the_dataclass_defaults(names, config):
    """`--help` states each flag's default as the dataclass has it: a "(default 10)" written into a help text drifts
    as surely as a literal default (the eval flags default to None, so their help is all that shows EvalConfig's)."""
    fields = {f.name: f for f in dataclasses.fields(config)}
    parser, checked = _subparser(*names), 0
    for action in parser._actions:
        f = fields.get(action.dest)
        if f is None or action.required or f.default in (dataclasses.MISSING, None) or isinstance(f.default, bool):
            continue  # no default to show (a switch's is "off")
        text = parser._get_formatter()._expand_help(action)
        if "default:" in text:
            continue  # a rule in words ("default: with --eval-task, every checkpoint"), not a value
        assert f"default {f.default}" in text, (
            f"vla {' '.join(names)} --{action.dest.replace('_', '-')}: the help says {text!r}, "
            f"{config.__name__}.{f.name} defaults to {f.default!r}"
        )
        checked += 1
    assert checked >= 3, f"vla {' '.join(names)}: no help shows a {config.__name__} default"


def test_the_cli_and_its_configs_import_no_mujoco_flax_or_jax():
    """`vla --help` and `vla record --help` answer at once: cli.py, the parser it builds and the config modules
    whose defaults it reads import no simulator and no framework (record.py imports mujoco, evaluation.py flax)."""
    code = (
        "import sys\n"
        "import vla_sdk.cli, vla_sdk.data.record_config, vla_sdk.eval_config\n"
        "vla_sdk.cli._parser()\n"
        "print(sorted(k for k in ('mujoco', 'flax', 'jax', 'optax', 'gymnasium') if k in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_choices_are_the_registries():
    from vla_sdk.data.record_config import TELEOPS
    from vla_sdk.export.quantize import MODES
    from vla_sdk.runner import STRATEGIES
    from vla_sdk.train.config import FINETUNE

    def choices(names, dest):
        return tuple(next(a for a in _subparser(*names)._actions if a.dest == dest).choices)

    assert choices(("export",), "quantize") == tuple(MODES)
    assert choices(("train",), "finetune") == tuple(FINETUNE)
    assert choices(("record",), "teleop") == tuple(TELEOPS)
    assert choices(("eval",), "execution") == tuple(STRATEGIES)
    assert choices(("run",), "execution") == tuple(STRATEGIES)
