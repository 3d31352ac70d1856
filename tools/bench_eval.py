"""Evaluation throughput: episodes per minute for one task with 1 and 2 worker processes.

Uses a policy checkpoint (default: trains a vla-tiny policy for a few steps on 1 recorded episode, in a temp
folder, so the benchmark needs nothing but the repo). Medians over repeats.

    python tools/bench_eval.py [--policy RUN] [--task fr3/pick_place] [--episodes 6] [--repeats 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402

from vla_sdk.evaluation import EvalConfig, evaluate  # noqa: E402

CAMERAS = {"fr3": ("cam_external", "cam_wrist"), "aloha2": ("cam_high", "cam_left_wrist")}


def tiny_policy(task: str, root: Path) -> str:
    from vla_sdk.data.record import RecordConfig, record
    from vla_sdk.train.config import TrainConfig
    from vla_sdk.train.loop import train

    record(
        RecordConfig(task, root / "demos", episodes=1, cameras=CAMERAS[task.split("/")[0]], image_size=(32, 32)),
        progress=False,
        log=lambda m: None,
    )
    train(
        TrainConfig(
            data=(str(root / "demos"),),
            out=str(root / "run"),
            preset="vla-tiny",
            steps=4,
            batch_size=4,
            save_every=4,
            cache_dir=str(root / "cache"),
        ),
        progress=False,
        log=lambda m: None,
    )
    return str(root / "run")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy")
    ap.add_argument("--task", default="fr3/pick_place")
    ap.add_argument("--episodes", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        policy = args.policy or tiny_policy(args.task, Path(d))
        rows = {}
        for workers in (1, 2):
            rates = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                out = evaluate(EvalConfig(policy=policy, task=args.task, episodes=args.episodes, workers=workers))
                rates.append(60 * out["episodes"] / (time.perf_counter() - t))
            rows[workers] = float(np.median(rates))
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    if args.json:
        print(
            json.dumps(
                {"task": args.task, "episodes": args.episodes, "episodes_per_min": rows, "machine": machine}, indent=2
            )
        )
        return
    print(
        f"{args.task}, {args.episodes} episodes per run, policy {'given' if args.policy else 'vla-tiny'}; "
        f"{machine}; medians of {args.repeats}"
    )
    print("| workers | episodes/min |")
    print("|---|---|")
    for w, r in rows.items():
        print(f"| {w} | {r:.1f} |")


if __name__ == "__main__":
    main()
