"""Locate the data folders (robots/, sim/) from a source checkout or from an installed wheel.

In a checkout they sit at the repository root; the wheel carries them as ``vla_sdk/_assets/{robots,sim}``. The
environment variable ``VLA_ASSETS`` overrides both (a folder holding ``robots/`` and ``sim/``).
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from vla_sdk.errors import NotFound


@cache
def assets_root() -> Path:
    """The folder that holds ``robots/`` and ``sim/``."""
    override = os.environ.get("VLA_ASSETS")
    candidates = [Path(override)] if override else []
    here = Path(__file__).resolve().parent
    candidates += [here / "_assets", here.parents[1]]
    for root in candidates:
        if (root / "robots").is_dir() and (root / "sim").is_dir():
            return root
    searched = ", ".join(str(c) for c in candidates)
    raise NotFound(f"vla-sdk assets (robots/ and sim/) not found; looked in: {searched}. Set VLA_ASSETS.")


def robots_dir() -> Path:
    return assets_root() / "robots"


def sim_dir() -> Path:
    return assets_root() / "sim"
