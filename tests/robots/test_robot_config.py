"""Robots by name (`--robot`): config files, the twin an emulated robot is seen through, leader-arm recording on the
emulated buses, `vla robot emulate` + kill -9 of `vla run` (the servos' own watchdog stops them), device cameras."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("dynamixel_sdk")

from vla_sdk.cli import main  # noqa: E402
from vla_sdk.data.reader import Dataset  # noqa: E402
from vla_sdk.embodiment import load_embodiment  # noqa: E402
from vla_sdk.errors import InputError, NotFound, UsageError  # noqa: E402
from vla_sdk.protocols import Robot, RobotNotConnected  # noqa: E402
from vla_sdk.robots.aloha2 import Aloha2Leader, Aloha2Robot, default_calibration  # noqa: E402
from vla_sdk.robots.aloha2_emulated import EmulatedAloha2  # noqa: E402
from vla_sdk.robots.config import load_config, open_robot  # noqa: E402
from vla_sdk.robots.twin import TwinRobot  # noqa: E402

EMB = load_embodiment("aloha2")
TICK = 2 * np.pi / 4096


def _config(tmp_path, **changes) -> dict:
    raw = {
        "format_version": 1,
        "driver": "aloha2",
        "followers": {"ports": {"left": "/dev/null", "right": "/dev/null"}, "calibration": "cal.json"},
        "cameras": "twin",
    }
    raw.update(changes)
    default_calibration().save(tmp_path / "cal.json")
    return raw


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"format_version": 2}, "field 'format_version': expected 1, got 2"),
        ({"driver": "ur5"}, "field 'driver': expected one of"),
        ({"cameras": ["cam_high"]}, "field 'cameras'"),
        ({"followers": {"ports": "/dev/ttyUSB0", "calibration": "cal.json"}}, "field 'followers.ports'"),
        ({"followers": {"ports": {}, "calibration": 3}}, "field 'followers.calibration'"),
    ],
)
def test_bad_robot_configs_name_the_file_and_field(tmp_path, changes, match):
    path = tmp_path / "robot.json"
    path.write_text(json.dumps(_config(tmp_path, **changes)))
    with pytest.raises(InputError, match=match) as e:
        load_config(path)
    assert str(path) in str(e.value)


def test_open_robot_refuses_what_does_not_fit(tmp_path):
    kw = dict(cameras=("cam_high",), image_size=(24, 32))
    with pytest.raises(NotFound, match="built-in robots: sim, aloha2-emulated"):
        with open_robot(str(tmp_path / "nope.json"), task="aloha2/transfer_cube", **kw):
            pass
    path = tmp_path / "robot.json"
    path.write_text(json.dumps(_config(tmp_path, followers={"ports": {}, "calibration": "cal.json", "speed": 1})))
    with pytest.raises(InputError, match="field 'followers.speed': unknown"):
        with open_robot(str(path), task="aloha2/transfer_cube", **kw):
            pass
    path.write_text(json.dumps(_config(tmp_path)))
    with pytest.raises(UsageError, match="drives aloha2, --task fr3/pick_place is for fr3"):
        with open_robot(str(path), task="fr3/pick_place", **kw):
            pass
    with pytest.raises(InputError, match="field 'leaders': missing"):
        with open_robot(str(path), task="aloha2/transfer_cube", leader=True, **kw):
            pass
    path.write_text(json.dumps(_config(tmp_path, cameras={"cam_low": "/dev/video0"})))
    with pytest.raises(InputError, match=r"no device for camera\(s\) \['cam_high'\]"):
        with open_robot(str(path), task="aloha2/transfer_cube", **kw):
            pass
    with pytest.raises(UsageError, match="leader arms"):
        with open_robot("sim", task="aloha2/transfer_cube", leader=True, **kw):
            pass


def test_the_twin_satisfies_the_protocol_and_follows_the_servos(tmp_path):
    with EmulatedAloha2(tmp_path) as config:
        robot = TwinRobot(Aloha2Robot(config), "aloha2/transfer_cube", ("cam_high",), (24, 32), seed=5)
        assert isinstance(robot, Robot) and not robot.is_connected
        assert robot.observation_features["observation.images.cam_high"]["shape"] == [24, 32, 3]
        with pytest.raises(RobotNotConnected):
            robot.observe()
        try:
            robot.connect()
            obs = robot.observe()
            assert obs["images"]["cam_high"].shape == (24, 32, 3) and obs["instruction"]
            np.testing.assert_allclose(obs["state"], EMB.home, atol=2 * TICK)
            target = np.array(EMB.home)
            target[0] += 0.05  # left waist
            for _ in range(25):
                robot.send_action(target)
                time.sleep(0.02)
                obs = robot.observe()
            assert abs(obs["state"][0] - target[0]) < 3 * TICK  # the servo got there ...
            waist = robot.world.physics.state()[0]
            assert abs(waist - target[0]) < 0.01  # ... and the twin's arm with it
            assert robot.status() == {"success": False, "done": False}
        finally:
            robot.disconnect()


def test_leaders_read_hold_and_release(tmp_path):
    emu = EmulatedAloha2(tmp_path, leaders=True)
    emu.start()
    try:
        with Aloha2Leader(emu.leader_config) as leader:
            np.testing.assert_allclose(leader.read(), EMB.home, atol=2 * TICK)
            pose = np.array(EMB.home)
            pose[[1, 8]] += (0.2, -0.3)  # left shoulder, right shoulder
            pose[6] = 0.4  # left gripper opening
            emu.push_leaders(pose)  # a hand moves them (torque is off)
            time.sleep(0.05)
            read = leader.read()
            np.testing.assert_allclose(read[:6], pose[:6], atol=2 * TICK)
            assert abs(read[6] - 0.4) < 2e-3
            leader.hold(np.array(EMB.home))  # torque on: the leaders drive back to home ...
            time.sleep(0.4)
            emu.push_leaders(pose)  # ... and a hand cannot move them while held
            time.sleep(0.05)
            np.testing.assert_allclose(leader.read()[:6], np.array(EMB.home)[:6], atol=3 * TICK)
            leader.release()
            emu.push_leaders(pose)
            time.sleep(0.05)
            np.testing.assert_allclose(leader.read()[:6], pose[:6], atol=2 * TICK)
    finally:
        emu.stop()


def test_record_from_emulated_leader_arms_then_replay_in_sim(tmp_path, capsys):
    data = tmp_path / "lead"
    rec = ["record", "aloha2/transfer_cube", "--robot", "aloha2-emulated", "--teleop", "leader", "--episodes", "2"]
    rec += ["--episode-seconds", "1", "--cameras", "cam_high", "--image-size", "24", "32", "--out", str(data)]
    assert main([*rec, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["episodes"] == 2 and [e["seed"] for e in summary["per_episode"]] == [0, 1]
    assert main(["dataset", "validate", str(data)]) == 0
    capsys.readouterr()
    ds = Dataset(data)
    ep = ds.episode(1)
    assert ep["images"]["cam_high"].shape[1:] == (24, 32, 3)
    assert 5 <= len(ep["action"]) <= 51  # 1 s at 50 Hz (late steps on a loaded machine make fewer)
    # the leaders moved (the scripted hand), the followers followed them, a step behind
    assert np.ptp(ep["action"], axis=0).max() > 0.02
    lag = np.abs(ep["observation.state"][1:] - ep["action"][:-1]).max(axis=1)
    assert np.median(lag) < 0.1
    assert ds.info["vla"]["recorded_on"] == "aloha2-emulated"
    # the recorded actions run in the simulator from the episodes' seeds
    replay = ["record", "aloha2/transfer_cube", "--teleop", "replay", "--source", str(data), "--episodes", "2"]
    replay += ["--cameras", "cam_high", "--image-size", "24", "32", "--out", str(tmp_path / "replayed")]
    assert main([*replay, "--json"]) == 0
    replayed = json.loads(capsys.readouterr().out)
    assert replayed["episodes"] == 2 and replayed["replay_max_state_error"] < 0.2  # servo model vs simulated arms


def _wait_for(path, seconds: float):
    t0 = time.time()
    while not path.exists():
        assert time.time() - t0 < seconds, f"{path} did not appear in {seconds} s"
        time.sleep(0.1)


def test_kill_9_of_vla_run_lets_the_servo_watchdog_stop_the_arms(aloha_policy, tmp_path):
    """`vla robot emulate` keeps the buses in its own process; `vla run --robot robot.json` drives them; kill -9
    of `vla run` leaves no one to turn torque off: the servos' Bus Watchdog stops every one of them."""
    env = {**os.environ, "MUJOCO_GL": "egl"}
    emulate = [sys.executable, "-m", "vla_sdk.cli", "robot", "emulate", "aloha2", "--dir", str(tmp_path / "emu")]
    emu = subprocess.Popen([*emulate, "--watchdog-s", "0.5", "--json"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        config = tmp_path / "emu" / "robot.json"
        _wait_for(config, 60)
        run = [sys.executable, "-m", "vla_sdk.cli", "run", str(aloha_policy / "run"), "--task", "aloha2/transfer_cube"]
        run += ["--robot", str(config), "--max-seconds", "120", "--video", str(tmp_path / "run.mp4")]
        proc = subprocess.Popen(run, stderr=subprocess.PIPE, text=True, env=env)
        for line in proc.stderr:  # the progress line at t = 1 s: the policy is driving the arms
            if "t=  1.0 s" in line:
                break
        else:
            pytest.fail(f"`vla run` ended before driving the robot (rc {proc.wait()})")
        t_kill = time.monotonic()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        time.sleep(1.0)
    finally:
        emu.send_signal(signal.SIGINT)
        out, _ = emu.communicate(timeout=30)
    # (a loaded machine can stall `vla run` past the watchdog before the kill too: the driver re-arms it then)
    events = [e for e in json.loads(out)["events"] if e["t"] > t_kill]
    assert sorted((e["arm"], e["id"]) for e in events) == sorted(
        (a, i) for a in ("left", "right") for i in range(1, 10)
    )
    assert all(500 <= e["silent_ms"] < 700 for e in events), [e["silent_ms"] for e in events]
    assert all(0 < e["t"] - t_kill < 0.9 for e in events)


def test_device_cameras_stream_the_newest_frame_at_the_asked_size(tmp_path):
    from vla_sdk.errors import RuntimeFailure
    from vla_sdk.robots.cameras import DeviceCameras
    from vla_sdk.video import VideoWriter

    clip = tmp_path / "cam.mp4"  # a recorded camera: a bright square moving right, 30 fps
    with VideoWriter(clip, fps=30) as w:
        for k in range(30):
            img = np.zeros((120, 160, 3), np.uint8)
            img[40:80, 4 * k : 4 * k + 40] = 255
            w.write(img)
    cams = DeviceCameras({"cam_high": str(clip)}, image_size=(60, 80))
    try:
        first = cams()["cam_high"]
        assert first.shape == (60, 80, 3) and first.dtype == np.uint8
        time.sleep(0.5)  # the file plays at its own rate: the newest frame moved on
        later = cams()["cam_high"]
        col = lambda img: np.argmax(img[30, :, 0] > 128)  # noqa: E731 - the square's left edge
        assert col(later) > col(first)
    finally:
        cams.stop()
    with pytest.raises(NotFound, match="camera 'cam_low': /dev/video99 does not exist"):
        DeviceCameras({"cam_low": "/dev/video99"}, (60, 80)).start()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    broken = DeviceCameras({"cam_high": str(bad)}, (60, 80))
    with pytest.raises(RuntimeFailure, match="camera 'cam_high'"):
        broken()
    broken.stop()
