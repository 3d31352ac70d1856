"""The `vla` command line: argument parsing only; the work happens in the modules it calls."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXAMPLES = {
    "doctor": "example:\n  vla doctor          # JAX, MuJoCo, headless rendering, video encoding\n  vla doctor --json",
    "sim list": "example:\n  vla sim list\n  vla sim list --robot fr3 --json",
    "sim run": (
        "examples:\n"
        "  vla sim run aloha2/transfer_cube                      # one scripted episode, video in out/\n"
        "  vla sim run fr3/pick_place --episodes 20 --json --no-video\n"
        "  vla sim run aloha2/insertion --seed 100 --episodes 3 --video-episodes 3 --video ins.mp4"
    ),
}


def _parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(
        prog="vla",
        description="vla-sdk: record demonstrations, fine-tune compact VLA policies, evaluate them in MuJoCo.",
        formatter_class=fmt,
        epilog="run `vla COMMAND --help` for a command's options and an example",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    doc = sub.add_parser(
        "doctor",
        help="check the install: JAX devices, MuJoCo, headless rendering, video codec",
        epilog=EXAMPLES["doctor"],
        formatter_class=fmt,
    )
    doc.add_argument("--json", action="store_true", help="print the checks as a JSON object")

    sim = sub.add_parser(
        "sim",
        help="simulated robots and tasks",
        formatter_class=fmt,
        epilog=EXAMPLES["sim list"] + "\n" + EXAMPLES["sim run"],
    )
    simsub = sim.add_subparsers(dest="sim_command", metavar="SUBCOMMAND", required=True)
    sl = simsub.add_parser("list", help="list robots and tasks", epilog=EXAMPLES["sim list"], formatter_class=fmt)
    sl.add_argument("--robot", help="only this robot's tasks")
    sl.add_argument("--json", action="store_true", help="print a JSON list")

    sr = simsub.add_parser(
        "run", help="roll out a policy in a task and write a video", epilog=EXAMPLES["sim run"], formatter_class=fmt
    )
    sr.add_argument("task", metavar="ROBOT/TASK", help="e.g. aloha2/transfer_cube (see `vla sim list`)")
    sr.add_argument("--policy", default="scripted", help="scripted (the task's expert) or hold (do nothing)")
    sr.add_argument("--episodes", type=int, default=1, help="number of episodes (default 1)")
    sr.add_argument("--seed", type=int, default=0, help="seed of the first episode; episode i uses seed+i")
    sr.add_argument("--video", type=Path, help="mp4 path (default out/<robot>_<task>.mp4)")
    sr.add_argument("--no-video", action="store_true", help="write no video (fastest)")
    sr.add_argument("--video-episodes", type=int, default=1, help="how many of the first episodes to film")
    sr.add_argument(
        "--video-size",
        type=int,
        nargs=2,
        default=(180, 240),
        metavar=("H", "W"),
        help="per-camera video frame size (default 180 240); cameras are tiled",
    )
    sr.add_argument("--json", action="store_true", help="print a JSON summary (success_rate, episodes, ...)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "doctor":
            return _doctor(args)
        if args.command == "sim":
            return _sim_list(args) if args.sim_command == "list" else _sim_run(args)
    except (KeyError, ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"vla: error: {e}", file=sys.stderr)
        return 2
    return 0


def _doctor(args) -> int:
    from vla_sdk.doctor import run_checks

    checks = run_checks()
    if args.json:
        print(json.dumps({"ok": all(c.ok for c in checks), "checks": [vars(c) for c in checks]}, indent=2))
    else:
        for c in checks:
            print(f"[{'ok' if c.ok else 'FAIL':>4}] {c.name:<10} {c.detail}")
            if not c.ok:
                print(f"       {'':<10} fix: {c.fix}")
    return 0 if all(c.ok for c in checks) else 1


def _sim_list(args) -> int:
    from vla_sdk.embodiment import list_robots, load_embodiment
    from vla_sdk.sim import TASKS, list_tasks

    if args.robot is not None and args.robot not in list_robots():
        from vla_sdk.registry import UnknownNameError

        raise UnknownNameError("robot", args.robot, list_robots())
    names = list_tasks(args.robot)
    rows = [
        {
            "task": n,
            "robot": TASKS[n].robot,
            "language_conditioned": TASKS[n].language_conditioned,
            "max_steps": TASKS[n].max_steps,
            "summary": TASKS[n].summary,
        }
        for n in names
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for robot in sorted({r["robot"] for r in rows}):
        emb = load_embodiment(robot)
        print(f"{robot}: {emb.action_dim}-D actions at {emb.control_hz:g} Hz, cameras {', '.join(emb.cameras)}")
        for r in (r for r in rows if r["robot"] == robot):
            lang = " [language]" if r["language_conditioned"] else ""
            print(f"  {r['task']:<24} {r['summary']}{lang}")
    return 0


def _sim_run(args) -> int:
    from vla_sdk.sim import get_task
    from vla_sdk.sim.rollout import run_episodes

    task = get_task(args.task)  # fail fast on a bad name, before any work
    video = None if args.no_video else (args.video or Path("out") / f"{task.robot}_{task.name}.mp4")
    summary = run_episodes(
        args.task,
        policy=args.policy,
        episodes=args.episodes,
        seed=args.seed,
        video=video,
        video_episodes=args.video_episodes,
        video_size=tuple(args.video_size),
        progress=sys.stderr.isatty(),
    )
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"{summary['task']} [{summary['policy']}]: {summary['successes']}/{summary['episodes']} succeeded "
            f"(success rate {summary['success_rate']:.2f}) in {summary['seconds']:.1f} s"
        )
        if video:
            print(f"video: {video}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
