"""DatasetWriter crash safety: a kill at any step of a commit leaves a dataset that validates, and --resume repairs
it; checked step by step (a hook stops the writer at each named point) and by SIGKILLing real `vla record` children
at random moments (tools/kill_record.py)."""

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from vla_sdk.data import layout as L
from vla_sdk.data import writer as W
from vla_sdk.data.validate import validate

REPO = Path(__file__).resolve().parents[2]
FEATURES = L.make_features(["j0", "j1"], ["j0", "j1"], ["cam"], (24, 32), 10, env_names=None)


class Killed(BaseException):
    """Stands for the kill: nothing on the commit path catches a BaseException, so the files stay as a SIGKILL at
    the same point leaves them (``test_real_sigkill_at_a_hook_point_matches`` checks two points with real kills)."""


def errors(root: Path) -> list[str]:
    return [str(p) for p in validate(root) if p.severity == "error"]


def add_episode(writer: W.DatasetWriter, seed: int, frames: int = 3) -> int:
    rng = np.random.default_rng(seed)
    ep = writer.begin_episode(f"task {seed % 2}", seed=seed)  # a second task appears with episode 1
    for _ in range(frames):
        img = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
        ep.add({"cam": img}, rng.normal(size=2), rng.normal(size=2))
    return ep.commit(success=True)


def new_dataset(root: Path) -> W.DatasetWriter:
    return W.DatasetWriter.create(root, FEATURES, 10, "test", {"task": "test/synthetic"})


def steps_of(fn) -> list[str]:
    """The crash points ``fn()`` passes, in order."""
    seen: list[str] = []
    old, W.crash_point = W.crash_point, seen.append
    try:
        fn()
    finally:
        W.crash_point = old
    return seen


def kill_at(step: str, fn) -> None:
    """Run ``fn()`` and stop it dead at ``step``."""

    def hook(name: str) -> None:
        if name == step:
            raise Killed(step)

    old, W.crash_point = W.crash_point, hook
    try:
        with pytest.raises(Killed):
            fn()
    finally:
        W.crash_point = old


def check_resumes(root: Path, committed: int) -> None:
    """--resume after the kill: the committed episodes are kept, leftovers are cleared, recording continues."""
    writer = W.DatasetWriter.open(root)
    assert writer.num_episodes == committed
    assert not list((root / L.STAGING).glob("meta-*")), "leftover meta folders survive a resume"
    assert add_episode(writer, seed=committed) == committed
    assert errors(root) == []
    eps = L.read_episodes(root)
    assert [e["seed"] for e in eps] == list(range(committed + 1))
    for e in eps:
        for key, rel in L.episode_files(e["episode_index"], ["observation.images.cam"]).items():
            assert e["sha256"][key] == L.file_sha256(root / rel)


