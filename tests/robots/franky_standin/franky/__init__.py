"""A stand-in for the part of franky (``pip install franky-control``, 2.x) that :mod:`vla_sdk.robots.fr3` uses.

Only for tests: a fixture puts ``tests/robots/franky_standin`` on ``sys.path``, so ``import franky`` finds this
package. The names, signatures and exception types are franky's own (as its ``_franky.pyi`` stubs and tutorial
state them); the robot behind them is a small model of an FR3 with a Franka Hand, not a mock of the driver:

- ``Robot(fci_hostname)`` connects only to a host that the test put "on the network" with
  ``_standin.add_robot(host)``; any other host raises :class:`NetworkException`, as libfranka's connection timeout.
- Joint motions run in the background (``move(..., asynchronous=True)``): every joint moves toward the target at
  its FR3 velocity limit scaled by the relative dynamics factors (robot x motion), in real time (the position is a
  function of the clock, evaluated on each query). Preempting a motion with a new one continues from where the arm
  is. A motion whose path reaches a joint limit aborts there with a :class:`ControlException`
  (``joint_position_limits_violation``), and the robot is then in reflex mode.
- As in franky, an exception of an asynchronous motion is stored and raised by the next ``move``, ``join_motion``
  or ``poll_motion``; in reflex mode, every ``move`` is rejected with a :class:`ControlException` until
  ``recover_from_errors()``.
- ``_standin.arm(host).inject_reflex(persistent=False)`` makes the running motion abort now, as a collision reflex
  would (``persistent=True``: every later motion aborts too, as when the arm keeps pushing against an obstacle).
- The gripper's width moves toward a command's target at the command's speed; ``move`` into an object stops at the
  object (and fails), ``grasp`` stops at it (and succeeds within the epsilons).

The test hooks (``_standin``) are the only names here that franky does not have.
"""

from __future__ import annotations

import builtins
import threading
import time
from dataclasses import dataclass, field

import numpy as np

__version__ = "2.0.0-standin"

# FR3 limits (Franka's "Limits for Franka Research 3"; franky's default joint velocity limits).
_Q_MIN = np.array([-2.7437, -1.7837, -2.9007, -3.0421, -2.8065, 0.5445, -3.0159])
_Q_MAX = np.array([2.7437, 1.7837, 2.9007, -0.1518, 2.8065, 4.5169, 3.0159])
_DQ_MAX = np.array([2.62, 2.62, 2.62, 2.62, 5.26, 4.18, 5.26])
_HAND_MAX_WIDTH = 0.08  # m, Franka Hand
_HAND_MAX_SPEED = 0.1  # m/s


# ---- exceptions (franky's names; each derives from the builtin Exception, as the stubs show) ------------------
class ControlException(builtins.Exception):
    """Thrown if an error occurs during motion generation or torque control."""


class CommandException(builtins.Exception):
    """Thrown if an error occurs during command execution."""


class NetworkException(builtins.Exception):
    """Thrown if a connection to the robot cannot be established, or when a timeout occurs."""


class InvalidOperationException(builtins.Exception):
    """Thrown if an operation cannot be performed."""


class IncompatibleVersionException(builtins.Exception):
    """Thrown if the robot does not support this version of libfranka."""


class RealtimeException(builtins.Exception):
    """Thrown if realtime priority cannot be set."""


class GripperException(builtins.Exception):
    """Exception thrown by the gripper class."""


class MotionReuseException(builtins.Exception):
    """Thrown when a motion is started more than once."""


class InvalidMotionTypeException(builtins.Exception):
    """Thrown when a new motion of a different control type is set while another one runs."""


# ---- value types --------------------------------------------------------------------------------------------
class ReferenceType:
    """Absolute or relative motion targets (an enum in franky)."""

    Absolute: ReferenceType
    Relative: ReferenceType

    def __init__(self, value: int):
        self.value = int(value)
        self.name = "Absolute" if self.value == 0 else "Relative"

    def __eq__(self, other):
        return isinstance(other, ReferenceType) and other.value == self.value

    def __hash__(self):
        return self.value

    def __repr__(self):
        return f"<ReferenceType.{self.name}: {self.value}>"


ReferenceType.Absolute = ReferenceType(0)
ReferenceType.Relative = ReferenceType(1)


