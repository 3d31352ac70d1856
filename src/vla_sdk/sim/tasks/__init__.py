"""The task registry: a plain dict from "ROBOT/TASK" to the task class."""

from __future__ import annotations

from vla_sdk.registry import lookup
from vla_sdk.sim.task import Task
from vla_sdk.sim.tasks import aloha2, fr3

TASKS: dict[str, type[Task]] = {t.full_name(): t for t in (*aloha2.TASKS, *fr3.TASKS)}


def list_tasks(robot: str | None = None) -> list[str]:
    return sorted(n for n, t in TASKS.items() if robot is None or t.robot == robot)


def get_task(name: str) -> type[Task]:
    """The task class for ``ROBOT/TASK``; an unknown name lists the valid ones."""
    return lookup(TASKS, "task", name)