@pytest.fixture(scope="module")
def one_episode(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("w") / "base"
    add_episode(new_dataset(root), seed=0)
    return root


@pytest.mark.parametrize("swap", [True, False], ids=["renameat2", "fallback"])
def test_kill_at_every_step_of_a_commit_leaves_a_valid_dataset(one_episode, tmp_path, monkeypatch, swap):
    if not swap:  # a platform without an atomic swap (macOS on HFS+, some network filesystems)
        monkeypatch.setattr(W, "exchange", lambda a, b: False)
    probe = tmp_path / "probe"
    shutil.copytree(one_episode, probe)
    steps = steps_of(lambda: add_episode(W.DatasetWriter.open(probe), seed=1))
    point = "meta:swapped" if swap else "meta:aside"
    assert point in steps and "staged" in steps and "done" in steps
    assert len([s for s in steps if s.startswith("meta:wrote")]) == 4, steps  # tasks, episodes, stats, info
    after = steps[steps.index(point) + (0 if swap else 1) :]  # from here on, episode 1 is committed
    for step in steps:
        root = tmp_path / step.replace("/", "_").replace(" ", "_").replace(":", "_")
        shutil.copytree(one_episode, root)
        kill_at(step, lambda root=root: add_episode(W.DatasetWriter.open(root), seed=1))
        committed = 2 if step in after else 1
        if step == "meta:aside":  # the fallback's one window: meta/ set aside, the new one not yet in place
            assert not (root / L.INFO_PATH).exists()
            W.repair_meta(root)  # what --resume does first
        assert errors(root) == [], step
        assert len(L.read_episodes(root)) == committed, step
        check_resumes(root, committed)


def test_kill_while_creating_a_dataset(tmp_path):
    steps = steps_of(lambda: new_dataset(tmp_path / "probe"))
    assert steps[-1] == "meta:cleaned" and "meta:wrote meta/info.json" in steps
    for step in steps:
        root = tmp_path / step.replace("/", "_").replace(" ", "_").replace(":", "_")
        kill_at(step, lambda root=root: new_dataset(root))
        if (root / L.INFO_PATH).exists():  # meta/ is in place: an empty, valid dataset
            assert errors(root) == []
            writer = W.DatasetWriter.open(root)
        else:  # nothing but .staging leftovers: not yet a dataset, and creating it again works
            assert [p.name for p in root.iterdir()] == [L.STAGING]
            writer = new_dataset(root)
        add_episode(writer, seed=0)
        assert errors(root) == [] and not list((root / L.STAGING).glob("meta-*"))


def test_two_aborted_episodes_set_aside_in_the_same_second_are_both_kept(one_episode, tmp_path, monkeypatch):
    """A recorder killed twice in one second (tools/kill_record.py does) leaves two aborted copies of the same
    staging folder; the second must not collide with the first, and neither is deleted."""
    monkeypatch.setattr(W.time, "strftime", lambda fmt: "20261203-120000")  # both aborts in the same second
    root = tmp_path / "ds"
    shutil.copytree(one_episode, root)
    for attempt in range(2):
        staging = root / L.STAGING / "ep-000001"
        staging.mkdir(parents=True)
        (staging / "cam.mp4").write_bytes(b"partial %d" % attempt)  # what a kill mid-episode leaves
        with pytest.warns(UserWarning, match="moved uncommitted"):
            W.DatasetWriter.open(root)
    kept = sorted((root / L.STAGING / "aborted").iterdir())
    assert [p.name for p in kept] == ["20261203-120000-.staging_ep-000001", "20261203-120000-.staging_ep-000001-1"]
    assert [(p / "cam.mp4").read_bytes() for p in kept] == [b"partial 0", b"partial 1"]
    assert add_episode(W.DatasetWriter.open(root), seed=1) == 1 and errors(root) == []


def test_exchange_swaps_two_folders(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "x").write_text("from a")
    (b / "y").write_text("from b")
    if not W.exchange(a, b):
        pytest.skip("no atomic swap on this platform/filesystem (the fallback is tested above)")
    assert [p.name for p in a.iterdir()] == ["y"] and [p.name for p in b.iterdir()] == ["x"]
    with pytest.raises(FileNotFoundError):
        W.exchange(a, tmp_path / "missing")


CHILD = """
import os, signal, sys
import numpy as np
sys.path.insert(0, {tests!r})
import test_writer as T
from vla_sdk.data import writer as W
W.crash_point = lambda step: os.kill(os.getpid(), signal.SIGKILL) if step == {step!r} else None
T.add_episode(W.DatasetWriter.open({root!r}), seed=1)
"""


@pytest.mark.parametrize("step", ["meta:wrote meta/info.json", "meta:swapped"])
def test_real_sigkill_at_a_hook_point_matches(one_episode, tmp_path, step):
    root = tmp_path / "d"
    shutil.copytree(one_episode, root)
    code = CHILD.format(tests=str(Path(__file__).parent), step=step, root=str(root))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert list((root / L.STAGING).glob("meta-new-*")), "the kill left no meta folder: the hook did not fire"
    assert errors(root) == []
    committed = 2 if step == "meta:swapped" else 1
    assert len(L.read_episodes(root)) == committed
    check_resumes(root, committed)


def test_random_sigkills_of_vla_record(tmp_path):
    """Five SIGKILLs of real `vla record --resume` children at random moments (tools/kill_record.py, seeded)."""
    spec = importlib.util.spec_from_file_location("kill_record", REPO / "tools" / "kill_record.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    t0 = time.perf_counter()
    s = tool.run(tmp_path / "k", kills=5, episodes=2, rng_seed=1)
    assert s["kills"] == 5 and s["child_failures"] == []
    assert s["invalid_after_kill"] == 0, s["invalid_examples"]
    assert s["episodes_lost"] == s["not_contiguous"] == s["wrong_seeds"] == 0
    assert s["target_reached"] and s["rounds_complete"] >= 1 and s["ok"]
    assert time.perf_counter() - t0 < 240  # ~40 s on 2 busy cores
    assert os.path.isdir(tmp_path / "k" / "round-000" / "meta")
