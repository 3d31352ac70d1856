"""The task registry: a plain dict from "ROBOT/TASK" to the task class."""

from __future__ import annotations

from vla_sdk.registry import lookup
from vla_sdk.sim.task import Task
from vla_sdk.sim.tasks import aloha2, fr3

TASKS: dict[str, type[Task]] = {t.full_name(): t for t in (*aloha2.TASKS, *fr3.TASKS)}


def list_tasks(robot: str | None = None, held_out: bool | None = None) -> list[str]:
    """Task names, sorted; ``robot``: only that robot's; ``held_out``: only the held-out tasks (True) or only the
    others (False, e.g. a base policy's training mix); None: all."""
    return sorted(
        n
        for n, t in TASKS.items()
        if (robot is None or t.robot == robot) and (held_out is None or t.held_out == held_out)
    )


def get_task(name: str) -> type[Task]:
    """The task class for ``ROBOT/TASK``; an unknown name lists the valid ones."""
    return lookup(TASKS, "task", name)
