"""The quantization table: for one trained policy, each export mode's artifact size, latency, action error against
the float policy and closed-loop success rate.

    python tools/bench_export.py runs/tc --task aloha2/transfer_cube --episodes 50 [--seed S] [--execute K]
        [--workers 2] [--out DIR] [--json]

For every mode in none/bf16/int8/int4 it runs `vla export` (size, p50/p99 latency of one policy call measured at
export on this machine, mean/max absolute action error against the float checkpoint on 32 training frames) and
`vla eval` of the artifact on the same seeds (success rate with its 95 % Wilson interval). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

from vla_sdk.evaluation import EvalConfig, evaluate  # noqa: E402
from vla_sdk.export.build import export_checkpoint  # noqa: E402
from vla_sdk.export.quantize import MODES  # noqa: E402


def row(mode: str, exp: dict, ev: dict | None, float_bytes: int) -> dict:
    acc, lat = exp["accuracy"] or {}, exp["latency_ms"] or {}
    out = {
        "mode": mode,
        "file_bytes": exp["file_bytes"],
        "size_vs_float": exp["file_bytes"] / float_bytes,
        "p50_ms": lat.get("p50"),
        "p99_ms": lat.get("p99"),
        "action_err_mean": acc.get("mean_abs"),
        "action_err_max": acc.get("max_abs"),
    }
    if ev:
        out.update(successes=ev["successes"], episodes=ev["episodes"], success_rate=ev["success_rate"], ci95=ev["ci95"])
    return out


def table(rows: list[dict]) -> str:
    lines = [
        "| export | artifact size | vs float32 | p50 / p99 latency (ms) | action error mean / max | success |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        ok = (
            f"{r['successes']}/{r['episodes']} = {100 * r['success_rate']:.0f} % "
            f"(95 % CI {100 * r['ci95'][0]:.0f}-{100 * r['ci95'][1]:.0f})"
            if "success_rate" in r
            else "-"
        )
        lines.append(
            f"| {r['mode']} | {r['file_bytes'] / 1e6:.2f} MB | {100 * r['size_vs_float']:.1f} % | "
            f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f} | {r['action_err_mean']:.1e} / {r['action_err_max']:.1e} | {ok} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("policy", help="training run or checkpoint folder")
    ap.add_argument("--task", help="ROBOT/TASK for the success column (omit: no evaluation)")
    ap.add_argument("--episodes", type=int, default=50)
    ap.add_argument("--seed", type=int, default=100_000, help="first evaluation seed, as `vla eval --seed`")
    ap.add_argument("--execute", type=int, help="actions executed per chunk, as `vla eval --execute` (default: half)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    ap.add_argument("--out", type=Path, help="folder for the artifacts (default: a temporary one)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    modes = ["none", *[m for m in args.modes if m != "none"]]  # float first: the size reference
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        rows, float_bytes = [], None
        for mode in modes:
            path = out / f"policy_{mode}.vla"
            exp = export_checkpoint(args.policy, path, mode)
            float_bytes = float_bytes or exp["file_bytes"]
            ev = None
            if args.task:
                ev = evaluate(
                    EvalConfig(
                        str(path),
                        args.task,
                        episodes=args.episodes,
                        seed=args.seed,
                        workers=args.workers,
                        execute=args.execute,
                    )
                )
            rows.append(row(mode, exp, ev, float_bytes))
            print(json.dumps(rows[-1]), flush=True)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}"
    if args.json:
        print(json.dumps({"machine": machine, "policy": args.policy, "task": args.task, "rows": rows}, indent=2))
    else:
        print(
            f"machine: {machine}; policy {args.policy}; task {args.task}, {args.episodes} episodes from seed "
            f"{args.seed}, execute {args.execute or 'half the chunk'}"
        )
        print(table(rows))


if __name__ == "__main__":
    main()
