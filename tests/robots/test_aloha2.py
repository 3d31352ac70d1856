"""The ALOHA 2 follower robot (vla_sdk.robots.aloha2) on the emulated buses only: two emulator processes, one per
arm, with the real servo IDs and models; the robot talks to their pseudo-terminals with the real dynamixel-sdk and
every check reads the servos back over those ports. Also: calibration files, and the Robot protocol for every
implementation."""

from __future__ import annotations

import dataclasses
import json
import math
import time

import numpy as np
import pytest

dynamixel_sdk = pytest.importorskip("dynamixel_sdk")

from vla_sdk.embodiment import load_embodiment  # noqa: E402
from vla_sdk.errors import InputError, NotFound  # noqa: E402
from vla_sdk.protocols import Robot, RobotNotConnected  # noqa: E402
from vla_sdk.robots.aloha2 import (  # noqa: E402
    VX300S_LAYOUT,
    Aloha2Config,
    Aloha2Robot,
    Calibration,
    GripperCalibration,
    JointCalibration,
    default_calibration,
    load_calibration,
)
from vla_sdk.robots.aloha2_emulated import EmulatedAloha2  # noqa: E402
from vla_sdk.robots.dynamixel_bus import DynamixelError  # noqa: E402
from vla_sdk.robots.dynamixel_emulator import EmulatorProcess  # noqa: E402

EMB = load_embodiment("aloha2")
TICK = 2 * math.pi / 4096  # rad per tick
NAMES = [s.name for s in VX300S_LAYOUT]


def odd_calibration() -> Calibration:
    """Offsets away from the centre, mixed signs (shadows opposite), a gripper that closes at the high end."""
    cal = default_calibration()
    arms = {}
    for k, (arm, servos) in enumerate(cal.arms.items()):
        out = {}
        for i, (name, c) in enumerate(servos.items()):
            if isinstance(c, GripperCalibration):
                out[name] = GripperCalibration(closed=2900.0 - 50 * k, open=1700.0)
            else:
                sign = -1 if i in (0, 7) else 1  # waist and wrist_rotate reversed
                if name.endswith("_shadow"):
                    sign = -out[name.removesuffix("_shadow")].sign
                out[name] = JointCalibration(offset=2048.0 + 37 * i - 11 * k, sign=sign)
        arms[arm] = out
    return Calibration(arms)


@pytest.fixture
def emulated(tmp_path):
    # a 2.5 s watchdog: a loaded test machine may pause longer than the default 0.5 s between two steps
    with EmulatedAloha2(tmp_path, calibration=odd_calibration(), watchdog_s=2.5) as config:
        yield config


def torque(port: str, ids=range(1, 10)) -> list[int]:
    """Torque Enable of every servo, read by the bare ROBOTIS SDK over the port (not through the robot)."""
    port_handler, ph = dynamixel_sdk.PortHandler(port), dynamixel_sdk.PacketHandler(2.0)
    assert port_handler.openPort()
    try:
        out = []
        for dxl_id in ids:
            for _ in range(20):  # a loaded machine can miss answers (the emulators share its CPUs)
                value, result, error = ph.read1ByteTxRx(port_handler, dxl_id, 64)
                if result == dynamixel_sdk.COMM_SUCCESS:
                    break
                time.sleep(0.01)
            assert (result, error) == (dynamixel_sdk.COMM_SUCCESS, 0)
            out.append(value)
        return out
    finally:
        port_handler.closePort()


def drive(robot: Aloha2Robot, target: np.ndarray, tol: float = 2 * TICK, seconds: float = 3.0) -> np.ndarray:
    """Observe + send ``target`` at 50 Hz until the state reaches it (or time runs out); the last state."""
    t_end = time.monotonic() + seconds
    while True:
        state = robot.observe()["state"]
        if np.all(np.abs(state - target) <= tol) or time.monotonic() > t_end:
            return state
        robot.send_action(target)
        time.sleep(1 / robot.control_hz)


def test_calibration_round_trip_in_the_file_and_on_the_bus(emulated):
    cal = load_calibration(emulated.calibration)
    assert cal == odd_calibration()  # what the emulator's helper wrote is what the robot reads
    robot = Aloha2Robot(emulated)
    rng = np.random.default_rng(0)
    for _ in range(20):  # radians -> ticks -> radians, within half a tick (ticks are whole)
        a = rng.uniform(EMB.low, EMB.high) * 0.8
        ticks = robot.to_ticks(a)
        back = robot.to_units(ticks)
        tol = np.where(np.isin(np.arange(14), EMB.gripper_indices), 0.5 / 1100, 0.5 * TICK)
        assert np.all(np.abs(back - a) <= tol + 1e-6)
    with robot:  # and through the servos: a target reached is read back as itself
        start = robot.observe()["state"]
        np.testing.assert_allclose(start, EMB.home, atol=TICK)
        target = start + np.where(np.isin(np.arange(14), EMB.gripper_indices), -0.2, 0.08)
        state = drive(robot, target)
        np.testing.assert_allclose(state, target, atol=2 * TICK)


