"""The robot side of `vla run`: one interface for the simulator and for hardware.

The contract is :class:`vla_sdk.protocols.Robot` (which methods work while disconnected, what ``observe()`` and
``send_action()`` take and return); :class:`SimRobot` here and :class:`vla_sdk.robots.aloha2.Aloha2Robot` implement
it. The episode loop adds one optional method, ``status()`` -> {"success": bool | None, "done": bool}: the task's
verdict where known (the simulator); :class:`RobotSource` treats a robot without it as never done.
"""

from __future__ import annotations

import numpy as np

from vla_sdk.episode import GymSource
from vla_sdk.model.config import image_hw
from vla_sdk.protocols import RobotNotConnected, robot_features
from vla_sdk.sim.env import VlaEnv


class SimRobot:
    """The simulator behind the robot interface."""

    def __init__(
        self,
        task: str,
        cameras: tuple[str, ...],
        image_size: tuple[int, int] | int,
        seed: int = 0,
        render_size: tuple[int, int] = (120, 160),
    ):
        self.env = VlaEnv(task, cameras=cameras, image_size=image_hw(image_size), render_size=render_size)
        self.embodiment = self.env.embodiment
        self.control_hz = self.env.control_hz
        self.seed = seed
        self._episode = GymSource(self.env, seed)
        self.is_connected = False
        self.observation_features, self.action_features = robot_features(
            self.embodiment, self.env.cameras, image_hw(image_size)
        )

    def connect(self) -> None:
        """Start an episode (every call resets the scene)."""
        self._episode.reset()
        self.is_connected = True

    def disconnect(self) -> None:
        self.env.close()
        self.is_connected = False

    def observe(self) -> dict:
        if not self.is_connected or self._episode.obs is None:
            raise RobotNotConnected("SimRobot.observe() before connect()")
        return self._episode.observe()

    def send_action(self, action: np.ndarray) -> np.ndarray:
        """Clip ``action`` [A] to the embodiment's limits, advance one control period; returns the clipped action
        (float32[A]). The simulator has no maximum step: its position actuators track any target."""
        if not self.is_connected:
            raise RobotNotConnected("SimRobot.send_action() before connect()")
        sent, _ = self.env.check_action(action)
        self._episode.step(sent)
        return np.asarray(sent, dtype=np.float32)

    send = send_action  # the name before the Robot protocol

    def status(self) -> dict:
        return {"success": bool(self._episode.success), "done": self._episode.done}

    def frame(self) -> np.ndarray:
        """The policy's cameras tiled (cheap enough to film inside the control loop)."""
        return self.env.render_frame(self.env.cameras)


class RobotSource:
    """A robot (this module's contract) as a :class:`vla_sdk.episode.EpisodeSource`: ``reset()`` connects (once),
    ``observe()`` reads the robot, ``step(action)`` sends, ``done``/``success`` come from ``status()``. The caller
    disconnects. ``keep_sent``: keep every action the robot reports it sent (after its clamps) in :attr:`sent`."""

    def __init__(self, robot, keep_sent: bool = False):
        self.robot = robot
        self.connected = False
        self.sent: list[np.ndarray] | None = [] if keep_sent else None

    def reset(self) -> None:
        if not self.connected:
            self.robot.connect()
            self.connected = True

    def observe(self) -> dict:
        return self.robot.observe()

    def step(self, action: np.ndarray) -> None:
        sent = self.robot.send_action(action)
        if self.sent is not None:
            self.sent.append(np.asarray(sent, dtype=np.float64))

    def _status(self) -> dict:
        status = getattr(self.robot, "status", None)
        return status() if status is not None else {"success": None, "done": False}

    @property
    def done(self) -> bool:
        return bool(self._status()["done"])

    @property
    def success(self) -> bool | None:
        return self._status()["success"]