class RelativeDynamicsFactor:
    """Scales the maximum velocity, acceleration and jerk; each factor in (0, 1]."""

    def __init__(self, velocity: float = 1.0, acceleration: float | None = None, jerk: float | None = None):
        acceleration = velocity if acceleration is None else acceleration
        jerk = velocity if jerk is None else jerk
        for v in (velocity, acceleration, jerk):
            if not 0.0 < float(v) <= 1.0:
                raise ValueError("Relative dynamics factors must be in the range (0, 1]")
        self._v, self._a, self._j = float(velocity), float(acceleration), float(jerk)

    @property
    def velocity(self) -> float:
        return self._v

    @property
    def acceleration(self) -> float:
        return self._a

    @property
    def jerk(self) -> float:
        return self._j

    @property
    def max_dynamics(self) -> bool:
        return False

    def __mul__(self, other: RelativeDynamicsFactor | float) -> RelativeDynamicsFactor:
        o = _factor(other)
        return RelativeDynamicsFactor(self._v * o._v, self._a * o._a, self._j * o._j)


def _factor(value: RelativeDynamicsFactor | float) -> RelativeDynamicsFactor:
    return value if isinstance(value, RelativeDynamicsFactor) else RelativeDynamicsFactor(float(value))


def _vec7(value, what: str) -> np.ndarray:
    a = np.asarray(value.position if isinstance(value, JointState) else value, dtype=np.float64).reshape(-1)
    if a.shape != (7,):
        raise TypeError(f"{what}: expected 7 values, got {a.shape}")
    return a


class JointState:
    """Joint positions and velocities of the robot."""

    def __init__(self, position, velocity=None):
        self._position = _vec7(position, "JointState.position")
        self._velocity = np.zeros(7) if velocity is None else _vec7(velocity, "JointState.velocity")

    @property
    def position(self) -> np.ndarray:
        return self._position.copy()

    @property
    def velocity(self) -> np.ndarray:
        return self._velocity.copy()

    def __repr__(self):
        return f"JointState(position={self._position.tolist()}, velocity={self._velocity.tolist()})"


# ---- motions ------------------------------------------------------------------------------------------------
class BaseJointPositionMotion:
    """Base of the joint position motions (single-use, as in franky)."""

    def __init__(self, relative_dynamics_factor: RelativeDynamicsFactor | float = 1.0):
        self._factor = _factor(relative_dynamics_factor)
        self._started = False

    @property
    def relative_dynamics_factor(self) -> RelativeDynamicsFactor:
        return self._factor


class JointWaypointMotion(BaseJointPositionMotion):
    """Only the single-target form (:class:`JointMotion`) is modelled."""


class JointMotion(JointWaypointMotion):
    """Joint motion with a single target."""

    def __init__(
        self,
        target: JointState | list[float] | np.ndarray,
        reference_type: ReferenceType = ReferenceType.Absolute,
        relative_dynamics_factor: RelativeDynamicsFactor | float = 1.0,
        return_when_finished: bool = True,
    ):
        super().__init__(relative_dynamics_factor)
        self._target = JointState(_vec7(target, "JointMotion.target"))
        self._reference_type = reference_type
        self._return_when_finished = bool(return_when_finished)

    @property
    def target(self) -> JointState:
        return self._target

    @property
    def reference_type(self) -> ReferenceType:
        return self._reference_type


class JointStopMotion(BaseJointPositionMotion):
    """Stop motion for joint position control mode."""


# ---- the arm model -------------------------------------------------------------------------------------------
@dataclass
class _Segment:
    """A straight, per-joint-velocity-limited move from ``start`` (at ``t0``) toward ``goal``."""

    start: np.ndarray
    goal: np.ndarray
    t0: float
    speed: np.ndarray  # rad/s per joint
    hold: bool  # return_when_finished=False: the motion keeps holding its target

    def at(self, t: float) -> np.ndarray:
        step = np.clip(self.goal - self.start, -self.speed * (t - self.t0), self.speed * (t - self.t0))
        return self.start + step

    def finish_time(self) -> float:
        return self.t0 + float(np.max(np.abs(self.goal - self.start) / self.speed, initial=0.0))

    def limit_time(self) -> float | None:
        """When the path first reaches a joint limit (None: it never does)."""
        times = []
        for j in range(7):
            d = self.goal[j] - self.start[j]
            bound = _Q_MAX[j] if d > 0 else _Q_MIN[j]
            if (d > 0 and self.goal[j] >= bound) or (d < 0 and self.goal[j] <= bound):
                times.append(self.t0 + abs(bound - self.start[j]) / self.speed[j])
        return min(times) if times else None


