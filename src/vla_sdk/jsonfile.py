"""Reading a user's JSON file (a calibration, a robot config, a robot declaration): one place for the errors."""

from __future__ import annotations

import json
from pathlib import Path

from vla_sdk.errors import InputError, NotFound


def read_json_object(path: str | Path, missing: str) -> tuple[Path, dict]:
    """(the expanded path, its JSON object). A missing file raises :class:`NotFound` with ``missing`` (which says
    what was expected there); a file that is not JSON, or whose JSON is not an object, an :class:`InputError` naming
    the file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise NotFound(missing)
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not a JSON file ({e})") from e
    if not isinstance(raw, dict):
        raise InputError(f"{path}: expected a JSON object, got {type(raw).__name__}")
    return path, raw
