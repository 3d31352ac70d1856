"""The FR3 driver (vla_sdk.robots.fr3) against the franky stand-in (tests/robots/franky_standin): franky's own names,
signatures and exception types over a simple real-time model of the arm and the hand. The one robot here that cannot
be emulated below its library: libfranka speaks a UDP protocol at 1 kHz that needs the real controller."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

from vla_sdk.embodiment import load_embodiment
from vla_sdk.errors import InputError, RuntimeFailure, UsageError
from vla_sdk.protocols import Robot, RobotNotConnected, robot_features
from vla_sdk.robots.fr3 import FR3_JOINT_VELOCITY_LIMITS, Fr3Config, Fr3Robot

STANDIN = Path(__file__).parent / "franky_standin"
HOST = "172.16.0.2"
EMB = load_embodiment("fr3")
HOME = np.array(EMB.home)


@pytest.fixture
def franky(monkeypatch):
    """The stand-in as ``franky``, with one FR3 at HOST standing at the embodiment's home pose, hand open."""
    monkeypatch.syspath_prepend(str(STANDIN))
    monkeypatch.delitem(sys.modules, "franky", raising=False)
    import franky

    assert franky.__version__.endswith("standin")
    franky._standin.reset()
    franky._standin.add_robot(HOST, q=HOME[:7], width=0.08 * HOME[7])
    yield franky
    franky._standin.reset()
    sys.modules.pop("franky", None)


def arm(franky):
    return franky._standin.arm(HOST)


def moves(franky) -> list:
    return [e for e in arm(franky).log if e[0] == "move"]


def drive(robot: Fr3Robot, target: np.ndarray, tol: float = 1e-3, seconds: float = 2.0) -> np.ndarray:
    """Observe + send ``target`` at 20 Hz until the state reaches it (or time runs out); the last state."""
    t_end = time.monotonic() + seconds
    while True:
        state = robot.observe()["state"]
        if np.all(np.abs(state - target) <= tol) or time.monotonic() > t_end:
            return state
        robot.send_action(target)
        time.sleep(1 / robot.control_hz)


def test_protocol_and_features_while_disconnected(monkeypatch):
    """No franky needed (and none imported) to build the robot and read what works while disconnected."""
    monkeypatch.delitem(sys.modules, "franky", raising=False)
    robot = Fr3Robot(Fr3Config(HOST), cameras=lambda: {})
    assert isinstance(robot, Robot)
    assert robot.embodiment.name == "fr3" and robot.control_hz == 20.0 and not robot.is_connected
    want_obs, want_act = robot_features(EMB, ("cam_external", "cam_wrist"), (128, 128))
    assert robot.observation_features == want_obs and robot.action_features == want_act
    assert robot.action_features["action"]["names"] == EMB.names and robot.action_features["action"]["shape"] == [8]
    assert list(Fr3Robot(Fr3Config(HOST)).observation_features) == ["observation.state"]  # no camera source
    # the default max step: the dynamics factor's share of the FR3 velocity limits, per 20 Hz step
    np.testing.assert_allclose(robot.max_step, 0.15 * np.array(FR3_JOINT_VELOCITY_LIMITS) / 20)
    np.testing.assert_allclose(Fr3Robot(Fr3Config(HOST, max_step=0.03)).max_step, [0.03] * 7)
    robot.disconnect()  # a no-op
    assert "franky" not in sys.modules
    with pytest.raises(RobotNotConnected):
        robot.observe()
    with pytest.raises(RobotNotConnected):
        robot.send_action(HOME)
    for bad in ({"host": ""}, {"dynamics_factor": 0.0}, {"max_step": [0.1, 0.1]}, {"gripper_speed": 0.5}):
        with pytest.raises(UsageError, match="Fr3Config"):
            Fr3Config(**{"host": HOST, **bad})


