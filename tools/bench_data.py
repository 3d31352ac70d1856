"""Benchmark the dataset path: recording overhead per frame, time to commit an episode, reader frames/s.

Setup: aloha2/transfer_cube with 2 cameras (cam_high, cam_left_wrist) at 128x128, scripted expert. Medians over
repeated runs; prints a markdown table (or JSON with --json) with the machine noted.

    python tools/bench_data.py [--repeats 3] [--steps 150] [--json]
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

from vla_sdk.data import layout as L  # noqa: E402
from vla_sdk.data.reader import Dataset  # noqa: E402
from vla_sdk.data.writer import DatasetWriter  # noqa: E402
from vla_sdk.sim import make  # noqa: E402

TASK, CAMS, SIZE = "aloha2/transfer_cube", ("cam_high", "cam_left_wrist"), (128, 128)


def one_run(root: Path, steps: int) -> dict:
    env = make(TASK, cameras=CAMS, image_size=SIZE)
    emb = env.embodiment
    features = L.make_features(emb.names, emb.names, list(CAMS), SIZE, int(env.control_hz))
    writer = DatasetWriter.create(root, features, int(env.control_hz), emb.name, {"task": TASK})
    # the same loop: a warm-up pass, then without and with recording; the difference is the recording overhead
    timings = {}
    for recording in (None, False, True):
        obs, _ = env.reset(seed=0)
        expert = env.make_expert()
        ep = writer.begin_episode(env.instruction, seed=0) if recording else None
        steps_now = steps if recording is not None else 20
        t = time.perf_counter()
        for _ in range(steps_now):
            action = expert.act()
            if ep is not None:
                ep.add(obs["images"], obs["state"], action)
            obs, *_ = env.step(action)
        timings[recording] = (time.perf_counter() - t) / steps_now
    t = time.perf_counter()
    ep.commit(success=None)
    commit_s = time.perf_counter() - t
    env.close()
    ds = Dataset(root)
    t = time.perf_counter()
    frames = ds.episode(0, cameras=list(CAMS))["images"]
    read_s = time.perf_counter() - t
    n = len(next(iter(frames.values())))
    return {
        "loop_ms_per_frame": 1000 * timings[False],
        "overhead_ms_per_frame": 1000 * (timings[True] - timings[False]),
        "commit_ms": 1000 * commit_s,
        "reader_frames_per_s": n / read_s,  # one frame = all cameras of one time step, decoded to uint8
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    runs = []
    for i in range(args.repeats):
        with tempfile.TemporaryDirectory() as d:
            runs.append(one_run(Path(d) / f"run{i}", args.steps))
    med = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
    machine = f"{platform.machine()}, {os.cpu_count()} cores, MUJOCO_GL={os.environ.get('MUJOCO_GL')}"
    if args.json:
        print(json.dumps({"machine": machine, "repeats": args.repeats, "steps": args.steps, "median": med}, indent=2))
        return
    print(
        f"{TASK}, cameras {', '.join(CAMS)} at {SIZE[0]} px, {args.steps}-frame episodes; {machine}; "
        f"medians of {args.repeats} runs"
    )
    print("| sim + render loop ms/frame | recording overhead ms/frame | commit an episode ms | reader frames/s |")
    print("|---|---|---|---|")
    print(
        f"| {med['loop_ms_per_frame']:.1f} | {med['overhead_ms_per_frame']:.2f} | {med['commit_ms']:.0f} "
        f"| {med['reader_frames_per_s']:.0f} |"
    )


if __name__ == "__main__":
    main()
