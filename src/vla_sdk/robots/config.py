"""Robots by name: `vla run --robot NAME` and `vla record --robot NAME` pick the robot from here.

Names built in:
  sim               the simulator of --task (the default)
  aloha2-emulated   ALOHA 2 followers (and, for --teleop leader, leaders) on emulated Dynamixel buses started for
                    the command, seen through the twin of --task (:mod:`vla_sdk.robots.twin`)

Anything else is a robot config file (JSON, validated on load; every error names the file and the field):

    {"format_version": 1, "driver": "aloha2",
     "followers": {"ports": {"left": "/dev/ttyDXL_follower_left", "right": "/dev/ttyDXL_follower_right"},
                   "calibration": "aloha2_calibration.json",          # relative paths: from the config's folder
                   "watchdog_s": 0.5, "max_step": 0.1},                 # optional: any Aloha2Config field
     "leaders":   {"ports": {...}, "calibration": "aloha2_leader_calibration.json"},   # for --teleop leader
     "cameras":   "twin"}                                               # or {"cam_high": "/dev/video0", ...}

    {"format_version": 1, "driver": "fr3", "fr3": {"host": "172.16.0.2"}, "cameras": {...}}

``"cameras": "twin"`` renders the cameras from the twin of --task (an emulated robot has no cameras); a mapping names
a video device (or file) per camera, read with PyAV (:mod:`vla_sdk.robots.cameras`). `vla robot emulate` writes such
a file for emulated buses it keeps running in its own process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from vla_sdk.errors import InputError, UsageError
from vla_sdk.jsonfile import read_json_object

CONFIG_VERSION = 1
BUILTIN = ("sim", "aloha2-emulated")
DRIVERS = ("aloha2", "fr3")


@dataclass
class RobotSetup:
    """An opened robot: ``robot`` (a :class:`vla_sdk.protocols.Robot`, not yet connected), ``leader`` (an object
    with ``connect()``, ``read() -> action [A]``, ``disconnect()``; None unless asked for), ``hand`` (emulation
    only: a :class:`vla_sdk.robots.twin.ScriptedHand` moving the emulated leaders)."""

    robot: object
    leader: object | None = None
    hand: object | None = None


def _fail(path: Path, field: str, what: str):
    raise InputError(f"{path}: field {field!r}: {what}")


def load_config(path: str | Path) -> dict:
    """Read and validate a robot config file; relative paths in it are resolved from its folder."""
    missing = f"--robot {Path(path).expanduser()}: no such robot config file; built-in robots: {', '.join(BUILTIN)}"
    path, raw = read_json_object(path, missing)
    if raw.get("format_version") != CONFIG_VERSION:
        _fail(path, "format_version", f"expected {CONFIG_VERSION}, got {raw.get('format_version')!r}")
    if raw.get("driver") not in DRIVERS:
        _fail(path, "driver", f"expected one of {list(DRIVERS)}, got {raw.get('driver')!r}")
    cams = raw.get("cameras", {})
    if not (cams == "twin" or isinstance(cams, dict) and all(isinstance(v, str) for v in cams.values())):
        _fail(path, "cameras", f'expected "twin" or {{camera: device path}}, got {cams!r}')
    for part in ("followers", "leaders"):
        if part in raw:
            section = raw[part]
            if not isinstance(section, dict) or not isinstance(section.get("ports"), dict):
                _fail(path, f"{part}.ports", "expected an object {arm: serial port}")
            if not isinstance(section.get("calibration"), str):
                _fail(path, f"{part}.calibration", "expected the path of a calibration file")
            section["calibration"] = str((path.parent / section["calibration"]).expanduser())
    if raw["driver"] == "aloha2" and "followers" not in raw:
        _fail(path, "followers", "missing (the follower arms' ports and calibration)")
    if raw["driver"] == "fr3" and not isinstance(raw.get("fr3"), dict):
        _fail(path, "fr3", 'missing: {"host": FCI IP, ...}')
    return raw


def _dataclass_from(cls, section: dict, path: Path, where: str, **fixed):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(section) - names)
    if unknown:
        _fail(path, f"{where}.{unknown[0]}", f"unknown; {cls.__name__} has {sorted(names)}")
    try:
        return cls(**{**section, **fixed})
    except (TypeError, ValueError, UsageError) as e:
        raise InputError(f"{path}: field {where!r}: {e}") from e


def _devices(spec, cameras: tuple[str, ...], image_size, path: Path, stack: contextlib.ExitStack):
    """The camera source of a config's robot: None for "twin" (the twin renders them), else device streams."""
    if spec == "twin" or not cameras:
        return None
    missing = [c for c in cameras if c not in spec]
    if missing:
        _fail(path, "cameras", f"no device for camera(s) {missing} (the policy or recording needs {list(cameras)})")
    from vla_sdk.robots.cameras import DeviceCameras

    source = DeviceCameras({c: spec[c] for c in cameras}, image_size)
    stack.callback(source.stop)
    return source


