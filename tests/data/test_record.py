"""`vla record`: CLI, crash safety (SIGKILL mid-episode), --resume, replay."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

from vla_sdk.cli import main
from vla_sdk.data import layout as L
from vla_sdk.data.reader import Dataset
from vla_sdk.data.record import RecordConfig, record
from vla_sdk.data.validate import validate

ARGS = ["--cameras", "cam_high", "--image-size", "32", "32"]


def test_record_cli_then_validate_and_info(tmp_path, capsys):
    for task in ("aloha2/transfer_cube", "fr3/pick_place"):
        out = tmp_path / task.replace("/", "_")
        cams = ["--cameras", "cam_external", "--image-size", "32", "32"] if task.startswith("fr3") else ARGS
        assert main(["record", task, "--teleop", "scripted", "--episodes", "2", "--out", str(out), *cams]) == 0
        assert main(["dataset", "validate", str(out)]) == 0
        capsys.readouterr()
        assert main(["dataset", "info", str(out), "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
        assert info["episodes"] == 2 and info["success_rate"] == 1.0 and info["task"] == task
        assert info["frames"] == Dataset(out).num_frames > 0


def test_sigkill_during_third_episode_then_resume(tmp_path):
    out = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "vla_sdk.cli",
        "record",
        "aloha2/transfer_cube",
        "--episodes",
        "4",
        "--out",
        str(out),
        *ARGS,
    ]
    proc = subprocess.Popen(
        cmd, env={**os.environ, "MUJOCO_GL": "egl"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    staging3 = out / L.STAGING / "ep-000002" / "observation.images.cam_high.mp4"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        info = json.loads((out / L.INFO_PATH).read_text()) if (out / L.INFO_PATH).exists() else {}
        if info.get("total_episodes") == 2 and staging3.exists():
            time.sleep(0.3)  # well inside the third episode
            break
        time.sleep(0.05)
    assert proc.poll() is None, "recording ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert [p for p in validate(out) if p.severity == "error"] == []
    assert Dataset(out).num_episodes == 2
    summary = record(
        RecordConfig("aloha2/transfer_cube", out, episodes=4, resume=True, cameras=("cam_high",), image_size=(32, 32)),
        progress=False,
        log=lambda m: None,
    )
    assert summary["recorded"] == 2 and summary["episodes"] == 4
    ds = Dataset(out)
    assert ds.num_episodes == 4 and [e["seed"] for e in ds.episodes] == [0, 1, 2, 3]
    assert [e["start"] for e in ds.episodes] == list(np.cumsum([0] + [e["length"] for e in ds.episodes[:-1]]))
    assert [p for p in validate(out) if p.severity == "error"] == []


def test_resume_refuses_a_different_task(recorded, tmp_path):
    import shutil

    import pytest

    out = tmp_path / "d"
    shutil.copytree(recorded, out)
    with pytest.raises(ValueError, match="cannot resume"):
        record(
            RecordConfig(
                "aloha2/insertion",
                out,
                episodes=3,
                resume=True,
                cameras=("cam_high", "cam_left_wrist"),
                image_size=(32, 32),
            ),
            progress=False,
        )


def test_replay_reproduces_states(recorded, tmp_path):
    out = tmp_path / "replay"
    summary = record(
        RecordConfig(
            "aloha2/transfer_cube",
            out,
            episodes=2,
            teleop="replay",
            source=recorded,
            cameras=("cam_high", "cam_left_wrist"),
            image_size=(32, 32),
        ),
        progress=False,
    )
    assert summary["replay_max_state_error"] < 1e-4
    a, b = Dataset(recorded), Dataset(out)
    for k in range(2):
        np.testing.assert_array_equal(
            a.episode(k, decode_video=False)["action"], b.episode(k, decode_video=False)["action"]
        )
        np.testing.assert_allclose(
            a.episode(k, decode_video=False)["observation.state"],
            b.episode(k, decode_video=False)["observation.state"],
            atol=1e-4,
        )
    assert [e["success"] for e in b.episodes] == [True, True]
