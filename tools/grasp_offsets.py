"""Does a policy look, or replay? Where its gripper first closes, relative to the object, on seen and unseen layouts.

A policy that localises the object closes its gripper on it wherever it lies; one that memorised its training
layouts closes where the demonstrations did, at about the same step, wherever the object is. This runs a trained
policy in its task (real MuJoCo, the runner `vla eval` uses) on the seeds its demonstrations were recorded with
(read from --data) and on unseen ones, and reports for each the step at which the gripper command first moves
more than half its range from where it started, and the object's centre at that instant in the gripper site's
frame (mm): near zero means the grasp was aimed at it.

    python tools/grasp_offsets.py runs/fr3_ext --task fr3/pick_place --data demos/fr3_ext --body cube
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402

from vla_sdk.data.reader import Dataset  # noqa: E402
from vla_sdk.episode import GymSource, run_episode  # noqa: E402
from vla_sdk.evaluation import check_compatible, task_robot  # noqa: E402
from vla_sdk.model.config import image_hw  # noqa: E402
from vla_sdk.policy import Policy  # noqa: E402
from vla_sdk.runner import PolicyRunner, RunnerConfig  # noqa: E402
from vla_sdk.sim.env import VlaEnv  # noqa: E402


def gripper_dim(embodiment, name: str | None) -> int:
    """The index of the gripper dimension ``name``; None: the robot's only gripper."""
    grippers = [embodiment.names[i] for i in embodiment.gripper_indices]
    if name is None:
        if len(grippers) != 1:
            raise SystemExit(f"--gripper: {embodiment.name} has grippers {grippers}; name the one that grasps")
        name = grippers[0]
    if name not in grippers:
        raise SystemExit(f"--gripper: {name!r} is not a gripper of {embodiment.name}; its grippers: {grippers}")
    return embodiment.names.index(name)


def first_close(env: VlaEnv, act, on_start, seed: int, dim: int, site: str, body: str) -> dict:
    """One episode of ``act`` (obs -> action; ``on_start(obs)`` after the reset); the step and the body's offset
    (mm, in the site's frame) when the gripper command first moves more than half its range."""
    p, emb = env.physics, env.embodiment
    half = 0.5 * (emb.high[dim] - emb.low[dim])
    seen: dict = {}

    def on_frame(t, obs, action):
        start = seen.setdefault("start", float(action[dim]))
        if "step" not in seen and abs(action[dim] - start) > half:
            seen["step"] = t
            seen["offset_mm"] = (1000 * p.site_xmat(site).T @ (p.body_pos(body) - p.site_pos(site))).tolist()

    res = run_episode(GymSource(env, seed), act, hz=env.control_hz, on_start=on_start, on_frame=on_frame)
    offset = seen.get("offset_mm")
    return {
        "seed": seed,
        "success": bool(res.success),
        "close_step": seen.get("step"),
        "offset_mm": None if offset is None else [round(v, 1) for v in offset],
        "distance_mm": None if offset is None else round(float(np.linalg.norm(offset)), 1),
    }


def _has(read, name: str) -> bool:
    try:
        read(name)
    except KeyError:
        return False
    return True


def summary(rows: list[dict]) -> dict:
    closed = [r for r in rows if r["distance_mm"] is not None]
    med = lambda key: float(np.median([r[key] for r in closed])) if closed else None  # noqa: E731
    return {
        "episodes": len(rows),
        "successes": sum(r["success"] for r in rows),
        "closed": len(closed),
        "median_distance_mm": med("distance_mm"),
        "median_close_step": med("close_step"),
        "close_step_spread": (float(np.ptp([r["close_step"] for r in closed])) if closed else None),
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("policy", help="run folder or checkpoint")
    ap.add_argument("--task", required=True, help="ROBOT/TASK to run it in")
    ap.add_argument("--body", default="cube", help="the object's body in the task's scene (default cube)")
    ap.add_argument("--data", help="the policy's demonstrations: the seen seeds are the first --seen of them")
    ap.add_argument("--seen", type=int, default=5, help="seen (training) seeds to run (default 5)")
    ap.add_argument("--unseen-seed", type=int, default=1000, help="first unseen seed (default 1000)")
    ap.add_argument("--unseen", type=int, default=5, help="unseen seeds to run (default 5)")
    ap.add_argument("--gripper", help="gripper dimension that grasps (default: the robot's only one)")
    ap.add_argument("--site", help="site the offset is measured in (default: the gripper's name, else tcp)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args(argv)
    policy = Policy.load(args.policy, robot=task_robot(args.task))
    check_compatible(policy, args.task)
    env = VlaEnv(args.task, cameras=policy.cameras, image_size=image_hw(policy.image_size))
    emb = env.embodiment
    dim = gripper_dim(emb, args.gripper)
    site = args.site or (emb.names[dim] if _has(env.physics.site_pos, emb.names[dim]) else "tcp")
    for what, name, read in (("--site", site, env.physics.site_pos), ("--body", args.body, env.physics.body_pos)):
        if not _has(read, name):
            raise SystemExit(f"{what}: {args.task} has no {what[2:]} named {name!r}")
    seen = []
    if args.data:
        seen = [e["seed"] for e in Dataset(args.data).episodes if e.get("seed") is not None][: args.seen]
        if not seen:
            raise SystemExit(f"--data {args.data}: its episodes record no seeds (not recorded by `vla record`)")
    runner = PolicyRunner(policy, emb, env.control_hz, RunnerConfig())
    groups = {"seen": seen, "unseen": list(range(args.unseen_seed, args.unseen_seed + args.unseen))}
    out = {"policy": args.policy, "task": args.task, "body": args.body, "site": site}

    def episode(seed: int) -> dict:
        def start(obs):
            policy.reset(seed)
            runner.reset(obs)

        try:
            return first_close(env, runner.act, start, seed, dim, site, args.body)
        finally:
            runner.close()

    for label, seeds in groups.items():
        rows = [episode(s) for s in seeds]
        out[label] = {"summary": summary(rows), "episodes": rows}
        if not args.json and rows:
            for r in rows:
                print(
                    f"{label:6s} seed {r['seed']:5d}: {'success' if r['success'] else 'failure'}, "
                    + (
                        f"gripper closes at step {r['close_step']}, {r['distance_mm']:.0f} mm from the {args.body} "
                        f"(site frame {r['offset_mm']})"
                        if r["close_step"] is not None
                        else "the gripper never closes"
                    )
                )
            s = out[label]["summary"]
            print(
                f"{label}: {s['successes']}/{s['episodes']} successes; median {s['median_distance_mm']} mm from the "
                f"{args.body} at step {s['median_close_step']} (steps spread over {s['close_step_spread']})"
            )
    env.close()
    if args.json:
        print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
