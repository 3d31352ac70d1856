"""Keyboard teleop, driven through a pseudo-terminal exactly as a person at a terminal would drive it."""

from __future__ import annotations

import io
import os
import pty
import select
import signal
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from vla_sdk.data.keyboard import record_keyboard, split_keys
from vla_sdk.data.reader import Dataset
from vla_sdk.data.record import RecordConfig
from vla_sdk.data.validate import validate
from vla_sdk.embodiment import load_embodiment
from vla_sdk.sim.ik import EndEffectorIK

TASK = "fr3/pick_place"


class PtyProcess:
    """A child process whose stdin/stdout/stderr are a pty; its output is collected by a reader thread."""

    def __init__(self, args: list[str], cwd: Path):
        self.master, self.slave = pty.openpty()
        self.initial_attrs = termios.tcgetattr(self.slave)
        env = {**os.environ, "MUJOCO_GL": "egl"}
        self.proc = subprocess.Popen(
            args, stdin=self.slave, stdout=self.slave, stderr=self.slave, cwd=cwd, env=env, start_new_session=True
        )
        self.buf, self.pos, self.stop = bytearray(), 0, False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while not self.stop:
            if select.select([self.master], [], [], 0.05)[0]:
                try:
                    self.buf += os.read(self.master, 4096)
                except OSError:
                    return

    @property
    def text(self) -> str:
        return self.buf.decode(errors="replace")

    def expect(self, pattern: str, timeout: float = 30.0) -> None:
        """Wait until ``pattern`` appears in the output after the previous match."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            i = self.text.find(pattern, self.pos)
            if i >= 0:
                self.pos = i + len(pattern)
                return
            if self.proc.poll() is not None and self.text.find(pattern, self.pos) < 0:
                time.sleep(0.2)  # let the reader drain the last output
                if self.text.find(pattern, self.pos) < 0:
                    break
            time.sleep(0.02)
        raise AssertionError(f"{pattern!r} not in the output (exit code {self.proc.poll()}):\n{self.text[-3000:]}")

    def send(self, keys: str, gap: float = 0.0) -> None:
        """Type ``keys``, one write per key ``gap`` seconds apart (gap 0: all in one write)."""
        for chunk in keys if gap else [keys]:
            os.write(self.master, chunk.encode())
            time.sleep(gap)

    def wait(self, timeout: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.stop = True
            self.thread.join()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.stop = True
        self.thread.join()
        os.close(self.master)
        os.close(self.slave)


def _record_cmd(out: Path) -> list[str]:
    return [sys.executable, "-m", "vla_sdk.cli", "record", TASK, "--teleop", "keyboard", "--episodes", "1"] + [
        "--out",
        str(out),
        "--cameras",
        "cam_wrist",
        "--image-size",
        "32",
        "32",
    ]


def _assert_no_leftovers(out: Path, episodes: int) -> None:
    assert len(list(out.glob("data/*/*.parquet"))) == episodes
    assert len(list(out.glob("videos/*/*/*.mp4"))) == episodes
    assert not list(out.glob(".staging/**/*")), "a discarded episode left files behind"


@pytest.fixture
def session(tmp_path):
    procs = []

    def start(out: Path) -> PtyProcess:
        procs.append(PtyProcess(_record_cmd(out), tmp_path))
        return procs[-1]

    yield start
    for p in procs:
        p.close()


def test_keyboard_session_discard_move_grip_save(tmp_path, session):
    out = tmp_path / "kb"
    p = session(out)
    p.expect("(Ctrl-C too)")
    p.expect("seed 0 |")
    p.send("rrrrrr", gap=0.05)  # move up in the first episode, then throw it away
    p.send("x")
    p.expect("discarded seed 0")
    p.expect("seed 1 |")  # x went on to the next seed
    p.send("wwwwwwdddddd", gap=0.05)  # +x, then -y
    p.send(" ")  # close the gripper
    time.sleep(1.0)  # the stroke takes 0.4 s, the fingers a bit longer
    p.send("n")
    assert p.wait(30) == 0, p.text[-3000:]
    p.expect("saved episode 0 (seed 1, failure)")
    p.expect("1 episodes (1 recorded now, 0 successful)")
    # the terminal is back in the mode it was in before (echo and line editing on)
    assert termios.tcgetattr(p.slave) == p.initial_attrs

    assert [e for e in validate(out) if e.severity == "error"] == []
    ds = Dataset(out)
    assert ds.num_episodes == 1 and ds.num_frames == ds.episodes[0]["length"]
    ep = ds.episode(0, decode_video=False)
    assert ep["seed"] == 1 and ep["success"] is False
    assert ds.episodes[0]["extra"]["teleop"] == "keyboard"
    _assert_no_leftovers(out, 1)

    states = ep["observation.state"]
    ik = EndEffectorIK(load_embodiment("fr3"))
    ik.reset(states[0])
    first = ik.pose("hand")[0].copy()
    ik.reset(states[-1])
    moved = ik.pose("hand")[0] - first
    assert moved[0] > 0.015 and moved[1] < -0.015, moved  # 6 presses each: 3 cm commanded along +x and -y
    assert abs(moved[2]) < 0.01, moved  # the "up" presses went with the discarded episode
    assert states[0, 7] > 0.9 and states[-1, 7] < 0.2  # the gripper closed after space
    assert ep["action"][-1, 7] == 0.0


def test_keyboard_sigint_keeps_dataset_consistent(tmp_path, session):
    out = tmp_path / "kb"
    p = session(out)
    p.expect("(Ctrl-C too)")
    p.expect("seed 0 |")
    p.send("rr", gap=0.05)
    os.kill(p.proc.pid, signal.SIGINT)
    assert p.wait(30) == 130, p.text[-3000:]
    assert termios.tcgetattr(p.slave) == p.initial_attrs
    ds = Dataset(out)  # still a readable (empty) dataset that --resume can continue
    assert ds.num_episodes == 0 and ds.info["total_episodes"] == 0
    _assert_no_leftovers(out, 0)


def test_an_episode_the_env_ended_is_held_unstepped_until_the_operator_saves_it(tmp_path, monkeypatch):
    """In process, on a pty: the env's time limit (5 steps here) ends the episode after exactly 5 frames; it is then
    held (still reading keys, never stepped again) until "n" saves it, however long the operator takes."""
    import vla_sdk.data.keyboard as kb

    class Short(kb.VlaEnv):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.max_steps = 5

    monkeypatch.setattr(kb, "VlaEnv", Short)
    master, slave = pty.openpty()
    out = io.StringIO()

    def operator():
        deadline = time.monotonic() + 60
        while "time limit: n save" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # held: ~15 more ticks at 50 Hz that must not step the env
        os.write(master, b"n")

    typist = threading.Thread(target=operator, daemon=True)
    typist.start()
    cfg = RecordConfig(
        TASK, tmp_path / "kb", episodes=1, teleop="keyboard", cameras=("cam_wrist",), image_size=(32, 32)
    )
    try:
        with open(slave, closefd=False) as stream:
            summary = record_keyboard(cfg, stream=stream, out=out)
    finally:
        typist.join(5)
        os.close(master)
        os.close(slave)
    assert summary["per_episode"] == [{"episode_index": 0, "seed": 0, "success": False, "frames": 5}], out.getvalue()
    assert Dataset(cfg.out).episodes[0]["length"] == 5


def test_keyboard_needs_a_terminal(tmp_path):
    cfg = RecordConfig(task=TASK, out=tmp_path / "kb", episodes=1, teleop="keyboard")
    with pytest.raises(ValueError, match="--teleop scripted"):
        record_keyboard(cfg, stream=io.StringIO())
    assert not (tmp_path / "kb").exists()  # it failed before any work


def test_split_keys():
    assert split_keys("wq \t\r") == ["w", "q", " ", "\t", "\r"]
    assert split_keys("\x1b[A\x1bOBn\x1b[1;5Cx") == ["n", "x"]  # arrow keys are ignored
    assert split_keys("a\x1b") == ["a", "\x1b"]  # a lone ESC is a key (quit)
    assert np.all([len(k) == 1 for k in split_keys("rrrr")])
