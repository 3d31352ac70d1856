"""Which robot the training data is of: the embodiment a run is bound to (`vla train --robot`).

A dataset the SDK recorded or converted says it in ``meta/info.json`` (``vla.embodiment``). One written elsewhere
(LeRobot's own, a hub dataset) has only a ``robot_type`` and the features' joint ``names``; binding it is explicit:

  --robot aloha2 | fr3      an SDK embodiment (robots/<name>/embodiment.json), when the data's joints are its joints
  --robot FILE.json         a robot the SDK does not ship, declared in a small file:
                            {"name": "so100_follower",
                             "dims": [{"name": "shoulder_pan", "kind": "joint"}, ..., {"name": "gripper",
                                      "kind": "gripper"}]}

Without ``--robot``, a dataset that declares nothing is bound to the SDK embodiment its ``robot_type`` names, and
is otherwise refused with what to give. The binding must fit: the embodiment's dimension names are exactly the
names of the data's ``action`` (and ``observation.state``) features; the order is the data's (the features' names
give it), and the dims are put in that order.
"""

from __future__ import annotations

from pathlib import Path

from vla_sdk.embodiment import list_robots, load_embodiment
from vla_sdk.errors import InputError, UsageError
from vla_sdk.jsonfile import read_json_object

KINDS = ("joint", "gripper")


def _declared(path: Path) -> dict:
    """A robot declared in a file: {"name", "dims": [{"name", "kind"}, ...]}, checked field by field."""
    path, raw = read_json_object(path, f"--robot {path}: no such file; SDK robots: {', '.join(list_robots())}")
    if not isinstance(raw.get("name"), str) or not raw["name"]:
        raise InputError(f"{path}: field 'name': expected the robot's name (a string), got {raw!r:.80}")
    dims = raw.get("dims")
    if not isinstance(dims, list) or not dims:
        raise InputError(f'{path}: field \'dims\': expected a list of {{"name": ..., "kind": "joint"|"gripper"}}')
    for i, d in enumerate(dims):
        if not isinstance(d, dict) or not isinstance(d.get("name"), str):
            raise InputError(f"{path}: field 'dims[{i}].name': expected a joint name, got {d!r:.80}")
        if d.get("kind") not in KINDS:
            raise InputError(f"{path}: field 'dims[{i}].kind': expected one of {list(KINDS)}, got {d.get('kind')!r}")
    return {"name": raw["name"], "dims": [{"name": d["name"], "kind": d["kind"]} for d in dims]}


def bind_embodiment(datasets: list, robot: str | None) -> dict:
    """The embodiment (as a checkpoint stores it: {"name", "dims": [...]}) of ``datasets`` (all of one robot),
    from what the first declares or from ``robot`` (a name or a file, see the module docstring)."""
    first = datasets[0]
    for ds in datasets[1:]:
        for key in ("observation.state", "action"):
            if ds.features[key].get("names") != first.features[key].get("names"):
                raise InputError(
                    f"{ds.root}: feature {key!r} differs from {first.root} (datasets of one robot must have its joints)"
                )
    recorded = first.info.get("vla", {}).get("embodiment")
    robot_type = first.info.get("robot_type")
    if robot is None:
        if recorded:
            return recorded
        if robot_type not in list_robots():
            raise UsageError(
                f"{first.root}: robot_type {robot_type!r} is no robot this SDK ships, and the dataset declares no "
                f"embodiment: give --robot NAME ({', '.join(list_robots())}) if its joints are that robot's, or "
                '--robot FILE.json declaring it: {"name": ..., "dims": [{"name": JOINT, "kind": "joint"|"gripper"}'
                ", ...]} (docs/datasets.md)"
            )
        robot = robot_type
    if robot in list_robots():
        emb = load_embodiment(robot).to_json()
        where = f"--robot {robot}"
    elif robot.endswith(".json") or Path(robot).expanduser().exists():
        emb = _declared(Path(robot).expanduser())
        where = f"--robot {robot}"
    else:
        raise UsageError(f"--robot {robot!r}: not an SDK robot ({', '.join(list_robots())}) nor a declaration file")
    if recorded and recorded.get("name") != emb["name"]:
        raise UsageError(f"{first.root} was recorded on {recorded.get('name')!r}; {where} names {emb['name']!r}")
    return _fit(first, emb, where)


def _fit(ds, emb: dict, where: str) -> dict:
    """``emb`` with its dims in the order of the data's action names; the names must be the same set."""
    dims = {d["name"]: d for d in emb["dims"]}
    for key in ("action", "observation.state"):
        names = ds.features[key].get("names")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise InputError(f"{ds.root}: feature {key!r} names no joints ('names': {names!r}); cannot bind {where}")
        missing, extra = sorted(set(dims) - set(names)), sorted(set(names) - set(dims))
        if missing or extra or len(names) != len(dims):
            raise InputError(
                f"{ds.root}: feature {key!r} does not fit {where} ({emb['name']!r}): "
                + "; ".join(
                    x
                    for x in (
                        f"the data lacks {missing}" if missing else "",
                        f"{emb['name']!r} has no {extra}" if extra else "",
                    )
                    if x
                )
                + f" (data: {names}, robot: {list(dims)})"
            )
    names = ds.features["action"]["names"]
    return {**emb, "dims": [dims[n] for n in names]}
