import json

from vla_sdk.cli import main
from vla_sdk.sim import list_tasks
from vla_sdk.video import read_video


def test_sim_list_json(capsys):
    assert main(["sim", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["task"] for r in rows] == list_tasks()
    assert [r["task"] for r in rows if r["held_out"]] == list_tasks(held_out=True) != []
    main(["sim", "list"])
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split()[0] for ln in lines if ln.endswith("[held out]")] == list_tasks(held_out=True)


def test_sim_run_writes_a_tiled_video(tmp_path, capsys):
    video = tmp_path / "tc.mp4"
    rc = main(
        [
            "sim",
            "run",
            "aloha2/transfer_cube",
            "--episodes",
            "1",
            "--seed",
            "5",
            "--json",
            "--video",
            str(video),
            "--video-size",
            "48",
            "64",
        ]
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["episodes"] == 1 and out["success_rate"] == 1.0 and out["video"] == str(video)
    frames = read_video(video)
    steps = out["per_episode"][0]["steps"]
    assert frames.shape[1:] == (96, 128, 3)  # 4 cameras of 48x64 tiled 2x2
    assert len(frames) == 1 + steps // 2  # 50 Hz control filmed at 25 fps
    assert frames.std() > 5


def test_unknown_task_exit_code_and_message(capsys):
    assert main(["sim", "run", "fr3/pick_plase", "--no-video"]) == 2
    err = capsys.readouterr().err
    assert "Did you mean 'fr3/pick_place'" in err and "aloha2/transfer_cube" in err


def test_doctor_json(capsys):
    rc = main(["doctor", "--json"])
    report = json.loads(capsys.readouterr().out)
    names = {c["name"]: c for c in report["checks"]}
    assert {"jax", "mujoco", "rendering", "video"} <= set(names)
    assert rc == (0 if report["ok"] else 1)
    assert names["rendering"]["ok"], names["rendering"]


def test_doctor_from_a_plain_shell_renders_headless():
    """No MUJOCO_GL in the environment: the CLI must still pick headless EGL before mujoco is imported."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "MUJOCO_GL"}
    r = subprocess.run(
        [sys.executable, "-m", "vla_sdk.cli", "doctor", "--json"], env=env, capture_output=True, text=True, timeout=300
    )
    checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert checks["rendering"]["ok"], checks["rendering"]
    assert r.returncode == 0, r.stdout


def test_exit_codes_tell_usage_from_input_from_bugs(tmp_path, capsys, monkeypatch):
    """Usage errors exit 2, bad input 1 (one line each, no traceback); any other exception is a bug: exit 3, with
    its traceback and a request for a report (a KeyError from a bug used to print as `vla: error: 'model_config'`)."""
    from vla_sdk import commands

    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--time-budget", "soon"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vla: error: --time-budget") and "Traceback" not in err

    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "info.json").write_text("{not json")
    assert main(["dataset", "info", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "meta/info.json: not valid JSON" in err and "Traceback" not in err

    def buggy(args):
        return {}["model_config"]

    monkeypatch.setattr(commands, "dataset_info", buggy)
    assert main(["dataset", "info", str(tmp_path)]) == 3
    err = capsys.readouterr().err
    assert "Traceback" in err and "KeyError: 'model_config'" in err and "bug in vla-sdk" in err
