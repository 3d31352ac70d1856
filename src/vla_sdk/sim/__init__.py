"""MuJoCo simulations of the shipped robots: scenes, tasks, scripted experts and gymnasium environments.

Rendering is headless: ``MUJOCO_GL`` defaults to ``egl`` unless the caller set it.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

from vla_sdk.sim.env import VlaEnv, make  # noqa: E402
from vla_sdk.sim.tasks import TASKS, get_task, list_tasks  # noqa: E402


def gym_id(task: str) -> str:
    """The gymnasium id of ``ROBOT/TASK``, e.g. ``vla_sdk/aloha2-transfer_cube-v0``."""
    return "vla_sdk/" + task.replace("/", "-") + "-v0"


def register_gym_envs() -> None:
    """Register every task with gymnasium (idempotent); ``gymnasium.make(gym_id(task), cameras=[...])`` works."""
    import gymnasium as gym

    for name in TASKS:
        if gym_id(name) not in gym.registry:
            gym.register(
                gym_id(name),
                entry_point="vla_sdk.sim.env:VlaEnv",
                kwargs={"task": name},
                max_episode_steps=None,
                disable_env_checker=True,
            )


register_gym_envs()

__all__ = ["TASKS", "VlaEnv", "get_task", "gym_id", "list_tasks", "make", "register_gym_envs"]
