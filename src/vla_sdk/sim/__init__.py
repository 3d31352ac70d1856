"""MuJoCo simulations of the shipped robots: scenes, tasks, scripted experts and gymnasium environments.

Rendering is headless: ``MUJOCO_GL`` defaults to ``egl`` unless the caller set it.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

from vla_sdk.sim.env import VlaEnv, make  # noqa: E402
from vla_sdk.sim.tasks import TASKS, get_task, list_tasks  # noqa: E402

__all__ = ["TASKS", "VlaEnv", "get_task", "list_tasks", "make"]
