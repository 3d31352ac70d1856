"""The interfaces the layers meet at, stated as checkable protocols (flax-free core).

A :class:`Policy` is what a runner drives: the checkpoint policy (:class:`vla_sdk.policy.Policy`) and the exported
artifact (:class:`vla_sdk.export.runtime.ArtifactPolicy`) both implement it, and the runner, evaluation, export gate
and `vla run` use nothing else of them.

A :class:`Robot` is what `vla run` and the episode loop drive: the simulator (:class:`vla_sdk.robot.SimRobot`) and
the hardware drivers (:class:`vla_sdk.robots.aloha2.Aloha2Robot`, on a real or an emulated Dynamixel bus).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from vla_sdk.errors import InputError, RuntimeFailure
from vla_sdk.schema import ACTION, IMAGE_PREFIX, STATE

if TYPE_CHECKING:
    from vla_sdk.embodiment import Embodiment


@runtime_checkable
class Policy(Protocol):
    """``policy(obs) -> actions`` float [H, A] for one raw observation

        obs = {"images": {camera: uint8[h, w, 3]}, "state": float[A], "instruction": str}

    in the robot's own units and joint order (A = the embodiment's action size, H = ``horizon``)."""

    @property
    def cameras(self) -> tuple[str, ...]:
        """Camera names the policy reads, in its order; ``obs["images"]`` must hold exactly these."""
        ...

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) each camera image is resized to (pixels)."""
        ...

    @property
    def horizon(self) -> int:
        """Actions per predicted chunk (H)."""
        ...

    @property
    def robot(self) -> str | None:
        """Name of the embodiment it was trained for (None: unknown, e.g. an old checkpoint)."""
        ...

    @property
    def execute(self) -> int | None:
        """Actions of each chunk a runner should execute before replanning, as trained (None: not set)."""
        ...

    def reset(self, seed: int) -> None:
        """Start an episode: the policy's sampling noise is a function of ``seed`` from here on."""
        ...

    def __call__(self, obs: dict) -> np.ndarray: ...


class RobotNotConnected(RuntimeFailure):
    """A :class:`Robot` method that needs the connection was called before ``connect()`` or after ``disconnect()``."""


@runtime_checkable
class Robot(Protocol):
    """A robot (or the simulator) behind one interface, as LeRobot's ``Robot`` states it.

    Works while disconnected (and never touches the device):
      ``embodiment``            the robot's :class:`vla_sdk.embodiment.Embodiment`: joint order, units, limits,
                                cameras, control rate
      ``control_hz``            control steps per second (the embodiment's, e.g. 50 for ALOHA 2)
      ``is_connected``          whether ``connect()`` has run and ``disconnect()`` has not
      ``observation_features``  the observation schema, the one the dataset records (see :func:`robot_features`):
                                {"observation.state": {"dtype": "float32", "shape": [A], "names": [...]},
                                 "observation.images.<cam>": {"dtype": "video", "shape": [h, w, 3], ...}}
      ``action_features``       {"action": {"dtype": "float32", "shape": [A], "names": [...]}}
      ``connect()``             open the connection (hardware: check every device, configure it, torque on)
      ``disconnect()``          close it, leaving the robot safe (hardware: torque off); idempotent, and a no-op on a
                                robot that never connected

    Only while connected (otherwise :class:`RobotNotConnected`):
      ``observe()``             the latest observation
                                {"images": {camera: uint8[h, w, 3]}, "state": float32[A]} (plus optional keys, e.g.
                                the simulator's "instruction"), ``state`` in the embodiment's order and units:
                                joints in radians, grippers as the normalized opening in [0, 1] (1 = open)
      ``send_action(action)``   command one control step: ``action`` float[A], absolute positions in the same order
                                and units; it is clamped to the embodiment's limits (and, on hardware, to a maximum
                                step from the present position) and the action actually sent is returned
                                (float32[A]). Hardware returns at once; the simulator advances one control period.
    """

    @property
    def embodiment(self) -> Embodiment: ...

    @property
    def control_hz(self) -> float: ...

    @property
    def is_connected(self) -> bool: ...

    @property
    def observation_features(self) -> dict: ...

    @property
    def action_features(self) -> dict: ...

    def connect(self) -> None: ...

    def disconnect(self) -> None: ...

    def observe(self) -> dict: ...

    def send_action(self, action: np.ndarray) -> np.ndarray: ...


def robot_features(embodiment: Embodiment, cameras: tuple[str, ...], image_size: tuple[int, int]) -> tuple[dict, dict]:
    """(observation_features, action_features) of a robot: the entries the dataset's ``features`` holds for them
    (vla_sdk.data.layout.make_features, without the video encoding details)."""
    names = list(embodiment.names)
    h, w = image_size
    obs = {STATE: {"dtype": "float32", "shape": [len(names)], "names": names}}
    for cam in cameras:
        obs[IMAGE_PREFIX + cam] = {"dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"]}
    return obs, {ACTION: {"dtype": "float32", "shape": [len(names)], "names": list(names)}}


def read_cameras(source) -> dict[str, np.ndarray]:
    """A hardware driver's images: ``source()`` ({camera: uint8[h, w, 3]}), each checked; ``{}`` without a source."""
    if source is None:
        return {}
    images = {cam: np.asarray(img) for cam, img in dict(source()).items()}
    for cam, img in images.items():
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[-1] != 3:
            raise InputError(f"camera {cam!r}: expected uint8 [h, w, 3], got {img.dtype} {img.shape}")
    return images


def check_action(embodiment: Embodiment, action) -> np.ndarray:
    """A hardware driver's incoming action as float64 [A], refused unless it is A finite numbers."""
    a = np.asarray(action, dtype=np.float64)
    if a.shape != (embodiment.action_dim,) or not np.all(np.isfinite(a)):
        raise InputError(
            f"{embodiment.name}: action must be {embodiment.action_dim} finite numbers {embodiment.names}, got {a}"
        )
    return a
