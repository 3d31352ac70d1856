"""The robot side of `vla run`: one interface for the simulator now and for hardware later.

Contract (what a hardware driver implements):
  ``embodiment``   the robot's :class:`Embodiment` (joint order, limits, cameras, control rate); valid while
                   disconnected
  ``connect()``    open the connection; ``disconnect()`` close it (idempotent)
  ``observe()``    the latest {"images": {camera: uint8[h, w, 3]}, "state": float[A], "instruction": str};
                   only while connected
  ``send(action)`` command one control step's action [A] (absolute joint positions, gripper opening in [0, 1]);
                   returns at once on hardware; the simulator advances one control period
  ``status()``     {"success": bool | None, "done": bool}: the task's verdict where known (None on hardware)
"""

from __future__ import annotations

import numpy as np

from vla_sdk.episode import GymSource
from vla_sdk.model.config import image_hw
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

    def connect(self) -> None:
        self._episode.reset()

    def disconnect(self) -> None:
        self.env.close()

    def observe(self) -> dict:
        if self._episode.obs is None:
            raise RuntimeError("observe() before connect()")
        return self._episode.observe()

    def send(self, action: np.ndarray) -> None:
        self._episode.step(action)

    def status(self) -> dict:
        return {"success": bool(self._episode.success), "done": self._episode.done}

    def frame(self) -> np.ndarray:
        """The policy's cameras tiled (cheap enough to film inside the control loop)."""
        return self.env.render_frame(self.env.cameras)


class RobotSource:
    """A robot (this module's contract) as a :class:`vla_sdk.episode.EpisodeSource`: ``reset()`` connects (once),
    ``observe()`` reads the robot, ``step(action)`` sends, ``done``/``success`` come from ``status()``. The caller
    disconnects."""

    def __init__(self, robot):
        self.robot = robot
        self.connected = False

    def reset(self) -> None:
        if not self.connected:
            self.robot.connect()
            self.connected = True

    def observe(self) -> dict:
        return self.robot.observe()

    def step(self, action: np.ndarray) -> None:
        self.robot.send(action)

    @property
    def done(self) -> bool:
        return bool(self.robot.status()["done"])

    @property
    def success(self) -> bool | None:
        return self.robot.status()["success"]
