"""ONNX vs StableHLO artifacts of one policy: latency per action chunk on this CPU, action error, size.

    python tools/bench_onnx.py POLICY [--modes none,int8] [--calls 30] [--repeats 5] [--out DIR] [--json]

For each mode it exports the policy twice (`vla export --quantize MODE` and `... --format onnx`), loads both
artifacts from their files as `vla eval` does (``load_artifact``), and times one policy call (preprocessing + the
function + unnormalization, batch 1, one training frame): ``--repeats`` runs of ``--calls`` calls after a warm-up,
the p50 of each run, then the median of those p50s (and of the p99s). It also times the function alone (prepared
inputs). The action error is mean / max absolute difference from the StableHLO float artifact on 32 training frames
with the same seed. Prints a Markdown table and the machine (CPU model, cores, load average: the CPUs may be
shared).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")

from vla_sdk.checkpoint import read_checkpoint  # noqa: E402
from vla_sdk.export.build import export_policy  # noqa: E402
from vla_sdk.export.gate import gate_frames  # noqa: E402
from vla_sdk.export.runtime import load_artifact  # noqa: E402


def timed(fn, calls: int, repeats: int) -> dict:
    for _ in range(3):
        fn()
    p50, p99 = [], []
    for _ in range(repeats):
        ts = []
        for _ in range(calls):
            t = time.perf_counter()
            fn()
            ts.append(1000 * (time.perf_counter() - t))
        p50.append(np.percentile(ts, 50))
        p99.append(np.percentile(ts, 99))
    return {"p50": float(np.median(p50)), "p99": float(np.median(p99)), "p50_runs": [float(x) for x in p50]}


def machine() -> dict:
    from vla_sdk.doctor import cpu_name

    cpu = cpu_name()
    import jax
    import onnxruntime

    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "system": f"{platform.system()} {platform.machine()}",
        "jax": jax.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("policy", help="training run or checkpoint folder")
    ap.add_argument("--modes", default="none,int8", help="quantization modes (ONNX: none, int8)")
    ap.add_argument("--calls", type=int, default=30, help="policy calls per timed run")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs (the median of their p50s is reported)")
    ap.add_argument("--out", type=Path, help="keep the artifacts here (default: a temporary folder)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    params, meta = read_checkpoint(args.policy)
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_onnx_"))
    rows, base = [], None
    for mode in args.modes.split(","):
        for fmt in ("stablehlo", "onnx"):
            path = out / f"policy_{fmt}_{mode}.vla"
            t = time.perf_counter()
            summary, float_policy, _ = export_policy(
                params, meta, path, mode, source=args.policy, gate_count=0, latency_runs=0, format=fmt,
                platforms=("cpu",),
            )  # fmt: skip
            export_s = time.perf_counter() - t
            if base is None:
                frames = gate_frames(meta, float_policy.config, 32)[0]
            policy = load_artifact(path, seed=0)
            inputs = policy.inputs(frames[0])
            actions = np.stack([policy(f) for f in frames])
            if base is None:  # the first export: stablehlo, first mode (none)
                base = actions
            err = np.abs(actions - base)
            rows.append(
                {
                    "format": fmt,
                    "mode": mode,
                    "file_bytes": path.stat().st_size,
                    "export_s": export_s,
                    "call": timed(lambda p=policy, f=frames[0]: p(f), args.calls, args.repeats),
                    "function": timed(lambda p=policy, x=inputs: p.sample(x), args.calls, args.repeats),
                    "err_mean": float(err.mean()),
                    "err_max": float(err.max()),
                }
            )
    m = machine()
    if args.json:
        print(json.dumps({"policy": args.policy, "machine": m, "rows": rows}, indent=2))
        return
    print(f"{args.policy} on {m['cpu']} ({m['cpu_count']} cores, load average {m['load_average'][0]:.1f}), "
          f"jax {m['jax']}, onnxruntime {m['onnxruntime']}; {args.repeats} x {args.calls} calls")  # fmt: skip
    print("| format | quantize | size | call p50 / p99 (ms) | function p50 (ms) | action error mean / max | export |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['format']} | {r['mode']} | {r['file_bytes'] / 1e6:.2f} MB | {r['call']['p50']:.2f} / "
            f"{r['call']['p99']:.2f} | {r['function']['p50']:.2f} | {r['err_mean']:.1e} / {r['err_max']:.1e} | "
            f"{r['export_s']:.0f} s |"
        )


if __name__ == "__main__":
    main()
