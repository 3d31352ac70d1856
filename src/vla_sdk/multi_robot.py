"""Policies of several robots: the per-robot parts of a checkpoint meta or artifact manifest (flax-free core).

A checkpoint of one robot keeps that robot's parts at the top of its meta (``embodiment``, ``action_names``,
``stats``, ``delta_mask``); one trained on several (``vla train --data A --data B`` of different robots) keeps them
per robot under ``robots``: ``{name: {those fields, "cameras": the model's camera slots that robot fills}}``.
:func:`for_robot` gives either as the one-robot view every reader uses (the policy, export, the runtime), and says
so when the robot asked for is not one it was trained for.
"""

from __future__ import annotations

from vla_sdk.errors import InputError, UsageError

ROBOT_PARTS = ("embodiment", "action_names", "stats", "delta_mask", "cameras")  # per robot in a multi-robot meta


def trained_robots(meta: dict) -> list[str]:
    """The robots a checkpoint (or artifact manifest) was trained for; [] when it names none."""
    if "robots" in meta:
        return sorted(meta["robots"])
    name = (meta.get("embodiment") or {}).get("name")
    return [name] if name else []


def for_robot(meta: dict, robot: str | None = None, where: str = "the policy") -> dict:
    """``meta`` as one robot's policy: a one-robot meta as it is (checked against ``robot`` when both name one),
    a multi-robot meta with ``robot``'s parts (``robot`` None: its only robot) at the top and ``robots`` dropped."""
    robots = trained_robots(meta)
    if "robots" not in meta:
        if robot and robots and robot not in robots:
            raise InputError(f"{where} was trained for robot {robots[0]!r}, not {robot!r}")
        return meta
    if robot is None:
        if len(robots) != 1:
            raise UsageError(f"{where} was trained for several robots ({', '.join(robots)}): say which (--robot NAME)")
        robot = robots[0]
    if robot not in meta["robots"]:
        raise InputError(
            f"{where} was trained for robots {robots}, not {robot!r}; fine-tune it on {robot!r} data "
            f"(vla train --data DIR --base ...) to add it"
        )
    view = {k: v for k, v in meta.items() if k != "robots"}
    return {**view, **meta["robots"][robot], "trained_robots": robots}
