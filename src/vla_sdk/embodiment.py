"""The robot spec: joints, limits, grippers, action/state schema, cameras and control rate.

Each robot is a folder ``robots/<name>/`` holding an MJCF model and ``embodiment.json``; adding a robot is adding data.
The action and the state share one layout: one entry per dimension, in order. A ``joint`` dimension is an absolute
joint position in radians; a ``gripper`` dimension is a normalized opening in [0, 1] where ``open`` (1.0 for both
shipped robots) is fully open and the other end fully closed. ``finger_range`` maps it linearly to the finger joint
(metres from the gripper centre line), so the polarity is data, checked by a test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from vla_sdk.assets import robots_dir
from vla_sdk.errors import InputError
from vla_sdk.registry import UnknownNameError

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Dim:
    """One action/state dimension."""

    name: str  # e.g. "left/waist"
    kind: str  # "joint" or "gripper"
    joint: str  # MJCF joint read for the state (for a gripper: the driven finger joint)
    actuator: str  # MJCF actuator written by the action
    low: float  # lower limit in action units (rad for joints; 0 for grippers)
    high: float  # upper limit in action units (rad for joints; 1 for grippers)
    finger_range: tuple[float, float] | None = None  # gripper only: finger joint (m) at action 0 and at action 1
    mirror_joint: str | None = None  # gripper only: the second finger's joint, which mirrors `joint`

    def __post_init__(self):
        if self.kind not in ("joint", "gripper"):
            raise InputError(f"dimension {self.name!r}: kind must be 'joint' or 'gripper', got {self.kind!r}")
        if not self.low < self.high:
            raise InputError(f"dimension {self.name!r}: limits must satisfy low < high, got [{self.low}, {self.high}]")
        if (self.kind == "gripper") != (self.finger_range is not None):
            raise InputError(f"dimension {self.name!r}: finger_range is required for grippers and only for them")


@dataclass(frozen=True)
class EndEffector:
    """A tool frame that IK (scripted experts, keyboard teleop) drives."""

    name: str  # e.g. "left"
    site: str  # MJCF site at the grasp point
    joints: tuple[str, ...]  # arm joints that move it
    gripper: str  # name of its gripper dimension


@dataclass(frozen=True)
class Embodiment:
    """A robot as the rest of the SDK sees it. Read with :func:`load_embodiment`."""

    name: str
    description: str
    model_path: Path  # MJCF of the robot alone
    control_hz: float  # actions per second
    dims: tuple[Dim, ...]  # action = state layout
    cameras: tuple[str, ...]  # camera names, in the order they are tiled
    image_size: tuple[int, int]  # default (height, width) of camera images
    home: tuple[float, ...]  # action at rest (the start of every episode before task randomization)
    end_effectors: tuple[EndEffector, ...]
    open_gripper: float = 1.0  # the action value that opens a gripper fully

    def __post_init__(self):
        if len(self.home) != len(self.dims):
            n, want = len(self.home), len(self.dims)
            raise InputError(f"{self.name}: 'home' has {n} values, expected {want} (one per dimension)")
        if self.control_hz <= 0:
            raise InputError(f"{self.name}: control_hz must be > 0, got {self.control_hz}")

    @property
    def action_dim(self) -> int:
        return len(self.dims)

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.dims]

    @property
    def low(self) -> np.ndarray:  # [A]
        return np.array([d.low for d in self.dims], dtype=np.float64)

    @property
    def high(self) -> np.ndarray:  # [A]
        return np.array([d.high for d in self.dims], dtype=np.float64)

    @property
    def gripper_indices(self) -> list[int]:
        return [i for i, d in enumerate(self.dims) if d.kind == "gripper"]

    def index(self, name: str) -> int:
        names = self.names
        if name not in names:
            raise UnknownNameError(f"{self.name} dimension", name, names)
        return names.index(name)

    def to_json(self) -> dict:
        """The schema that travels with datasets and checkpoints (no file paths)."""
        return {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "control_hz": self.control_hz,
            "dims": [
                {"name": d.name, "kind": d.kind, "low": d.low, "high": d.high}
                | ({"finger_range": list(d.finger_range)} if d.finger_range else {})
                for d in self.dims
            ],
            "cameras": list(self.cameras),
            "image_size": list(self.image_size),
            "open_gripper": self.open_gripper,
        }


def list_robots() -> list[str]:
    return sorted(p.parent.name for p in robots_dir().glob("*/embodiment.json"))


@cache
def load_embodiment(name: str) -> Embodiment:
    """Read ``robots/<name>/embodiment.json``; errors name the file and the field."""
    path = robots_dir() / name / "embodiment.json"
    if not path.is_file():
        raise UnknownNameError("robot", name, list_robots())
    return parse_embodiment(json.loads(path.read_text()), path)


def parse_embodiment(raw: dict, path: Path) -> Embodiment:
    def need(obj: dict, key: str, where: str):
        if key not in obj:
            raise InputError(f"{path}: missing field {where}{key!r}")
        return obj[key]

    version = need(raw, "format_version", "")
    if version > FORMAT_VERSION:
        raise InputError(f"{path}: format_version {version} is newer than this vla-sdk supports ({FORMAT_VERSION})")
    dims = []
    for i, d in enumerate(need(raw, "dims", "")):
        where = f"dims[{i}]."
        fr = d.get("finger_range")
        dims.append(
            Dim(
                name=need(d, "name", where),
                kind=need(d, "kind", where),
                joint=need(d, "joint", where),
                actuator=need(d, "actuator", where),
                low=float(need(d, "low", where)),
                high=float(need(d, "high", where)),
                finger_range=tuple(float(v) for v in fr) if fr is not None else None,
                mirror_joint=d.get("mirror_joint"),
            )
        )
    ees = tuple(
        EndEffector(name=e["name"], site=e["site"], joints=tuple(e["joints"]), gripper=e["gripper"])
        for e in raw.get("end_effectors", [])
    )
    h, w = need(raw, "image_size", "")
    return Embodiment(
        name=need(raw, "name", ""),
        description=raw.get("description", ""),
        model_path=path.parent / need(raw, "model", ""),
        control_hz=float(need(raw, "control_hz", "")),
        dims=tuple(dims),
        cameras=tuple(need(raw, "cameras", "")),
        image_size=(int(h), int(w)),
        home=tuple(float(v) for v in need(raw, "home", "")),
        end_effectors=ees,
        open_gripper=float(raw.get("open_gripper", 1.0)),
    )
