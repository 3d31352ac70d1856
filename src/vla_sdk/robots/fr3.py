"""Franka Research 3 with a Franka Hand through franky (extra ``fr3``: ``pip install 'vla-sdk[fr3]'``, which installs
franky-control 2.x): the :class:`vla_sdk.protocols.Robot` for the real arm.

    config = Fr3Config(host="172.16.0.2")                 # the FCI address (Desk: FCI enabled, brakes unlocked)
    with Fr3Robot(config, cameras=my_cameras) as robot:   # connect: franky.Robot + franky.Gripper, dynamics factor
        while ...:                                        # 20 Hz
            obs = robot.observe()                         # joint positions + gripper width
            sent = robot.send_action(action)              # one asynchronous JointMotion (clamped) + maybe a gripper
    # the arm is stopped (JointStopMotion, then Robot.stop()) when the block ends, normally, by an exception or Ctrl-C

Units (those of ``robots/fr3/embodiment.json``): joints 1-7 in radians, the gripper as the normalized opening in
[0, 1] (0 closed, 1 open), ``width = opening * gripper_max_width`` (the Franka Hand opens to 0.08 m).

Arm: each ``send_action`` starts a ``franky.JointMotion`` to the clamped target with ``asynchronous=True`` and
``return_when_finished=False``: the call returns at once, franky's 1 kHz loop plans the way there (Ruckig, within the
FR3's velocity, acceleration and jerk limits scaled by ``dynamics_factor``) and keeps holding the target, and the next
step's motion preempts it without a stop. The target is clamped to the embodiment's joint limits (``joint_margin``
inside them; they are Franka's FR3 position limits) and to ``max_step`` from the present position; by default
``max_step = dynamics_factor * (FR3 joint velocity limit) / control_hz``, as far as the arm can go in one step.

Errors: franky raises an exception of an asynchronous motion (a reflex: collision, joint limit, ...) at the next
``move``. The driver then calls ``recover_from_errors()`` once, reads the position afresh and sends the step again;
when the motion fails again before one clean step, or recovery fails, ``send_action`` stops the arm and raises
:class:`vla_sdk.errors.RuntimeFailure` naming the host and franky's message.

Gripper: a command is sent only when the commanded opening differs from the last one sent by more than
``gripper_threshold``, and only when the previous gripper command has finished (the newest wish is sent then):
opening with ``Gripper.move_async(width, speed)``, closing with ``Gripper.grasp_async(width, speed, force, ...)``
with wide epsilons, so an object between the fingers is held with ``gripper_force`` rather than failing the move.

Cameras: franky carries no images. ``Fr3Robot(config, cameras=source)`` takes a callable returning
{camera: uint8[h, w, 3]} for the embodiment's cameras, read once per ``observe()``; without one, ``observe()``
returns ``"images": {}`` and :attr:`Fr3Robot.observation_features` lists no cameras.

Tested against a stand-in for franky's API (tests/robots/franky_standin), not on an FR3.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from vla_sdk.embodiment import Embodiment, load_embodiment
from vla_sdk.errors import InputError, RuntimeFailure, UsageError
from vla_sdk.protocols import RobotNotConnected, check_action, read_cameras, robot_features

ROBOT = "fr3"
INSTALL_HINT = "pip install 'vla-sdk[fr3]'"
# Franka's "Limits for Franka Research 3": the maximum joint velocities (rad/s), joints 1-7 (also franky's defaults
# for Robot.joint_velocity_limit). The position limits are in robots/fr3/embodiment.json.
FR3_JOINT_VELOCITY_LIMITS = (2.62, 2.62, 2.62, 2.62, 5.26, 4.18, 5.26)
FRANKA_HAND_MAX_WIDTH = 0.08  # m
FRANKA_HAND_MAX_SPEED = 0.1  # m/s
FRANKA_HAND_MAX_FORCE = 140.0  # N (70 N continuous)
# franky's exception types, by name (the driver turns each into a RuntimeFailure that names the host)
FRANKY_ERRORS = (
    "ControlException",
    "CommandException",
    "NetworkException",
    "InvalidOperationException",
    "IncompatibleVersionException",
    "RealtimeException",
    "GripperException",
    "ModelException",
    "ProtocolException",
)


def import_franky():
    """The franky module, or a :class:`RuntimeFailure` saying how to install it."""
    try:
        import franky
    except ImportError as e:
        raise RuntimeFailure(
            f"the FR3 driver needs franky (franky-control), which is not installed: {INSTALL_HINT} "
            f"(franky also needs a real-time kernel for the arm; see its installation guide) [{e}]"
        ) from e
    return franky


@dataclass(frozen=True)
class Fr3Config:
    """Where the FR3 is and how to drive it."""

    host: str  # the FCI address of the arm's controller, e.g. "172.16.0.2" (the Franka Hand answers on the same)
    dynamics_factor: float = 0.15  # franky's relative_dynamics_factor: fraction of the FR3's max vel/acc/jerk, (0, 1]
    max_step: float | Sequence[float] | None = None  # rad per step, one or 7 values; None: from the velocity limits
    joint_margin: float = 0.01  # rad: targets stay this far inside the joint limits (a target at one is a reflex)
    gripper_speed: float = 0.05  # m/s, Franka Hand moves and grasps (at most 0.1)
    gripper_force: float = 20.0  # N, the grasp force when closing (at most 140; 70 continuous)
    gripper_threshold: float = 0.05  # normalized opening: the least change of the command that sends a new one
    gripper_max_width: float = FRANKA_HAND_MAX_WIDTH  # m: the width at opening 1
    stop_timeout_s: float = 2.0  # how long disconnect() waits for the JointStopMotion before Robot.stop()
    robot: str = ROBOT  # the embodiment (robots/<robot>/embodiment.json)

    def __post_init__(self):
        if not isinstance(self.host, str) or not self.host.strip():
            raise UsageError(
                f"Fr3Config.host: expected the FCI address of the arm, e.g. '172.16.0.2', got {self.host!r}"
            )
        if not 0.0 < self.dynamics_factor <= 1.0:
            raise UsageError(f"Fr3Config.dynamics_factor must be in (0, 1], got {self.dynamics_factor}")
        if self.max_step is not None:
            steps = np.atleast_1d(np.asarray(self.max_step, dtype=np.float64))
            if steps.shape not in ((1,), (7,)) or not np.all(steps > 0):
                raise UsageError(f"Fr3Config.max_step: expected one or 7 numbers > 0 (rad), got {self.max_step}")
        if not 0.0 <= self.joint_margin < 0.2:
            raise UsageError(f"Fr3Config.joint_margin must be in [0, 0.2) rad, got {self.joint_margin}")
        if not 0.0 < self.gripper_speed <= FRANKA_HAND_MAX_SPEED:
            raise UsageError(
                f"Fr3Config.gripper_speed must be in (0, {FRANKA_HAND_MAX_SPEED}] m/s, got {self.gripper_speed}"
            )
        if not 0.0 < self.gripper_force <= FRANKA_HAND_MAX_FORCE:
            raise UsageError(
                f"Fr3Config.gripper_force must be in (0, {FRANKA_HAND_MAX_FORCE}] N, got {self.gripper_force}"
            )
        if not 0.0 < self.gripper_threshold < 1.0:
            raise UsageError(f"Fr3Config.gripper_threshold must be in (0, 1), got {self.gripper_threshold}")
        if not 0.0 < self.gripper_max_width <= FRANKA_HAND_MAX_WIDTH:
            raise UsageError(f"Fr3Config.gripper_max_width must be in (0, 0.08] m, got {self.gripper_max_width}")
        if not self.stop_timeout_s > 0:
            raise UsageError(f"Fr3Config.stop_timeout_s must be > 0, got {self.stop_timeout_s}")


class Fr3Robot:
    """The FR3 arm and its Franka Hand as a :class:`vla_sdk.protocols.Robot` (see the module docstring).

    While disconnected: ``embodiment``, ``control_hz``, ``is_connected``, the features, ``max_step``, ``connect()``
    and ``disconnect()`` (a no-op); franky is imported only by ``connect()``. ``observe()`` and ``send_action()``
    need the connection (else :class:`vla_sdk.protocols.RobotNotConnected`). ``send_action`` clamps the joints to the
    limits (less ``joint_margin``) and to ``max_step`` around the present position (the one the last ``observe()``
    read, when no action was sent since; otherwise read afresh), the gripper to [0, 1], starts the joint motion
    asynchronously and returns the clamped action. Any exception inside ``with`` (and ``disconnect()``) stops the
    arm."""

    def __init__(self, config: Fr3Config, cameras: Callable[[], Mapping[str, np.ndarray]] | None = None):
        self.config = config
        self.embodiment: Embodiment = load_embodiment(config.robot)
        self.control_hz = float(self.embodiment.control_hz)
        self.cameras = cameras
        emb = self.embodiment
        self._joints = [i for i, d in enumerate(emb.dims) if d.kind == "joint"]
        if len(self._joints) != 7 or emb.gripper_indices != [7] or emb.action_dim != 8:
            raise InputError(f"{emb.name}: the FR3 driver expects 7 joints then one gripper, got {emb.names}")
        cams = emb.cameras if cameras is not None else ()
        self.observation_features, self.action_features = robot_features(emb, cams, emb.image_size)
        if config.max_step is None:
            step = config.dynamics_factor * np.asarray(FR3_JOINT_VELOCITY_LIMITS) / self.control_hz
        else:
            step = np.broadcast_to(np.asarray(config.max_step, dtype=np.float64), (7,)).copy()
        self.max_step: np.ndarray = step  # [7] rad per control step
        margin = np.array([config.joint_margin] * 7 + [0.0])
        self._low, self._high = emb.low + margin, emb.high - margin  # [8]
        self._franky = None
        self._robot = None  # franky.Robot while connected
        self._gripper = None  # franky.Gripper while connected
        self._errors: tuple[type, ...] = ()
        self._present: np.ndarray | None = None  # [8] the last state read, while no action was sent after it
        self._gripper_sent: float | None = None  # the opening of the last gripper command
        self._gripper_future = None  # its franky.BoolFuture
        self._recovered = False  # a recovery happened and no step has run cleanly since

    # -- lifecycle ------------------------------------------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        return self._robot is not None

    def _fail(self, what: str, e: BaseException) -> RuntimeFailure:
        return RuntimeFailure(f"FR3 at {self.config.host}: {what} ({type(e).__name__}: {e})")

    def connect(self) -> None:
        """Import franky, connect to the arm and the hand at ``host``, set the dynamics factor, recover from a reflex
        left by an earlier session. No motion is started. On any failure the connection is closed again."""
        if self.is_connected:
            return
        franky = import_franky()
        self._franky = franky
        self._errors = tuple(getattr(franky, n) for n in FRANKY_ERRORS if isinstance(getattr(franky, n, None), type))
        host = self.config.host
        try:
            try:
                robot = franky.Robot(host)
            except self._errors as e:
                raise self._fail(
                    "cannot connect to the arm: check the address, that the controller is on, FCI is enabled in "
                    "Desk and the brakes are unlocked",
                    e,
                ) from e
            self._robot = robot
            try:
                self._gripper = franky.Gripper(host)
            except self._errors as e:
                raise self._fail("cannot connect to the Franka Hand", e) from e
            try:
                robot.relative_dynamics_factor = self.config.dynamics_factor
                if robot.has_errors and not robot.recover_from_errors():
                    raise RuntimeFailure(
                        f"FR3 at {host}: the arm reports errors and recover_from_errors() failed "
                        "(is the user stop pressed?)"
                    )
                width = float(self._gripper.width)
            except self._errors as e:
                raise self._fail("could not set up the arm", e) from e
        except BaseException:
            self.disconnect()
            raise
        self._gripper_sent = float(np.clip(width / self.config.gripper_max_width, 0.0, 1.0))
        self._gripper_future = None
        self._present = None
        self._recovered = False

    def disconnect(self) -> None:
        """Stop the arm (a ``JointStopMotion``, waited for up to ``stop_timeout_s``, then ``Robot.stop()``), stop a
        gripper command still running (a finished grasp keeps holding) and drop the connection. Idempotent."""
        robot, gripper, future = self._robot, self._gripper, self._gripper_future
        self._robot = self._gripper = self._gripper_future = None
        self._present = None
        if robot is None:
            return
        errors = self._errors or (Exception,)
        stopped = False
        try:
            robot.move(self._franky.JointStopMotion(), asynchronous=True)
            stopped = robot.join_motion(self.config.stop_timeout_s)
        except errors:  # a reflex of the last motion, or a stop refused: the arm is not moving, or stop() below
            pass
        failure = None
        if not stopped:
            try:
                robot.stop()
            except errors as e:
                failure = self._fail("Robot.stop() failed while disconnecting: check that the arm is still", e)
        if gripper is not None and future is not None and not future.wait(0):
            try:
                gripper.stop()
            except errors as e:
                warnings.warn(f"FR3 at {self.config.host}: could not stop the gripper command ({e})", stacklevel=2)
        if failure is not None:
            raise failure

    def __enter__(self) -> Fr3Robot:
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.disconnect()

    # -- the control tick -----------------------------------------------------------------------------------------
    def _need(self, what: str) -> None:
        if not self.is_connected:
            raise RobotNotConnected(f"Fr3Robot.{what}() needs a connected robot: call connect() or use `with`")

    def read_state(self) -> np.ndarray:
        """The state [8] (float64): joint positions (rad), then the gripper opening (width / gripper_max_width)."""
        self._need("read_state")
        try:
            q = np.asarray(self._robot.current_joint_state.position, dtype=np.float64).reshape(7)
            width = float(self._gripper.width)
        except self._errors as e:
            raise self._fail("could not read the robot state", e) from e
        return np.append(q, np.clip(width / self.config.gripper_max_width, 0.0, 1.0))

    def observe(self) -> dict:
        """{"images": {camera: uint8[h, w, 3]} (empty without a camera source), "state": float32[8]}."""
        self._need("observe")
        state = self.read_state()
        self._present = state
        images = read_cameras(self.cameras)
        return {"images": images, "state": state.astype(np.float32)}

    def clamp(self, action: np.ndarray, present: np.ndarray) -> np.ndarray:
        """``action`` [8] within ``max_step`` of ``present`` [8] (joints) and within the limits (float64)."""
        a = np.asarray(action, dtype=np.float64).copy()
        a[:7] = np.clip(a[:7], present[:7] - self.max_step, present[:7] + self.max_step)
        return np.clip(a, self._low, self._high)  # last: the limits hold even when the arm stands outside them

    def send_action(self, action: np.ndarray) -> np.ndarray:
        """Clamp ``action`` [8], start the joint motion (and a gripper command when due); returns what was sent."""
        self._need("send_action")
        emb = self.embodiment
        a = check_action(emb, action)
        present = self._present if self._present is not None else self.read_state()
        self._present = None
        sent = self.clamp(a, present)
        try:
            self._move(sent[:7])
        except self._franky.ControlException as e:
            if self._recovered:
                raise self._halt("the arm stopped again after recover_from_errors()", e) from e
            self._recover(e)
            sent = self.clamp(a, self.read_state())  # from where the reflex left the arm
            try:
                self._move(sent[:7])
            except self._franky.ControlException as e2:
                raise self._halt("the motion failed again right after recover_from_errors()", e2) from e2
        except self._errors as e:
            raise self._halt("the joint motion was refused", e) from e
        else:
            self._recovered = False
        self._command_gripper(float(sent[7]))
        return sent.astype(np.float32)

    def _move(self, q: np.ndarray) -> None:
        motion = self._franky.JointMotion([float(x) for x in q], return_when_finished=False)
        self._robot.move(motion, asynchronous=True)

    def _recover(self, cause: BaseException) -> None:
        warnings.warn(
            f"FR3 at {self.config.host}: {type(cause).__name__}: {cause}; calling recover_from_errors()", stacklevel=3
        )
        try:
            ok = self._robot.recover_from_errors()
        except self._errors as e:
            raise self._halt("recover_from_errors() failed after a control error", e) from cause
        if not ok:
            raise self._halt("recover_from_errors() failed (is the user stop pressed?) after", cause)
        self._recovered = True

    def _halt(self, what: str, e: BaseException) -> RuntimeFailure:
        """Stop the arm (best effort) and the error to raise; the robot stays connected (disconnect() closes it)."""
        try:
            self._robot.stop()
        except self._errors:
            pass
        return self._fail(what, e)

    def _command_gripper(self, opening: float) -> None:
        future = self._gripper_future
        if future is not None:
            if not future.wait(0):
                return  # still moving: the newest command is sent when it is done
            self._gripper_future = None
            try:
                future.get()  # False (nothing grasped, or blocked) is no error; an exception is
            except self._errors as e:
                raise self._fail("a gripper command failed", e) from e
        if self._gripper_sent is not None and abs(opening - self._gripper_sent) <= self.config.gripper_threshold:
            return
        cfg = self.config
        width = opening * cfg.gripper_max_width
        closing = self._gripper_sent is not None and opening < self._gripper_sent
        try:
            if closing:  # a grasp holds an object with the force instead of failing against it
                eps = cfg.gripper_max_width  # wide: whatever width the object has counts as grasped
                self._gripper_future = self._gripper.grasp_async(
                    width, cfg.gripper_speed, cfg.gripper_force, epsilon_inner=eps, epsilon_outer=eps
                )
            else:
                self._gripper_future = self._gripper.move_async(width, cfg.gripper_speed)
        except self._errors as e:
            raise self._fail("the gripper command was refused", e) from e
        self._gripper_sent = opening