def _seen(robot, spec, task: str, cameras: tuple[str, ...], image_size, seed: int) -> RobotSetup:
    from vla_sdk.robots.twin import TwinRobot

    if spec == "twin":
        return RobotSetup(TwinRobot(robot, task, cameras, image_size, seed=seed))
    return RobotSetup(robot)


@contextlib.contextmanager
def open_robot(
    name: str,
    *,
    task: str,
    cameras: tuple[str, ...],
    image_size: tuple[int, int],
    seed: int = 0,
    leader: bool = False,
) -> Iterator[RobotSetup]:
    """The robot ``name`` (a built-in name or a config file) for ``task``'s embodiment, its ``cameras`` at
    ``image_size``; with ``leader``, its leader arms too. Emulators started here stop when the block ends."""
    from vla_sdk.sim import get_task

    robot_name = get_task(task).robot
    if name == "sim":
        if leader:
            raise UsageError("--teleop leader needs a robot with leader arms (--robot aloha2-emulated or a config)")
        from vla_sdk.robot import SimRobot

        yield RobotSetup(SimRobot(task, cameras, image_size, seed))
        return
    if name == "aloha2-emulated":
        if robot_name != "aloha2":
            raise UsageError(f"--robot aloha2-emulated drives aloha2, --task {task} is for {robot_name}")
        from vla_sdk.robots.aloha2 import Aloha2Leader, Aloha2Robot
        from vla_sdk.robots.aloha2_emulated import EmulatedAloha2
        from vla_sdk.robots.twin import ScriptedHand, TwinRobot

        with tempfile.TemporaryDirectory(prefix="vla-aloha2-emulated-") as workdir:
            emu = EmulatedAloha2(workdir, leaders=leader)
            with emu as config:
                robot = TwinRobot(Aloha2Robot(config), task, cameras, image_size, seed=seed)
                setup = RobotSetup(robot)
                if leader:
                    setup.leader = Aloha2Leader(emu.leader_config)
                    setup.hand = ScriptedHand(robot, emu.push_leaders)
                yield setup
        return
    if name in ("aloha2", "fr3"):
        raise UsageError(
            f"--robot {name}: a real robot needs a config file naming its ports and calibration "
            f"(see docs/robots-and-tasks.md); built-in: {', '.join(BUILTIN)}"
        )
    path = Path(name).expanduser()
    raw = load_config(path)
    driver, spec = raw["driver"], raw.get("cameras", {})
    if robot_name != driver:
        raise UsageError(f"--robot {path} drives {driver}, --task {task} is for {robot_name}")
    if leader and "leaders" not in raw:
        _fail(path, "leaders", f"missing: --teleop leader needs leader arms (the {driver} config has none)")
    with contextlib.ExitStack() as stack:
        source = _devices(spec, cameras, image_size, path, stack)
        if driver == "aloha2":
            from vla_sdk.robots.aloha2 import Aloha2Config, Aloha2Leader, Aloha2LeaderConfig, Aloha2Robot

            robot = Aloha2Robot(_dataclass_from(Aloha2Config, raw["followers"], path, "followers"), cameras=source)
            setup = _seen(robot, spec, task, cameras, image_size, seed)
            if leader:
                setup.leader = Aloha2Leader(_dataclass_from(Aloha2LeaderConfig, raw["leaders"], path, "leaders"))
        else:
            from vla_sdk.robots.fr3 import Fr3Config, Fr3Robot

            robot = Fr3Robot(_dataclass_from(Fr3Config, raw["fr3"], path, "fr3"), cameras=source)
            setup = _seen(robot, spec, task, cameras, image_size, seed)
        yield setup
