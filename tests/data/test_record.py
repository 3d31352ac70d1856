"""`vla record`: CLI, crash safety (SIGKILL mid-episode), --resume, replay."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

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


def test_action_noise_records_clean_actions_from_pushed_states(tmp_path):
    """DART: the arm executes noisy actions, the dataset keeps the expert's clean ones."""
    kw = {"episodes": 1, "cameras": ("cam_external",), "image_size": (16, 16)}
    record(RecordConfig("fr3/pick_place", tmp_path / "clean", **kw), progress=False)
    record(RecordConfig("fr3/pick_place", tmp_path / "dart", action_noise=0.02, **kw), progress=False)
    clean = Dataset(tmp_path / "clean").episode(0, decode_video=False)
    dart = Dataset(tmp_path / "dart").episode(0, decode_video=False)
    assert Dataset(tmp_path / "dart").episodes[0]["extra"]["action_noise"] == 0.02
    n = 50  # the pick is planned once at reset (the place is replanned from measured poses after the lift)
    np.testing.assert_allclose(dart["action"][:n], clean["action"][:n], atol=1e-6)
    arm = slice(0, 7)  # fr3: 7 arm joints, then the gripper
    drift = np.abs(dart["observation.state"][1:n, arm] - clean["observation.state"][1:n, arm])
    assert 0.005 < drift.max() < 0.2  # pushed off the demonstration, not thrown around


def test_action_noise_process():
    from vla_sdk.data.record import ActionNoise
    from vla_sdk.embodiment import load_embodiment

    emb = load_embodiment("aloha2")
    noise = ActionNoise(emb, std=0.05, tau=0.5, dt=0.02, seed=3)
    zero = np.zeros(emb.action_dim)
    draws = np.stack([noise(zero) for _ in range(20000)])
    assert np.all(draws[:, emb.gripper_indices] == 0.0)
    arm = np.delete(draws, emb.gripper_indices, axis=1)
    assert np.allclose(arm.std(axis=0), 0.05, rtol=0.2)
    lag1 = np.mean([np.corrcoef(arm[:-1, j], arm[1:, j])[0, 1] for j in range(arm.shape[1])])
    assert abs(lag1 - np.exp(-0.02 / 0.5)) < 0.02  # smooth, not white
    again = ActionNoise(emb, std=0.05, tau=0.5, dt=0.02, seed=3)
    np.testing.assert_array_equal(again(zero), draws[0])  # seeded by the episode seed


def test_action_noise_bad_input(tmp_path):
    with pytest.raises(ValueError, match="--action-noise must be in"):
        RecordConfig("fr3/pick_place", tmp_path, action_noise=-0.1)
    with pytest.raises(ValueError, match="--action-noise needs --teleop scripted"):
        RecordConfig("fr3/pick_place", tmp_path, teleop="replay", source=tmp_path, action_noise=0.02)


def test_recording_stores_the_object_positions(fresh_recording, tmp_path):
    """Simulated recordings carry ``observation.environment_state``: the objects' positions, named, as they were at
    each frame (the cube starts where the seed put it and is lifted); a dataset recorded before the feature existed
    is resumed without it, unchanged in its schema."""
    from vla_sdk.sim.env import VlaEnv

    ds = Dataset(fresh_recording)
    assert ds.features[L.ENV_STATE]["names"] == ["cube.x", "cube.y", "cube.z"]
    env = VlaEnv("aloha2/transfer_cube", cameras=[])
    for k in range(2):
        ep = ds.episode(k, decode_video=False)
        env.reset(seed=ep["seed"])
        np.testing.assert_allclose(ep[L.ENV_STATE][0], env.physics.body_pos("cube"), atol=1e-6)
        assert ep[L.ENV_STATE][:, 2].max() > ep[L.ENV_STATE][0, 2] + 0.05  # lifted during the episode
    assert np.asarray(ds.stats()[L.ENV_STATE]["std"]).shape == (3,)
    assert validate(fresh_recording) == []
    old = tmp_path / "old"
    shutil.copytree(fresh_recording, old)
    info = json.loads((old / L.INFO_PATH).read_text())
    del info["features"][L.ENV_STATE]
    (old / L.INFO_PATH).write_text(json.dumps(info))
    cams = ("cam_high", "cam_left_wrist")
    cfg = RecordConfig("aloha2/transfer_cube", old, episodes=3, resume=True, cameras=cams, image_size=(32, 32))
    record(cfg, progress=False, log=print)
    again = Dataset(old)
    assert again.num_episodes == 3 and L.ENV_STATE not in again.features
    assert L.ENV_STATE not in again.episode(2, decode_video=False)


TINY_CAMS = ("cam_high", "cam_left_wrist")  # as the `recorded` sample and `fresh_recording` (conftest.py)
RESUME = ["--cameras", "cam_high", "cam_left_wrist", "--image-size", "32", "32", "--resume"]


def flip_byte(path, at=0.5):
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0xFF
    path.write_bytes(bytes(data))


def test_committed_episodes_carry_checksums_of_their_files(fresh_recording):
    keys = ["observation.images.cam_high", "observation.images.cam_left_wrist"]
    for ep in L.read_episodes(fresh_recording):
        files = L.episode_files(ep["episode_index"], keys)
        assert set(ep["sha256"]) == set(files) == {"data", *keys}
        for key, rel in files.items():
            assert ep["sha256"][key] == L.file_sha256(fresh_recording / rel), rel


@pytest.mark.parametrize("which", ["videos/observation.images.cam_left_wrist/chunk-000/file-001.mp4", L.data_path(0)])
def test_resume_refuses_a_changed_file_unless_told(dataset_copy, capsys, which):
    from vla_sdk.errors import InputError

    flip_byte(dataset_copy / which)
    before = sorted(p.relative_to(dataset_copy) for p in dataset_copy.rglob("*"))
    cfg = RecordConfig(
        "aloha2/transfer_cube", dataset_copy, episodes=3, resume=True, cameras=TINY_CAMS, image_size=(32, 32)
    )
    with pytest.raises(InputError, match=f"{which}: content changed since episode") as e:
        record(cfg, progress=False, log=lambda m: None)
    assert "--ignore-checksums" in str(e.value)
    assert sorted(p.relative_to(dataset_copy) for p in dataset_copy.rglob("*")) == before  # refused untouched
    cmd = ["record", "aloha2/transfer_cube", "--episodes", "3", "--out", str(dataset_copy), *RESUME]
    assert main(cmd) == InputError.exit_code
    assert which in capsys.readouterr().err
    if which.endswith(".mp4"):  # the writer never decodes old mp4s: with the flag, recording goes on
        assert main([*cmd, "--ignore-checksums"]) == 0
        eps = L.read_episodes(dataset_copy)
        assert len(eps) == 3 and eps[2]["sha256"]["data"] == L.file_sha256(dataset_copy / L.data_path(2))


def test_dataset_recorded_before_checksums_still_resumes(dataset_copy):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = dataset_copy / L.EPISODES_PATH
    t = pq.read_table(path)
    for col in [c for c in t.column_names if c.startswith("vla/sha256/")]:
        t = t.drop_columns([col])  # as an older SDK wrote it
    pq.write_table(t, path)
    assert [e["sha256"] for e in L.read_episodes(dataset_copy)] == [None, None]
    cmd = ["record", "aloha2/transfer_cube", "--episodes", "3", "--out", str(dataset_copy), *RESUME]
    assert main(cmd) == 0
    eps = L.read_episodes(dataset_copy)
    assert [e["sha256"] is None for e in eps] == [True, True, False]
    assert pa.types.is_string(pq.read_table(path).schema.field("vla/sha256/data").type)
