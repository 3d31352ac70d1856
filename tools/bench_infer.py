"""Latency of one action-chunk inference (batch 1): raw observation -> transforms -> sample_actions -> actions.

vla-s with 2 cameras at 128 px by default; random weights (latency does not depend on their values). Prints p50/p99
over repeated calls after warm-up, with the machine noted.

    python tools/bench_infer.py [--preset vla-s] [--calls 50] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import jax
import numpy as np
from flax import nnx

from vla_sdk.model import VLA, get_preset, param_count
from vla_sdk.policy import Policy

CAMERAS = ("cam_external", "cam_wrist")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="vla-s")
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    dtype = args.dtype or ("float32" if jax.default_backend() == "cpu" else "bfloat16")
    cfg = get_preset(args.preset).replace(cameras=CAMERAS, dtype=dtype)
    model = VLA(cfg, rngs=nnx.Rngs(0))
    a = 8  # an FR3-sized robot
    stats = {k: {"mean": [0.0] * a, "std": [1.0] * a} for k in ("observation.state", "action")}
    meta = {
        "model_config": cfg.to_dict(),
        "action_names": [f"a{i}" for i in range(a)],
        "stats": stats,
        "embodiment": {"name": "fr3"},
    }
    policy = Policy(nnx.to_pure_dict(nnx.state(model, nnx.Param)), meta)
    rng = np.random.default_rng(0)
    obs = {
        "images": {c: rng.integers(0, 256, (*cfg.image_size, 3), np.uint8) for c in CAMERAS},
        "state": rng.normal(size=a),
        "instruction": "put the red block in the bin",
    }
    for _ in range(3):
        policy(obs)  # compile + warm up
    times = []
    for _ in range(args.calls):
        t = time.perf_counter()
        policy(obs)
        times.append(time.perf_counter() - t)
    ms = 1000 * np.array(times)
    res = {
        "preset": args.preset,
        "parameters": param_count(model),
        "dtype": dtype,
        "cameras": len(CAMERAS),
        "image_px": list(cfg.image_size),
        "horizon": cfg.horizon,
        "flow_steps": cfg.flow_steps,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "calls": args.calls,
        "device": f"{jax.devices()[0].platform}:{jax.devices()[0].device_kind}",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(
            f"{res['preset']} ({res['parameters'] / 1e6:.1f}M params, {dtype}, 2 cameras x "
            f"{cfg.image_size[0]}x{cfg.image_size[1]} px, "
            f"chunk {cfg.horizon}, {cfg.flow_steps} flow steps) on {res['device']} ({res['machine']}): "
            f"p50 {res['p50_ms']:.1f} ms, p99 {res['p99_ms']:.1f} ms over {args.calls} calls"
        )


if __name__ == "__main__":
    main()