@dataclass
class StandinArm:
    """One simulated FR3 with its Franka Hand (what ``Robot(host)`` and ``Gripper(host)`` talk to)."""

    q: np.ndarray
    width: float = _HAND_MAX_WIDTH
    object_width: float | None = None  # an object between the fingers (m), or none
    log: list = field(default_factory=list)  # ("connect"|"move"|"stop"|"recover"|"gripper.*", ...) in order
    _segment: _Segment | None = None
    _error: builtins.Exception | None = None  # stored for the next move / join_motion / poll_motion
    _reflex: bool = False  # reflex mode: moves are rejected until recover_from_errors()
    _persistent_reflex: bool = False
    _lock: threading.RLock = field(default_factory=threading.RLock)
    # the hand: the running command (start width, goal, speed, t0), its thread and its cancel flag
    _hand_cmd: tuple[float, float, float, float] | None = None
    _hand_thread: threading.Thread | None = None
    _hand_cancel: threading.Event = field(default_factory=threading.Event)

    # -- test hooks ------------------------------------------------------------------------------------------
    def inject_reflex(self, persistent: bool = False) -> None:
        """Abort the running motion now, as a collision reflex does (``persistent``: every later one too)."""
        with self._lock:
            self._persistent_reflex = persistent
            if self._segment is not None:
                self._abort(time.monotonic(), "motion aborted by reflex! ['cartesian_reflex']")

    @property
    def in_motion(self) -> bool:
        with self._lock:
            self._advance(time.monotonic())
            return self._segment is not None

    # -- the model -------------------------------------------------------------------------------------------
    def _abort(self, t: float, why: str) -> None:
        self.q = self._segment.at(t)
        self._segment = None
        self._reflex = True
        self._error = ControlException(f"libfranka: Move command aborted: {why}")

    def _advance(self, t: float) -> None:
        seg = self._segment
        if seg is None:
            return
        hit = seg.limit_time()
        if hit is not None and t >= hit:
            self._abort(hit, "motion aborted by reflex! ['joint_position_limits_violation']")
        elif not seg.hold and t >= seg.finish_time():
            self.q, self._segment = seg.goal.copy(), None

    def position(self) -> np.ndarray:
        with self._lock:
            t = time.monotonic()
            self._advance(t)
            return (self._segment.at(t) if self._segment is not None else self.q).copy()

    def velocity(self) -> np.ndarray:
        with self._lock:
            t = time.monotonic()
            self._advance(t)
            seg = self._segment
            if seg is None:
                return np.zeros(7)
            moving = np.abs(seg.goal - seg.at(t)) > 1e-12
            return np.where(moving, np.sign(seg.goal - seg.start) * seg.speed, 0.0)

    def start(self, goal: np.ndarray, factor: RelativeDynamicsFactor, hold: bool) -> None:
        with self._lock:
            t = time.monotonic()
            self._advance(t)
            self.q = self.position()
            self._segment = _Segment(self.q.copy(), goal.copy(), t, _DQ_MAX * factor.velocity, hold)
            if self._persistent_reflex:
                self._abort(t, "motion aborted by reflex! ['cartesian_reflex']")


class _World:
    """The robots the stand-in can reach, by host (the test's network)."""

    def __init__(self):
        self.arms: dict[str, StandinArm] = {}

    def add_robot(self, host: str, q=None, width: float = _HAND_MAX_WIDTH) -> StandinArm:
        q = np.array([0.0, -0.3, 0.0, -2.2, 0.0, 1.9, 0.785398]) if q is None else _vec7(q, "q")
        self.arms[host] = StandinArm(q=q.copy(), width=float(width))
        return self.arms[host]

    def arm(self, host: str) -> StandinArm:
        return self.arms[host]

    def reset(self) -> None:
        self.arms.clear()

    def connect(self, host: str) -> StandinArm:
        if host not in self.arms:
            raise NetworkException(f"libfranka: Connection timeout (host {host})")
        return self.arms[host]


