"""SIGKILL `vla train` at random moments and resume it each time: the resumed run's loss curve must equal an
uninterrupted run's with the same seed.

Records a tiny aloha2/transfer_cube dataset (unless --data), trains the reference run, then starts the same run,
SIGKILLs it --kills times at seeded random moments (after a random number of new metric lines, plus a random
fraction of a second; some land during start-up, before the first checkpoint), resuming with --resume each time,
and lets the last start finish. The curves are compared per step: metrics.jsonl of a killed run holds the steps
after its last checkpoint twice (they are recomputed on resume); the last record of each step wins.

    python tools/kill_train.py [--kills 20] [--seed 0] [--steps 60] [--save-every 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def losses(run: Path) -> dict[int, float]:
    """step -> loss, the last record of each step winning (a resumed run recomputes the steps after its
    last checkpoint)."""
    out = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # the line a SIGKILL cut short
            continue
        if "loss" in rec:
            out[rec["step"]] = rec["loss"]
    return out


def _lines(path: Path) -> int:
    return path.read_text().count("\n") if path.exists() else 0


def train_cmd(data: Path, run: Path, cache: Path, args) -> list[str]:
    return [
        sys.executable, "-m", "vla_sdk.cli", "train", "--preset", "vla-tiny", "--data", str(data), "--out", str(run),
        "--cache-dir", str(cache), "--steps", str(args.steps), "--save-every", str(args.save_every),
        "--log-every", "1", "--batch-size", "8", "--seed", str(args.seed),
    ]  # fmt: skip


def kill_and_resume(cmd: list[str], run: Path, kills: int, rng: np.random.Generator, save_every: int) -> list[dict]:
    """Start ``cmd``, SIGKILL it ``kills`` times (resuming with --resume), then let it finish; what each kill hit."""
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    events, metrics = [], run / "metrics.jsonl"
    for k in range(kills + 1):
        resume = ["--resume"] if (run / "config.json").exists() else []
        proc = subprocess.Popen([*cmd, *resume], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if k == kills:
            _, err = proc.communicate()
            if proc.returncode != 0:
                raise SystemExit(f"the last resume failed ({proc.returncode}):\n{err}")
            break
        wait_lines, extra = int(rng.integers(0, 2 * save_every + 1)), float(rng.uniform(0, 0.5))
        start_lines = _lines(metrics)
        while proc.poll() is None and _lines(metrics) < start_lines + wait_lines:
            time.sleep(0.01)
        time.sleep(extra)
        if proc.poll() is not None:
            _, err = proc.communicate()
            raise SystemExit(f"start {k} ended before its kill ({proc.returncode}); use more --steps:\n{err}")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        folder = run / "checkpoints"
        names = [p.name for p in folder.iterdir()] if folder.exists() else []
        ckpts = [int(n) for n in names if n.isdigit()]
        seen = losses(run) if metrics.exists() else {}
        events.append({"kill": k + 1, "after_lines": wait_lines, "last_step_logged": max(seen, default=0),
                       "last_checkpoint": max(ckpts, default=None),
                       "during_checkpoint_write": any("tmp" in n for n in names)})  # fmt: skip
    return events


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0, help="the training seed and the kill moments' seed")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--save-every", type=int, default=3)
    ap.add_argument("--data", type=Path, help="dataset folder (default: record 2 tiny transfer_cube episodes)")
    ap.add_argument("--work", type=Path, help="folder for the runs (default: a temporary one)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="kill_train_"))
    cache = work / "frames"
    data = args.data
    if data is None:
        from vla_sdk.data.record import RecordConfig, record

        data = work / "demos"
        if not data.exists():
            cfg = RecordConfig("aloha2/transfer_cube", data, episodes=2, cameras=("cam_high", "cam_left_wrist"),
                               image_size=(32, 32))  # fmt: skip
            record(cfg, progress=False, log=lambda m: None)
    t0 = time.perf_counter()
    ref, killed = work / "reference", work / "killed"
    subprocess.run(train_cmd(data, ref, cache, args), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t_ref = time.perf_counter() - t0
    events = kill_and_resume(train_cmd(data, killed, cache, args), killed, args.kills, np.random.default_rng(args.seed),
                             args.save_every)  # fmt: skip
    a, b = losses(ref), losses(killed)
    rows = [json.loads(x) for x in (killed / "metrics.jsonl").read_text().splitlines() if x.strip().startswith("{")]
    steps = sorted(a)
    diff = np.abs(np.array([b.get(s, np.nan) for s in steps]) - np.array([a[s] for s in steps]))
    report = {
        "kills": len(events),
        "steps": args.steps,
        "save_every": args.save_every,
        "missing_steps": sorted(set(a) - set(b)),
        "recomputed_step_records": sum("loss" in r for r in rows) - len(b),
        "kills_before_first_checkpoint": sum(e["last_checkpoint"] is None for e in events),
        "kills_between_checkpoints": sum(
            e["last_checkpoint"] is not None and e["last_step_logged"] > e["last_checkpoint"] for e in events
        ),
        "kills_during_checkpoint_write": sum(e["during_checkpoint_write"] for e in events),
        "max_abs_loss_diff": float(np.nanmax(diff)) if len(diff) else None,
        "identical_steps": int(np.sum(diff == 0)),
        "compared_steps": len(steps),
        "reference_seconds": round(t_ref, 1),
        "seconds": round(time.perf_counter() - t0, 1),
        "work": str(work),
        "events": events,
    }
    ok = not report["missing_steps"] and report["identical_steps"] == len(steps)
    report["ok"] = ok
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print({k: v for k, v in report.items() if k != "events"})
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