def test_shadow_servos_get_the_mirrored_goal(emulated):
    with Aloha2Robot(emulated) as robot:
        target = np.array(EMB.home)
        for name in ("left/shoulder", "left/elbow", "right/shoulder", "right/elbow"):
            target[EMB.index(name)] += 0.09
        drive(robot, target)
        ticks = robot.read_ticks()
        goals = {arm: robot.buses[arm].read("goal_position") for arm in ticks}
        cal = robot.calibration.arms
        for arm in ("left", "right"):
            for joint in ("shoulder", "elbow"):
                p, s = NAMES.index(joint), NAMES.index(joint + "_shadow")
                want = target[EMB.index(f"{arm}/{joint}")]
                # both servos aim at the same joint angle, from their own (opposite-signed) calibrations ...
                assert abs(cal[arm][joint].to_units(goals[arm][p]) - want) <= 0.5 * TICK + 1e-9
                assert abs(cal[arm][joint + "_shadow"].to_units(goals[arm][s]) - want) <= 0.5 * TICK + 1e-9
                # ... so the shadow's ticks move opposite to the primary's, and it stands where its primary does
                moved_p = goals[arm][p] - cal[arm][joint].offset
                moved_s = goals[arm][s] - cal[arm][joint + "_shadow"].offset
                assert abs(moved_p + moved_s) <= 1
                angle_s = cal[arm][joint + "_shadow"].to_units(ticks[arm][s])
                assert abs(angle_s - cal[arm][joint].to_units(ticks[arm][p])) <= 2 * TICK


def test_send_action_clamps_to_limits_and_max_step(tmp_path):
    pose = np.array(EMB.home)
    pose[EMB.index("left/shoulder")] = EMB.high[EMB.index("left/shoulder")] - 0.03  # near its upper limit
    with EmulatedAloha2(tmp_path, pose=pose, watchdog_s=2.5, max_step=0.1, max_gripper_step=0.25) as config:
        with Aloha2Robot(config) as robot:
            present = robot.observe()["state"]
            want = present.astype(np.float64).copy()
            action = present.astype(np.float64).copy()
            action[EMB.index("left/waist")] += 5.0  # far: one max step
            action[EMB.index("right/waist")] -= 0.04  # near: as asked
            action[EMB.index("left/shoulder")] += 0.5  # past the limit, which is nearer than a max step
            action[EMB.index("left/gripper")] = -3.0  # a gripper: its own max step
            action[EMB.index("right/elbow")] = 99.0  # far beyond the limit and the max step
            want[EMB.index("left/waist")] += 0.1
            want[EMB.index("right/waist")] -= 0.04
            want[EMB.index("left/shoulder")] = EMB.high[EMB.index("left/shoulder")]
            want[EMB.index("left/gripper")] -= 0.25
            want[EMB.index("right/elbow")] += 0.1
            sent = robot.send_action(action)
            assert sent.dtype == np.float32 and sent.shape == (14,)
            np.testing.assert_allclose(sent, want, atol=1e-6)
            # the servos got exactly that: the goals read back over the bus
            goals = {arm: robot.buses[arm].read("goal_position") for arm in ("left", "right")}
            np.testing.assert_array_equal(
                np.concatenate([goals["left"], goals["right"]]), np.concatenate(list(robot.to_ticks(want).values()))
            )
            assert np.all(sent <= EMB.high + 1e-6) and np.all(sent >= EMB.low - 1e-6)
            with pytest.raises(InputError, match="14 finite numbers"):
                robot.send_action(np.full(14, np.nan))


def test_observe_gives_the_embodiments_state_in_order(tmp_path):
    pose = np.array(EMB.home) + np.linspace(-0.3, 0.35, 14)  # every dimension different
    pose[EMB.gripper_indices] = [0.25, 0.8]
    frames = {cam: np.full((8, 10, 3), i, np.uint8) for i, cam in enumerate(EMB.cameras)}
    with EmulatedAloha2(tmp_path, pose=pose, watchdog_s=2.5) as config:
        with Aloha2Robot(config) as robot:
            obs = robot.observe()
            assert set(obs) == {"images", "state"} and obs["images"] == {}  # no camera source: no images
            assert obs["state"].dtype == np.float32 and obs["state"].shape == (14,)
            np.testing.assert_allclose(obs["state"], pose, atol=TICK)
            assert list(robot.observation_features) == ["observation.state"]
            assert robot.observation_features["observation.state"]["names"] == EMB.names
            modes = robot.buses["right"].read("operating_mode")  # joints: position; gripper: current-based
            assert modes.tolist() == [3] * 8 + [5]
            assert robot.buses["left"].read("torque_enable").tolist() == [1] * 9
        with Aloha2Robot(config, cameras=lambda: frames) as robot:
            obs = robot.observe()
            assert list(obs["images"]) == list(EMB.cameras) and obs["images"]["cam_low"][0, 0, 0] == 1
            assert [k.removeprefix("observation.images.") for k in robot.observation_features][1:] == list(EMB.cameras)