_standin = _World()


# ---- the robot -----------------------------------------------------------------------------------------------
class Robot:
    """A Franka robot, and the main entry point of franky (the part of its API the stand-in has)."""

    control_rate = 0.001
    degrees_of_freedom = 7

    def __init__(self, fci_hostname: str, relative_dynamics_factor: RelativeDynamicsFactor | float = 1.0, **kwargs):
        self._host = str(fci_hostname)
        self._arm = _standin.connect(self._host)
        self._factor = _factor(relative_dynamics_factor)
        self._arm.log.append(("connect",))

    @property
    def fci_hostname(self) -> str:
        return self._host

    @property
    def relative_dynamics_factor(self) -> RelativeDynamicsFactor:
        return self._factor

    @relative_dynamics_factor.setter
    def relative_dynamics_factor(self, value: RelativeDynamicsFactor | float) -> None:
        self._factor = _factor(value)

    @property
    def current_joint_state(self) -> JointState:
        return JointState(self._arm.position(), self._arm.velocity())

    @property
    def current_joint_positions(self) -> np.ndarray:
        return self._arm.position()

    @property
    def current_joint_velocities(self) -> np.ndarray:
        return self._arm.velocity()

    @property
    def has_errors(self) -> bool:
        with self._arm._lock:
            self._arm._advance(time.monotonic())
            return self._arm._reflex

    @property
    def is_in_control(self) -> bool:
        return self._arm.in_motion

    def _raise_stored(self) -> None:
        with self._arm._lock:
            self._arm._advance(time.monotonic())
            err, self._arm._error = self._arm._error, None
        if err is not None:
            raise err

    def move(
        self,
        motion: BaseJointPositionMotion,
        asynchronous: bool = False,
        limit_rate: bool = False,
        cutoff_frequency: float = 100.0,
    ) -> None:
        """Execute the motion (preempting a running one); ``asynchronous``: return at once."""
        if not isinstance(motion, BaseJointPositionMotion):
            raise InvalidMotionTypeException("the stand-in models joint position motions only")
        if motion._started:
            raise MotionReuseException("Motions must not be reused; create a new motion instead.")
        motion._started = True
        self._raise_stored()
        arm = self._arm
        with arm._lock:
            if arm._reflex:
                raise ControlException(
                    'libfranka: Move command rejected: command not possible in the current mode ("Reflex")!'
                )
            factor = self._factor * motion.relative_dynamics_factor
            if isinstance(motion, JointStopMotion):
                goal, hold = arm.position(), False
            else:
                goal = motion.target.position
                if motion.reference_type == ReferenceType.Relative:
                    goal = arm.position() + goal
                hold = not motion._return_when_finished
            arm.log.append(("move", type(motion).__name__, goal.copy()))
            arm.start(goal, factor, hold)
        if not asynchronous:
            if hold:
                raise InvalidOperationException("a synchronous motion that holds its target never returns")
            self.join_motion()

    def join_motion(self, timeout: float | None = None) -> bool:
        """Wait for the motion to finish; raise an exception of the motion. True if it finished in time."""
        end = None if timeout is None else time.monotonic() + timeout
        while self._arm.in_motion:
            if end is not None and time.monotonic() >= end:
                self._raise_stored()
                return False
            time.sleep(0.002)
        self._raise_stored()
        return True

    def poll_motion(self) -> bool:
        """Whether the robot is still in motion (non-blocking); raises an exception of the motion."""
        moving = self._arm.in_motion
        self._raise_stored()
        return moving

    def stop(self) -> None:
        """Stop all running motions (a running one is preempted with a ControlException, as in libfranka)."""
        arm = self._arm
        with arm._lock:
            arm._advance(time.monotonic())
            arm.log.append(("stop",))
            if arm._segment is not None:
                arm.q, arm._segment = arm.position(), None
                arm._error = ControlException("libfranka: motion preempted by stop()")

    def recover_from_errors(self) -> bool:
        """Automatic error recovery; whether it succeeded."""
        arm = self._arm
        with arm._lock:
            arm._advance(time.monotonic())
            arm.log.append(("recover",))
            arm._reflex, arm._error = False, None
        return True


