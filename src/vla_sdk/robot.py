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

from vla_sdk.sim.env import VlaEnv


class SimRobot:
    """The simulator behind the robot interface."""

    def __init__(
        self,
        task: str,
        cameras: tuple[str, ...],
        image_size: int,
        seed: int = 0,
        render_size: tuple[int, int] = (120, 160),
    ):
        self.env = VlaEnv(task, cameras=cameras, image_size=(image_size, image_size), render_size=render_size)
        self.embodiment = self.env.embodiment
        self.control_hz = self.env.control_hz
        self.seed = seed
        self._obs = None
        self._info = {"success": False}
        self._done = False

    def connect(self) -> None:
        self._obs, _ = self.env.reset(seed=self.seed)

    def disconnect(self) -> None:
        self.env.close()

    def observe(self) -> dict:
        if self._obs is None:
            raise RuntimeError("observe() before connect()")
        return self._obs

    def send(self, action: np.ndarray) -> None:
        self._obs, _, terminated, truncated, self._info = self.env.step(action)
        self._done = terminated or truncated

    def status(self) -> dict:
        return {"success": bool(self._info.get("success")), "done": self._done}

    def frame(self) -> np.ndarray:
        """The policy's cameras tiled (cheap enough to film inside the control loop)."""
        return self.env.render_frame(self.env.cameras)
