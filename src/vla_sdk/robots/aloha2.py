"""ALOHA 2 follower arms on two Dynamixel buses: the :class:`vla_sdk.protocols.Robot` for the real robot (or for the
emulated one, :mod:`vla_sdk.robots.aloha2_emulated`).

    config = Aloha2Config(ports={"left": "/dev/ttyDXL_follower_left", "right": "/dev/ttyDXL_follower_right"},
                          calibration="~/.config/vla/aloha2_calibration.json")
    with Aloha2Robot(config, cameras=my_cameras) as robot:     # connect: ping + model check, modes, torque on
        while ...:                                             # 50 Hz
            obs = robot.observe()                              # one SYNC READ per arm
            sent = robot.send_action(action)                   # one SYNC WRITE per arm (clamped)
    # torque off on every servo when the block ends, normally, by an exception or by Ctrl-C

Servo layout per arm (the Interbotix ViperX 300 S that ALOHA 2's followers are built from; IDs as Interbotix ships
them). Assumption, not checked against hardware here: XM540-W270 for waist, shoulder, elbow (each shoulder and elbow
has a second, "shadow" servo on the same joint), forearm_roll and wrist_angle; XM430-W350 for wrist_rotate and the
gripper. The models are checked at connect (a ping answers the model number), so a different build fails there with
the servo named; pass your own ``Aloha2Config(layout=...)`` for it.

    ID 1 waist   2 shoulder   3 shoulder_shadow   4 elbow   5 elbow_shadow   6 forearm_roll   7 wrist_angle
    ID 8 wrist_rotate   9 gripper

Shadow servos: the Interbotix firmware setup makes a shadow follow its primary (Secondary ID) with Drive Mode
"reverse". This driver does not rely on that EEPROM setup: it addresses the shadow by its own ID and writes it the
mirrored goal, from the shadow's own calibration entry (its own offset, the opposite sign), in the same SYNC WRITE as
the primary. The calibration must give a shadow the sign opposite to its primary's (a shadow turning the same way
would fight its primary), so both servos always aim at the same joint angle.

Units (those of ``robots/aloha2/embodiment.json``): joints in radians, ``ticks = offset + sign * rad * 4096 / 2 pi``
(ticks clipped to 0..4095, the Position Control Mode range); the gripper as the normalized opening in [0, 1] (0
closed, 1 open), ``ticks = closed + opening * (open - closed)`` with the two ends measured on the robot. Joints run in
Position Control Mode, grippers in Current-based Position Control Mode (their Current Limit bounds the grip force).

Calibration file (JSON, one per robot), validated on load; each error names the file and the field:

    {"format_version": 1, "robot": "aloha2",
     "arms": {"left": {"waist": {"offset": 2048, "sign": 1}, ..., "shoulder_shadow": {"offset": 2048, "sign": -1},
                       ..., "gripper": {"closed": 1400, "open": 2600}},
              "right": {...}}}

Cameras: the buses carry no images. ``Aloha2Robot(config, cameras=source)`` takes a callable returning
{camera: uint8[h, w, 3]} for the embodiment's cameras, read once per ``observe()``; without one, ``observe()``
returns ``"images": {}`` and :attr:`Aloha2Robot.observation_features` lists no cameras.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vla_sdk.embodiment import Embodiment, load_embodiment
from vla_sdk.errors import InputError, RuntimeFailure, UsageError
from vla_sdk.jsonfile import read_json_object
from vla_sdk.protocols import RobotNotConnected, check_action, read_cameras, robot_features
from vla_sdk.robots.dynamixel_bus import DynamixelBus, Motor

CALIBRATION_VERSION = 1
TICKS_PER_REV = 4096
MAX_TICK = TICKS_PER_REV - 1
ROBOT = "aloha2"
ARMS = ("left", "right")  # the embodiment's prefixes: "left/waist", ...


@dataclass(frozen=True)
class Servo:
    """One servo of an arm."""

    name: str  # e.g. "shoulder_shadow"; the key of its calibration entry
    id: int  # bus ID
    model: str  # a key of dynamixel_protocol.MODELS
    joint: str  # the embodiment joint it drives, without the arm prefix, e.g. "shoulder"

    @property
    def shadow(self) -> bool:
        return self.name != self.joint


# The ViperX 300 S follower arm, as ALOHA 2 uses it (see the module docstring for what is assumed).
VX300S_LAYOUT: tuple[Servo, ...] = (
    Servo("waist", 1, "XM540-W270", "waist"),
    Servo("shoulder", 2, "XM540-W270", "shoulder"),
    Servo("shoulder_shadow", 3, "XM540-W270", "shoulder"),
    Servo("elbow", 4, "XM540-W270", "elbow"),
    Servo("elbow_shadow", 5, "XM540-W270", "elbow"),
    Servo("forearm_roll", 6, "XM540-W270", "forearm_roll"),
    Servo("wrist_angle", 7, "XM540-W270", "wrist_angle"),
    Servo("wrist_rotate", 8, "XM430-W350", "wrist_rotate"),
    Servo("gripper", 9, "XM430-W350", "gripper"),
)


# The leader arms (Trossen WidowX 250 6DOF, as ALOHA 2's leaders are built; assumed like the follower layout, and
# checked at connect by each servo's model number): one shoulder shadow, no elbow shadow, XL430s from the forearm on.
WX250S_LAYOUT: tuple[Servo, ...] = (
    Servo("waist", 1, "XM430-W350", "waist"),
    Servo("shoulder", 2, "XM430-W350", "shoulder"),
    Servo("shoulder_shadow", 3, "XM430-W350", "shoulder"),
    Servo("elbow", 4, "XM430-W350", "elbow"),
    Servo("forearm_roll", 5, "XL430-W250", "forearm_roll"),
    Servo("wrist_angle", 6, "XL430-W250", "wrist_angle"),
    Servo("wrist_rotate", 7, "XL430-W250", "wrist_rotate"),
    Servo("gripper", 8, "XL430-W250", "gripper"),
)


# ---- calibration --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class JointCalibration:
    """A joint servo: ``ticks = offset + sign * rad * 4096 / (2 pi)``."""

    offset: float  # ticks at 0 rad
    sign: int  # +1 or -1: which way the servo turns for a positive joint angle

    def to_ticks(self, rad: np.ndarray) -> np.ndarray:
        return self.offset + self.sign * np.asarray(rad, dtype=np.float64) * (TICKS_PER_REV / (2 * math.pi))

    def to_units(self, ticks: np.ndarray) -> np.ndarray:
        return self.sign * (np.asarray(ticks, dtype=np.float64) - self.offset) * (2 * math.pi / TICKS_PER_REV)


@dataclass(frozen=True)
class GripperCalibration:
    """A gripper servo: ``ticks = closed + opening * (open - closed)``, opening 0 (closed) .. 1 (open)."""

    closed: float  # ticks with the fingers closed
    open: float  # ticks with the fingers fully open

    def to_ticks(self, opening: np.ndarray) -> np.ndarray:
        return self.closed + np.asarray(opening, dtype=np.float64) * (self.open - self.closed)

    def to_units(self, ticks: np.ndarray) -> np.ndarray:
        return (np.asarray(ticks, dtype=np.float64) - self.closed) / (self.open - self.closed)


@dataclass(frozen=True)
class Calibration:
    """Per arm, per servo name: its :class:`JointCalibration` or :class:`GripperCalibration`."""

    arms: dict[str, dict[str, JointCalibration | GripperCalibration]]
    robot: str = ROBOT

    def to_json(self) -> dict:
        def entry(c):
            if isinstance(c, JointCalibration):
                return {"offset": c.offset, "sign": c.sign}
            return {"closed": c.closed, "open": c.open}

        arms = {arm: {name: entry(c) for name, c in servos.items()} for arm, servos in self.arms.items()}
        return {"format_version": CALIBRATION_VERSION, "robot": self.robot, "arms": arms}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return path


def default_calibration(layout: tuple[Servo, ...] = VX300S_LAYOUT, arms: tuple[str, ...] = ARMS) -> Calibration:
    """Nominal values (every joint's zero at the servo's centre, shadows mirrored, the gripper's range a guess):
    right for the emulated robot, a starting point to measure a real one from."""
    servos = {}
    for s in layout:
        if s.joint == "gripper":
            servos[s.name] = GripperCalibration(closed=1400.0, open=2600.0)
        else:
            servos[s.name] = JointCalibration(offset=2048.0, sign=-1 if s.shadow else 1)
    return Calibration({arm: dict(servos) for arm in arms})


def load_calibration(
    path: str | Path, layout: tuple[Servo, ...] = VX300S_LAYOUT, arms: tuple[str, ...] = ARMS, robot: str = ROBOT
) -> Calibration:
    """Read and validate a calibration file for ``robot`` with ``layout`` on each of ``arms``; every error
    (:class:`vla_sdk.errors.InputError`) names the file and the field."""
    path, raw = read_json_object(path, f"calibration file {Path(path).expanduser()} does not exist")

    def fail(where: str, what: str):
        raise InputError(f"{path}: field {where!r}: {what}")

    if not isinstance(raw, dict):
        raise InputError(f"{path}: expected a JSON object with 'format_version', 'robot' and 'arms'")
    for key in ("format_version", "robot", "arms"):
        if key not in raw:
            fail(key, "missing")
    if raw["format_version"] != CALIBRATION_VERSION:
        fail("format_version", f"expected {CALIBRATION_VERSION}, got {raw['format_version']!r}")
    if raw["robot"] != robot:
        fail("robot", f"this calibration is for {raw['robot']!r}, not for {robot!r}")
    if not isinstance(raw["arms"], dict):
        fail("arms", "expected an object {arm: {servo: {...}}}")
    extra = sorted(set(raw["arms"]) - set(arms))
    if extra:
        fail("arms", f"unknown arm(s) {extra}; expected {list(arms)}")

    def number(where: str, entry: dict, key: str, low: float, high: float) -> float:
        if key not in entry:
            fail(f"{where}.{key}", "missing")
        v = entry[key]
        if isinstance(v, bool) or not isinstance(v, int | float) or not low <= v <= high:
            fail(f"{where}.{key}", f"expected a number of ticks in {low}..{high}, got {v!r}")
        return float(v)

    out: dict[str, dict] = {}
    for arm in arms:
        if arm not in raw["arms"]:
            fail(f"arms.{arm}", "missing")
        entries = raw["arms"][arm]
        if not isinstance(entries, dict):
            fail(f"arms.{arm}", "expected an object {servo: {...}}")
        unknown = sorted(set(entries) - {s.name for s in layout})
        if unknown:
            fail(f"arms.{arm}", f"unknown servo(s) {unknown}; expected {[s.name for s in layout]}")
        servos: dict = {}
        for s in layout:
            where = f"arms.{arm}.{s.name}"
            e = entries.get(s.name)
            if not isinstance(e, dict):
                fail(where, "missing" if e is None else f"expected an object, got {e!r}")
            if s.joint == "gripper":
                closed, opened = number(where, e, "closed", 0, MAX_TICK), number(where, e, "open", 0, MAX_TICK)
                if closed == opened:
                    fail(where, f"'closed' and 'open' must differ, both are {closed:g}")
                servos[s.name] = GripperCalibration(closed, opened)
            else:
                offset = number(where, e, "offset", 0, MAX_TICK)
                sign = e.get("sign")
                if sign not in (1, -1) or isinstance(sign, bool):
                    fail(f"{where}.sign", f"expected 1 or -1, got {sign!r}")
                servos[s.name] = JointCalibration(offset, int(sign))
        for s in layout:
            if s.shadow:
                primary = next((p for p in layout if p.name == s.joint), None)
                if primary is not None and servos[s.name].sign == servos[primary.name].sign:
                    fail(
                        f"arms.{arm}.{s.name}.sign",
                        f"a shadow servo turns opposite to its primary {s.joint!r} (sign "
                        f"{-servos[primary.name].sign}), got {servos[s.name].sign}",
                    )
        out[arm] = servos
    return Calibration(out, robot)


# ---- units ----------------------------------------------------------------------------------------------------
class ArmUnits:
    """Ticks <-> the embodiment's units for the arms of ``layout`` under ``calibration``: per embodiment dimension
    (in order) its arm and the servos that drive it (primary first, then shadows)."""

    def __init__(self, embodiment: Embodiment, layout: tuple[Servo, ...], calibration: Calibration):
        self.layout, self.calibration = layout, calibration
        self.names = [s.name for s in layout]
        self.plan: list[tuple[str, list[Servo]]] = []
        for d in embodiment.dims:
            arm, _, joint = d.name.partition("/")
            servos = [s for s in layout if s.joint == joint]
            if arm not in ARMS or not servos:
                raise InputError(f"{embodiment.name}: dimension {d.name!r} has no servo in the ALOHA 2 layout")
            if (joint == "gripper") != (d.kind == "gripper"):
                raise InputError(f"{embodiment.name}: dimension {d.name!r} is a {d.kind}, its servo is not")
            self.plan.append((arm, sorted(servos, key=lambda s: s.shadow)))

    def to_ticks(self, action: np.ndarray) -> dict[str, np.ndarray]:
        """Per arm: goal ticks [servos in layout order] (int64, clipped to 0..4095) for ``action`` [A]."""
        goals = {arm: np.zeros(len(self.names), dtype=np.float64) for arm in ARMS}
        for value, (arm, servos) in zip(np.asarray(action, dtype=np.float64), self.plan, strict=True):
            for s in servos:
                goals[arm][self.names.index(s.name)] = self.calibration.arms[arm][s.name].to_ticks(value)
        return {arm: np.clip(np.rint(g), 0, MAX_TICK).astype(np.int64) for arm, g in goals.items()}

    def to_units(self, ticks: Mapping[str, np.ndarray]) -> np.ndarray:
        """The state [A] (float32) for present ticks per arm (layout order); a joint reads its primary servo."""
        out = [
            self.calibration.arms[arm][servos[0].name].to_units(ticks[arm][self.names.index(servos[0].name)])
            for arm, servos in self.plan
        ]
        return np.asarray(out, dtype=np.float32)


# ---- the robot ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Aloha2Config:
    """Where the follower arms are and how to drive them."""

    ports: Mapping[str, str]  # arm -> serial port, e.g. {"left": "/dev/ttyDXL_follower_left", "right": ...}
    calibration: str | Path  # the calibration JSON (see the module docstring)
    max_step: float = 0.1  # rad: the most a joint's goal may move from its present position in one step
    max_gripper_step: float = 0.25  # normalized opening: the same for a gripper
    gripper_current_limit: int | None = 300  # Current Limit (x 2.69 mA) of the grippers: the grip force; None: keep
    watchdog_s: float | None = 0.5  # Bus Watchdog: servos hold still if the host is silent this long; None: off
    rearm_watchdog: bool = True  # after a trip (the host was slow, not dead): clear and re-arm it, with a warning
    timeout_s: float = 0.0  # the least time a bus waits for an answer (DynamixelBus(timeout_s=...))
    baudrate: int = 1_000_000
    robot: str = ROBOT  # the embodiment (robots/<robot>/embodiment.json)
    layout: tuple[Servo, ...] = field(default=VX300S_LAYOUT)  # the servos of one arm

    def __post_init__(self):
        if set(self.ports) != set(ARMS):
            raise UsageError(f"Aloha2Config.ports: expected a port for each of {list(ARMS)}, got {dict(self.ports)}")
        for name in ("max_step", "max_gripper_step"):
            if not getattr(self, name) > 0:
                raise UsageError(f"Aloha2Config.{name} must be > 0, got {getattr(self, name)}")


class Aloha2Robot:
    """The two ALOHA 2 follower arms as a :class:`vla_sdk.protocols.Robot` (see the module docstring).

    While disconnected: ``embodiment``, ``control_hz``, ``is_connected``, the features, ``connect()`` and
    ``disconnect()`` (a no-op). ``observe()`` and ``send_action()`` need the connection (else
    :class:`vla_sdk.protocols.RobotNotConnected`). ``send_action`` clamps the action to the embodiment's limits, then
    to ``max_step`` / ``max_gripper_step`` around the present position (the one the last ``observe()`` read, when no
    action was sent since; otherwise read afresh), writes every servo's goal (one SYNC WRITE per arm) and returns the
    clamped action. Any exception inside ``with`` (and ``disconnect()``) turns torque off on every servo."""

    def __init__(self, config: Aloha2Config, cameras: Callable[[], Mapping[str, np.ndarray]] | None = None):
        self.config = config
        self.embodiment: Embodiment = load_embodiment(config.robot)
        self.control_hz = float(self.embodiment.control_hz)
        self.calibration = load_calibration(config.calibration, config.layout, ARMS, self.embodiment.name)
        self.cameras = cameras
        self.units = ArmUnits(self.embodiment, config.layout, self.calibration)
        cams = self.embodiment.cameras if cameras is not None else ()
        self.observation_features, self.action_features = robot_features(
            self.embodiment, cams, self.embodiment.image_size
        )
        self.buses = {
            arm: DynamixelBus(
                config.ports[arm],
                [Motor(s.name, s.id, s.model) for s in config.layout],
                baudrate=config.baudrate,
                timeout_s=config.timeout_s,
            )
            for arm in ARMS
        }
        self._present: np.ndarray | None = None  # [A] the last state read, while no action was sent after it
        self._last_io: float | None = None  # time.monotonic() of the last transfer (the bus watchdog's clock)
        self._step_limit = np.array(
            [config.max_gripper_step if d.kind == "gripper" else config.max_step for d in self.embodiment.dims]
        )

    # -- lifecycle ------------------------------------------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        return all(b.connected for b in self.buses.values())

    def connect(self) -> None:
        """Open both buses (ping + model check), torque off, operating modes, gripper current limit, watchdog,
        torque on (each servo holds where it stands). On any failure every bus is closed (torque off)."""
        if self.is_connected:
            return
        try:
            for bus in self.buses.values():
                bus.connect()
                joints = [s.name for s in self.config.layout if s.joint != "gripper"]
                grippers = [s.name for s in self.config.layout if s.joint == "gripper"]
                bus.set_torque(False)
                bus.set_operating_mode("position", joints)
                bus.set_operating_mode("current_position", grippers)
                if self.config.gripper_current_limit is not None:
                    bus.write("current_limit", self.config.gripper_current_limit, grippers)
                bus.set_watchdog(None)  # clears a tripped watchdog from an earlier run
                if self.config.watchdog_s:
                    bus.set_watchdog(self.config.watchdog_s)
            for bus in self.buses.values():
                bus.set_torque(True)
        except BaseException:
            self.disconnect()
            raise
        self._present = None
        self._last_io = time.monotonic()

    def disconnect(self) -> None:
        """Torque off on every servo and close both buses (each bus's close; a warning names servos that could not
        be confirmed). Idempotent."""
        errors = []
        for bus in self.buses.values():
            try:
                bus.close()
            except Exception as e:  # close the other arm's bus too
                errors.append(e)
        self._present = None
        if errors:
            raise errors[0]

    def __enter__(self) -> Aloha2Robot:
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.disconnect()

    # -- units ----------------------------------------------------------------------------------------------------
    def to_ticks(self, action: np.ndarray) -> dict[str, np.ndarray]:
        """Per arm: goal ticks [servos in layout order] (int64, clipped to 0..4095) for ``action`` [A]."""
        return self.units.to_ticks(action)

    def to_units(self, ticks: Mapping[str, np.ndarray]) -> np.ndarray:
        """The state [A] (float32) for present ticks per arm (layout order); a joint reads its primary servo."""
        return self.units.to_units(ticks)

    # -- the control tick -----------------------------------------------------------------------------------------
    def _need(self, what: str) -> None:
        if not self.is_connected:
            raise RobotNotConnected(f"Aloha2Robot.{what}() needs a connected robot: call connect() or use `with`")

    def _check_watchdog(self) -> None:
        """After a silence longer than the bus watchdog, ask the servos whether it stopped them: a stopped servo holds
        where it stands and refuses goals. With ``rearm_watchdog`` the watchdog is cleared and armed again (with a
        warning: nothing moves until the next goal, which the max step limits); otherwise this raises."""
        now = time.monotonic()
        wd = self.config.watchdog_s
        if wd and self._last_io is not None and now - self._last_io > 0.9 * wd:
            tripped = {arm: bus.watchdog_tripped() for arm, bus in self.buses.items()}
            if any(tripped.values()):
                what = (
                    f"the bus watchdog stopped the arms: this process sent nothing for {now - self._last_io:.2f} s "
                    f"(watchdog_s {wd:g})"
                )
                if not self.config.rearm_watchdog:
                    raise RuntimeFailure(f"{what}; reconnect to go on")
                warnings.warn(f"{what}; re-armed it", RuntimeWarning, stacklevel=3)
                for bus in self.buses.values():
                    bus.set_watchdog(None)
                    bus.set_watchdog(wd)
        self._last_io = time.monotonic()

    def read_ticks(self) -> dict[str, np.ndarray]:
        """Present Position of every servo, per arm ([servos] int64 ticks, layout order): one SYNC READ per arm."""
        self._need("read_ticks")
        self._check_watchdog()
        return {arm: bus.read_positions() for arm, bus in self.buses.items()}

    def observe(self) -> dict:
        """{"images": {camera: uint8[h, w, 3]} (empty without a camera source), "state": float32[14]}."""
        self._need("observe")
        state = self.to_units(self.read_ticks())
        self._present = state
        images = read_cameras(self.cameras)
        return {"images": images, "state": state}

    def send_action(self, action: np.ndarray) -> np.ndarray:
        """Clamp ``action`` [A] to the limits and the maximum step, write it; returns what was sent (float32[A])."""
        self._need("send_action")
        emb = self.embodiment
        a = check_action(emb, action)
        present = self._present if self._present is not None else self.to_units(self.read_ticks())
        a = np.clip(a, present - self._step_limit, present + self._step_limit)
        a = np.clip(a, emb.low, emb.high)  # last: the limits hold even when the arm stands outside them
        goals = self.to_ticks(a)
        self._check_watchdog()
        for arm, bus in self.buses.items():
            bus.write_positions(goals[arm])
        self._present = None
        return a.astype(np.float32)


# ---- the leader arms ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Aloha2LeaderConfig:
    """Where the leader arms are: the person's side of `vla record --teleop leader`."""

    ports: Mapping[str, str]  # arm -> serial port, e.g. {"left": "/dev/ttyDXL_leader_left", "right": ...}
    calibration: str | Path  # the leaders' calibration JSON (same format; the gripper entry is the handle's range)
    timeout_s: float = 0.0  # the least time a bus waits for an answer
    baudrate: int = 1_000_000
    robot: str = ROBOT
    layout: tuple[Servo, ...] = field(default=WX250S_LAYOUT)

    def __post_init__(self):
        if set(self.ports) != set(ARMS):
            raise UsageError(
                f"Aloha2LeaderConfig.ports: expected a port for each of {list(ARMS)}, got {dict(self.ports)}"
            )


class Aloha2Leader:
    """The two leader arms, read with torque off (a person moves them): ``read()`` -> the follower action [14] in
    the embodiment's units (joints in radians, grippers as the opening the handle asks for, in [0, 1], clipped to the
    embodiment's limits). ``connect()`` pings every servo (model check) and turns torque off; ``disconnect()`` closes
    the buses (torque stays off). Usable with ``with``."""

    def __init__(self, config: Aloha2LeaderConfig):
        self.config = config
        self.embodiment: Embodiment = load_embodiment(config.robot)
        self.calibration = load_calibration(config.calibration, config.layout, ARMS, self.embodiment.name)
        self.units = ArmUnits(self.embodiment, config.layout, self.calibration)
        self.buses = {
            arm: DynamixelBus(
                config.ports[arm],
                [Motor(s.name, s.id, s.model) for s in config.layout],
                baudrate=config.baudrate,
                timeout_s=config.timeout_s,
            )
            for arm in ARMS
        }
        self._held = False

    @property
    def is_connected(self) -> bool:
        return all(b.connected for b in self.buses.values())

    def connect(self) -> None:
        if self.is_connected:
            return
        try:
            for bus in self.buses.values():
                bus.connect()
                bus.set_torque(False)
            self._held = False
        except BaseException:
            self.disconnect()
            raise

    def disconnect(self) -> None:
        for bus in self.buses.values():
            bus.close()

    def __enter__(self) -> Aloha2Leader:
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.disconnect()

    def hold(self, pose: np.ndarray) -> None:
        """Drive the leaders to ``pose`` [A] (torque on, position mode): ALOHA's way of bringing them to an
        episode's start pose, one call per control step along the way. :meth:`release` hands them back."""
        if not self.is_connected:
            raise RobotNotConnected("Aloha2Leader.hold() needs a connected leader: call connect() or use `with`")
        goals = self.units.to_ticks(np.clip(pose, self.embodiment.low, self.embodiment.high))
        for arm, bus in self.buses.items():
            if not self._held:
                bus.set_operating_mode("position")
                bus.set_torque(True)
            bus.write_positions(goals[arm])
        self._held = True

    def release(self) -> None:
        """Torque off: the person moves the leaders again."""
        for bus in self.buses.values():
            bus.set_torque(False)
        self._held = False

    def read(self) -> np.ndarray:
        """The leaders' pose as a follower action [A] (float32): one SYNC READ per arm."""
        if not self.is_connected:
            raise RobotNotConnected("Aloha2Leader.read() needs a connected leader: call connect() or use `with`")
        state = self.units.to_units({arm: bus.read_positions() for arm, bus in self.buses.items()})
        return np.clip(state, self.embodiment.low, self.embodiment.high).astype(np.float32)