def test_round_trip_in_radians_and_gripper_units(franky):
    frames = {"cam_external": np.zeros((128, 128, 3), np.uint8), "cam_wrist": np.ones((128, 128, 3), np.uint8)}
    with Fr3Robot(Fr3Config(HOST, dynamics_factor=0.5), cameras=lambda: frames) as robot:
        assert arm(franky).log == [("connect",), ("gripper.connect",)]  # the arm and the hand; no motion at connect
        obs = robot.observe()
        assert obs["state"].dtype == np.float32 and obs["state"].shape == (8,)
        np.testing.assert_allclose(obs["state"], HOME, atol=1e-6)
        assert set(obs["images"]) == {"cam_external", "cam_wrist"}
        target = HOME + np.array([0.05, -0.04, 0.03, 0.05, -0.06, 0.04, 0.08, 0.0])
        target[7] = 0.5  # half open: 0.04 m
        state = drive(robot, target, tol=1e-4)
        np.testing.assert_allclose(state[:7], target[:7], atol=1e-4)  # radians in, radians out
        np.testing.assert_allclose(arm(franky).position(), robot.observe()["state"][:7], atol=1e-4)  # the arm's own
        t_end = time.monotonic() + 2.0
        while abs(robot.observe()["state"][7] - 0.5) > 1e-3 and time.monotonic() < t_end:
            time.sleep(0.02)
        assert abs(robot.observe()["state"][7] - 0.5) <= 1e-3
        assert abs(franky.Gripper(HOST).width - 0.04) <= 0.08e-3  # opening 0.5 is 0.04 m at the hand
        grips = [e for e in arm(franky).log if e[0] in ("gripper.move", "gripper.grasp")]
        assert grips == [("gripper.grasp", pytest.approx(0.04))]  # closing grasps; one command for one change
        # every joint motion was asynchronous and held its target (the stand-in refuses a synchronous holding one)
        assert all(e[1] == "JointMotion" for e in moves(franky))


def gripper_commands(franky) -> list:
    return [e for e in arm(franky).log if e[0] in ("gripper.move", "gripper.grasp")]


def test_gripper_commands_only_on_a_change_and_one_at_a_time(franky):
    arm(franky).width = 0.08
    arm(franky).object_width = 0.03  # something between the fingers
    with Fr3Robot(Fr3Config(HOST, gripper_speed=0.1, gripper_threshold=0.05)) as robot:
        state = robot.observe()["state"].astype(np.float64)
        assert state[7] == pytest.approx(1.0)
        robot.send_action(np.append(state[:7], 0.97))  # within the threshold: nothing sent
        assert gripper_commands(franky) == []
        robot.send_action(np.append(state[:7], 0.0))  # close: a grasp (0.08 -> 0.03 m takes 0.5 s)
        robot.send_action(np.append(state[:7], 1.0))  # open again while it runs: waits for the grasp ...
        assert gripper_commands(franky) == [("gripper.grasp", 0.0)]
        t_end = time.monotonic() + 2.0
        while abs(robot.observe()["state"][7] - 0.375) > 1e-3 and time.monotonic() < t_end:
            robot.send_action(np.append(state[:7], 0.0))  # the policy still says "closed"
            time.sleep(0.05)
        assert robot.observe()["state"][7] == pytest.approx(0.375, abs=1e-3)  # held at the object: 0.03 / 0.08
        assert franky.Gripper(HOST).is_grasped
        t_end = time.monotonic() + 2.0
        while len(gripper_commands(franky)) == 1 and time.monotonic() < t_end:
            robot.send_action(np.append(state[:7], 1.0))  # ... and once it is done, the newest command goes out
            time.sleep(0.01)
        assert gripper_commands(franky) == [("gripper.grasp", 0.0), ("gripper.move", pytest.approx(0.08))]


def test_send_action_clamps_to_limits_and_max_step(franky):
    pose = HOME.copy()
    pose[1] = EMB.high[1] - 0.015  # joint2 near its upper limit
    arm(franky).q = pose[:7].copy()
    with Fr3Robot(Fr3Config(HOST, max_step=0.1)) as robot:
        present = robot.observe()["state"].astype(np.float64)
        action = present.copy()
        action[0] += 5.0  # far: one max step
        action[2] -= 0.04  # near: as asked
        action[1] += 0.5  # past the limit, which is nearer than a max step: the limit less the margin
        action[3] = -99.0  # far beyond the limit and the max step
        action[7] = 3.0  # a gripper: clamped to [0, 1]
        sent = robot.send_action(action)
        assert sent.dtype == np.float32 and sent.shape == (8,)
        want = present.copy()
        want[0] += 0.1
        want[2] -= 0.04
        want[1] = EMB.high[1] - 0.01
        want[3] -= 0.1
        want[7] = 1.0
        np.testing.assert_allclose(sent, want, atol=1e-6)
        np.testing.assert_allclose(moves(franky)[-1][2], want[:7], atol=1e-6)  # what the arm was asked is sent[:7]
        assert np.all(sent[:7] >= EMB.low[:7]) and np.all(sent[:7] <= EMB.high[:7])
        with pytest.raises(InputError, match="8 finite numbers"):
            robot.send_action(np.full(8, np.nan))