# ---- the gripper ---------------------------------------------------------------------------------------------
class BoolFuture:
    """A future that will eventually contain a boolean result (of an asynchronous gripper command)."""

    def __init__(self, thread: threading.Thread, box: dict):
        self._thread, self._box = thread, box

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def get(self) -> bool:
        self._thread.join()
        if "error" in self._box:
            raise self._box["error"]
        return self._box["result"]


class Gripper:
    """A Franka Hand (the part of franky's Gripper the stand-in has): widths in m, speeds in m/s, forces in N."""

    def __init__(self, fci_hostname: str):
        self._arm = _standin.connect(str(fci_hostname))
        self._arm.log.append(("gripper.connect",))

    def _width(self, t: float) -> float:
        arm = self._arm
        if arm._hand_cmd is None:
            return arm.width
        w0, goal, speed, t0 = arm._hand_cmd
        w = w0 + float(np.clip(goal - w0, -speed * (t - t0), speed * (t - t0)))
        if arm.object_width is not None and goal < arm.object_width <= w0:
            w = max(w, arm.object_width)  # the fingers stop at the object
        return w

    @property
    def width(self) -> float:
        return self._width(time.monotonic())

    @property
    def max_width(self) -> float:
        return _HAND_MAX_WIDTH

    @property
    def is_grasped(self) -> bool:
        return self._arm.object_width is not None and abs(self.width - self._arm.object_width) < 1e-3

    def _run(self, goal: float, speed: float, grasp: tuple[float, float] | None) -> bool:
        if not 0.0 <= goal <= _HAND_MAX_WIDTH or not 0.0 < speed <= _HAND_MAX_SPEED:
            raise CommandException("libfranka gripper: Command failed!")
        arm = self._arm
        t0 = time.monotonic()
        w0 = self._width(t0)
        arm._hand_cmd = (w0, goal, speed, t0)
        arm.log.append(("gripper.grasp" if grasp else "gripper.move", goal))
        blocked = arm.object_width is not None and goal < arm.object_width <= w0
        end = t0 + abs((arm.object_width if blocked else goal) - w0) / speed  # the fingers stall at an object
        while time.monotonic() < end:
            if arm._hand_cancel.is_set():
                arm.width, arm._hand_cmd = self._width(time.monotonic()), None
                return False
            time.sleep(0.002)
        arm.width, arm._hand_cmd = self._width(end), None
        if grasp is None:
            return not blocked
        eps_in, eps_out = grasp
        return blocked and goal - eps_in < arm.width < goal + eps_out

    def _async(self, goal: float, speed: float, grasp=None) -> BoolFuture:
        arm = self._arm
        if arm._hand_thread is not None and arm._hand_thread.is_alive():  # a new command preempts the running one
            arm._hand_cancel.set()
            arm._hand_thread.join()
        arm._hand_cancel.clear()
        box: dict = {}

        def work():
            try:
                box["result"] = self._run(float(goal), float(speed), grasp)
            except builtins.Exception as e:
                box["error"] = e

        arm._hand_thread = threading.Thread(target=work, daemon=True)
        arm._hand_thread.start()
        return BoolFuture(arm._hand_thread, box)

    def move(self, width: float, speed: float) -> bool:
        return self._async(width, speed).get()

    def move_async(self, width: float, speed: float) -> BoolFuture:
        return self._async(width, speed)

    def grasp(self, width, speed, force, epsilon_inner: float = 0.005, epsilon_outer: float = 0.005) -> bool:
        return self.grasp_async(width, speed, force, epsilon_inner, epsilon_outer).get()

    def grasp_async(
        self, width, speed, force, epsilon_inner: float = 0.005, epsilon_outer: float = 0.005
    ) -> BoolFuture:
        if not float(force) > 0:
            raise CommandException("libfranka gripper: Command failed!")
        return self._async(width, speed, (float(epsilon_inner), float(epsilon_outer)))

    def open(self, speed: float) -> bool:
        return self.move(_HAND_MAX_WIDTH, speed)

    def open_async(self, speed: float) -> BoolFuture:
        return self.move_async(_HAND_MAX_WIDTH, speed)

    def stop(self) -> bool:
        self._arm.log.append(("gripper.stop",))
        self._arm._hand_cancel.set()
        return True


class Exception(builtins.Exception):  # noqa: A001  (franky.Exception, last: the classes above derive the builtin)
    """Base class for all exceptions used by libfranka."""
