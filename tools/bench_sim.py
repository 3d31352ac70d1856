"""Benchmark the simulator: physics-only control steps/s, scripted-expert steps/s, and render cost per camera frame.

Medians over repeated runs; prints a markdown table (or JSON with --json) with the machine noted.

    python tools/bench_sim.py [--repeats 5] [--steps 200] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from vla_sdk.embodiment import load_embodiment  # noqa: E402
from vla_sdk.sim import make  # noqa: E402
from vla_sdk.sim.render import CameraRenderer  # noqa: E402

TASKS = {"aloha2": "aloha2/transfer_cube", "fr3": "fr3/pick_place"}


def physics_steps_per_s(task: str, steps: int) -> float:
    env = make(task, cameras=[])
    env.reset(seed=0)
    home = np.array(env.embodiment.home)
    t = time.perf_counter()
    for _ in range(steps):
        env.step(home)
    return steps / (time.perf_counter() - t)


def expert_steps_per_s(task: str, steps: int) -> float:
    env = make(task, cameras=[])
    env.reset(seed=0)
    expert = env.make_expert()
    t = time.perf_counter()
    n = 0
    for _ in range(steps):
        _, _, term, trunc, _ = env.step(expert.act())
        n += 1
        if term or trunc:
            break
    return n / (time.perf_counter() - t)


def render_ms(task: str, camera: str, px: int, frames: int) -> float:
    env = make(task, cameras=[])
    env.reset(seed=0)
    r = CameraRenderer(env.physics.model, (camera,), (px, px))
    r.render(env.physics.data)  # warm up
    t = time.perf_counter()
    for _ in range(frames):
        r.render(env.physics.data)
    r.close()
    return 1000 * (time.perf_counter() - t) / frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = []
    for robot, task in TASKS.items():
        emb = load_embodiment(robot)
        med = lambda f: float(np.median([f() for _ in range(args.repeats)]))  # noqa: E731
        row = {
            "robot": robot,
            "task": task,
            "control_hz": emb.control_hz,
            "physics_steps_per_s": med(lambda: physics_steps_per_s(task, args.steps)),  # noqa: B023
            "expert_steps_per_s": med(lambda: expert_steps_per_s(task, args.steps)),  # noqa: B023
        }
        for px in (96, 128):
            per_cam = [med(lambda c=c: render_ms(task, c, px, args.frames)) for c in emb.cameras]  # noqa: B023
            row[f"render_ms_{px}"] = float(np.median(per_cam))
        rows.append(row)
    machine = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "mujoco": mujoco.__version__,
        "MUJOCO_GL": os.environ.get("MUJOCO_GL"),
        "repeats": args.repeats,
    }
    if args.json:
        print(json.dumps({"machine": machine, "results": rows}, indent=2))
        return
    print(
        f"machine: {machine['machine']}; mujoco {machine['mujoco']}; MUJOCO_GL={machine['MUJOCO_GL']}; "
        f"medians of {args.repeats} runs"
    )
    print("| robot | control Hz | physics steps/s | expert steps/s (IK) | render ms 96 px | render ms 128 px |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['robot']} | {r['control_hz']:g} | {r['physics_steps_per_s']:.0f} | {r['expert_steps_per_s']:.0f} "
            f"| {r['render_ms_96']:.1f} | {r['render_ms_128']:.1f} |"
        )


if __name__ == "__main__":
    main()