def test_the_stand_in_aborts_a_motion_at_a_joint_limit_as_franky_does(franky):
    """The limit the driver's clamp keeps away from: straight through franky, a target past it is a reflex."""
    r = franky.Robot(HOST)
    r.relative_dynamics_factor = 1.0
    target = HOME[:7].copy()
    target[4] = 3.5  # past joint5's 2.8065
    r.move(franky.JointMotion(target), asynchronous=True)
    time.sleep(0.3)  # 2.8 rad at 5.26 rad/s: the limit is reached within 0.6 s
    with pytest.raises(franky.ControlException, match="joint_position_limits_violation"):
        r.join_motion(2.0)
    assert r.has_errors
    with pytest.raises(franky.ControlException, match="Reflex"):
        r.move(franky.JointMotion(HOME[:7]), asynchronous=True)
    assert r.recover_from_errors() and not r.has_errors


def test_recovers_from_one_reflex(franky):
    with Fr3Robot(Fr3Config(HOST)) as robot:
        start = robot.observe()["state"]
        target = start + np.array([0.1, 0, 0, 0, 0, 0, 0, 0])
        robot.send_action(target)
        time.sleep(0.05)
        arm(franky).inject_reflex()  # e.g. a collision: franky stores the exception for the next move
        with pytest.warns(UserWarning, match="recover_from_errors"):
            sent = robot.send_action(target)
        assert ("recover",) in arm(franky).log
        assert sent[0] > start[0]  # the step went out again, from where the reflex left the arm
        state = drive(robot, target)
        np.testing.assert_allclose(state, target, atol=1e-3)
        assert not franky.Robot(HOST).has_errors


def test_a_persistent_reflex_is_a_clear_error(franky):
    with Fr3Robot(Fr3Config(HOST)) as robot:
        target = robot.observe()["state"] + np.array([0.1, 0, 0, 0, 0, 0, 0, 0])
        robot.send_action(target)
        arm(franky).inject_reflex(persistent=True)  # the arm keeps running into something
        with pytest.warns(UserWarning, match="recover_from_errors"):
            robot.send_action(target)  # recovered once, sent again ...
        with pytest.raises(RuntimeFailure, match=rf"FR3 at {HOST}: the arm stopped again after recover_from_errors"):
            robot.send_action(target)  # ... and it failed again: no endless recovery
        assert [e for e in arm(franky).log if e[0] == "recover"] == [("recover",)]
    assert not arm(franky).in_motion


def test_motion_is_stopped_on_an_exception_inside_with(franky):
    robot = Fr3Robot(Fr3Config(HOST))
    with pytest.raises(KeyboardInterrupt):
        with robot:
            target = robot.observe()["state"] + np.array([0.3, 0, 0, 0, 0, 0, 0, 0])
            robot.send_action(target)
            assert arm(franky).in_motion  # holding (and moving toward) its target
            raise KeyboardInterrupt  # Ctrl-C in the control loop
    assert not robot.is_connected
    assert not arm(franky).in_motion
    assert moves(franky)[-1][1] == "JointStopMotion"
    before = arm(franky).position()
    time.sleep(0.05)
    np.testing.assert_array_equal(arm(franky).position(), before)  # it stays where it stopped
    robot.disconnect()  # idempotent


def test_missing_franky_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "franky", None)  # `import franky` raises ImportError
    robot = Fr3Robot(Fr3Config(HOST))
    with pytest.raises(RuntimeFailure, match=r"pip install 'vla-sdk\[fr3\]'"):
        robot.connect()
    assert not robot.is_connected


def test_a_wrong_host_is_a_clear_error_before_any_motion(franky):
    robot = Fr3Robot(Fr3Config("172.16.0.99"))
    with pytest.raises(RuntimeFailure, match=r"FR3 at 172\.16\.0\.99: cannot connect to the arm.*NetworkException"):
        with robot:
            raise AssertionError("never reached")
    assert not robot.is_connected
    assert arm(franky).log == []  # the robot at HOST heard nothing