def test_torque_off_after_an_exception(emulated):
    robot = Aloha2Robot(emulated)
    with pytest.raises(RuntimeError, match="policy crashed"):
        with robot:
            robot.send_action(robot.observe()["state"])
            assert robot.buses["left"].read("torque_enable").tolist() == [1] * 9
            raise RuntimeError("policy crashed")
    assert not robot.is_connected
    for port in emulated.ports.values():
        assert torque(port) == [0] * 9
    with pytest.raises(RobotNotConnected, match="connect"):
        robot.observe()
    robot.disconnect()  # again: nothing to do


def test_a_wrong_servo_fails_connect_naming_it(tmp_path):
    emulated = EmulatedAloha2(tmp_path, watchdog_s=2.5)
    right = emulated.servo_configs("right")
    right[7] = dataclasses.replace(right[7], model="XM540-W270")  # wrist_rotate, ID 8: not the configured XM430
    with EmulatorProcess(emulated.servo_configs("left")) as left_emu, EmulatorProcess(right) as right_emu:
        config = Aloha2Config(
            ports={"left": left_emu.port, "right": right_emu.port},
            calibration=default_calibration().save(tmp_path / "cal.json"),
            timeout_s=0.5,
        )
        robot = Aloha2Robot(config)
        with pytest.raises(
            DynamixelError, match=r"'wrist_rotate' \(ID 8\) is XM540-W270 \(1120\), configured as XM430-W350"
        ):
            robot.connect()
        assert not robot.is_connected
        assert torque(left_emu.port) == [0] * 9  # the arm that did connect was left with torque off


def write(tmp_path, raw) -> str:
    path = tmp_path / "cal.json"
    path.write_text(raw if isinstance(raw, str) else json.dumps(raw))
    return str(path)


def _edit(fn):
    raw = default_calibration().to_json()
    fn(raw)
    return raw


@pytest.mark.parametrize(
    "raw, match",
    [
        (_edit(lambda r: r.update(robot="fr3")), r"field 'robot': this calibration is for 'fr3', not for 'aloha2'"),
        (_edit(lambda r: r.update(format_version=7)), "field 'format_version': expected 1"),
        (_edit(lambda r: r["arms"].pop("right")), "field 'arms.right': missing"),
        (_edit(lambda r: r["arms"]["left"].pop("elbow_shadow")), "field 'arms.left.elbow_shadow': missing"),
        (_edit(lambda r: r["arms"]["left"].update(nose={})), r"unknown servo\(s\) \['nose'\]"),
        (_edit(lambda r: r["arms"]["right"]["waist"].update(sign=0)), "'arms.right.waist.sign': expected 1 or -1"),
        (_edit(lambda r: r["arms"]["left"]["waist"].update(offset=5000)), "'arms.left.waist.offset': expected a"),
        (_edit(lambda r: r["arms"]["left"]["gripper"].pop("open")), "'arms.left.gripper.open': missing"),
        (_edit(lambda r: r["arms"]["left"]["gripper"].update(open=1400)), "'closed' and 'open' must differ"),
        (
            _edit(lambda r: r["arms"]["left"]["shoulder_shadow"].update(sign=1)),
            "'arms.left.shoulder_shadow.sign': a shadow servo turns opposite to its primary",
        ),
        ("{not json", "not a JSON file"),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_bad_calibration_files_name_the_file_and_field(tmp_path, raw, match):
    path = write(tmp_path, raw)
    with pytest.raises(InputError, match=match) as e:
        load_calibration(path)
    assert path in str(e.value)
    with pytest.raises(InputError, match=match):  # the robot refuses it too, before touching any port
        Aloha2Robot(Aloha2Config(ports={"left": "/nonexistent/a", "right": "/nonexistent/b"}, calibration=path))
    with pytest.raises(NotFound, match="does not exist"):
        load_calibration(tmp_path / "missing.json")


def test_every_robot_satisfies_the_protocol(tmp_path):
    from vla_sdk.robot import SimRobot

    path = default_calibration().save(tmp_path / "cal.json")
    hardware = Aloha2Robot(Aloha2Config(ports={"left": "/nonexistent/a", "right": "/nonexistent/b"}, calibration=path))
    sim = SimRobot("aloha2/transfer_cube", cameras=("cam_high",), image_size=16)
    try:
        for robot in (hardware, sim):
            assert isinstance(robot, Robot)
            # what works while disconnected, and what does not
            assert not robot.is_connected and robot.control_hz == 50 and robot.embodiment.name == "aloha2"
            assert robot.action_features["action"]["names"] == EMB.names
            assert robot.observation_features["observation.state"]["shape"] == [14]
            with pytest.raises(RobotNotConnected):
                robot.observe()
            with pytest.raises(RobotNotConnected):
                robot.send_action(np.array(EMB.home))
        assert sim.observation_features["observation.images.cam_high"]["shape"] == [16, 16, 3]
        hardware.disconnect()  # never connected: nothing to do
        sim.connect()
        assert sim.is_connected and sim.observe()["state"].shape == (14,)
        sent = sim.send_action(np.array(EMB.home) + 100.0)  # the simulator clamps to the limits
        np.testing.assert_allclose(sent, EMB.high, rtol=1e-6)
    finally:
        sim.disconnect()
