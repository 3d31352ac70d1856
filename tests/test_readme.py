"""The README's quickstart, run as written from a fresh folder, so the front door cannot rot."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def quickstart() -> list[str]:
    """The commands of the bash block that follows the `<!-- quickstart` marker (comments stripped, continuation
    lines joined)."""
    text = README.read_text()
    m = re.search(r"<!-- quickstart[^>]*-->\s*```bash\n(.*?)```", text, re.S)
    assert m, "README.md has no quickstart block"
    lines = [line.split("  #")[0].strip() for line in m.group(1).replace("\\\n", " ").splitlines()]
    return [" ".join(line.split()) for line in lines if line]


def test_the_quickstart_block_is_the_loop():
    cmds = quickstart()
    verbs = [c.split()[1] for c in cmds]
    assert all(c.startswith("vla ") for c in cmds), cmds
    for step in ("record", "train", "eval", "export", "run"):
        assert step in verbs, f"the quickstart has no `vla {step}`"


@pytest.mark.skipif(shutil.which("vla") is None, reason="the `vla` command is not installed")
def test_the_readme_quickstart_runs_as_written(tmp_path):
    """From a folder laid out as a fresh clone's (its committed demos/), each command exits 0."""
    shutil.copytree(README.parent / "demos", tmp_path / "demos")
    env = {**os.environ, "MUJOCO_GL": "egl"}
    for cmd in quickstart():
        r = subprocess.run(cmd, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"`{cmd}` exited {r.returncode}:\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
    assert (tmp_path / "my_pick_place.vla").stat().st_size > 10_000
    assert (tmp_path / "out" / "run.mp4").stat().st_size > 1_000
    assert list((tmp_path / "out" / "eval").glob("*.mp4")), "vla eval --video-dir wrote no video"
