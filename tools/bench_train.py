"""Training throughput: samples/s and peak memory of the jitted train step (and MFU on a GPU).

vla-s at batch 64 with 2 cameras at 128 px by default, augmentation on, synthetic batches (the loader is benchmarked
by tools/bench_data.py). Medians over repeated timed windows after compilation.

    python tools/bench_train.py [--preset vla-s] [--batch-size 64] [--steps 5] [--repeats 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time

import jax
import numpy as np
from flax import nnx

from vla_sdk.model import VLA, fake_batch, get_preset, param_count
from vla_sdk.train.config import TrainConfig, parse_model_fields
from vla_sdk.train.step import Stepper, make_mesh

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense bf16 peak, for MFU


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="vla-s")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5, help="steps per timed window")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cameras", nargs="+", default=["cam_external", "cam_wrist"], help="camera names (one per input)")
    ap.add_argument("--model", nargs="*", default=[], metavar="FIELD=VALUE", help="change preset fields")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    dtype = "float32" if jax.default_backend() == "cpu" else "bfloat16"  # --model dtype=... overrides it
    fields = parse_model_fields(args.model)
    cfg = get_preset(args.preset).replace(cameras=tuple(args.cameras), **{"dtype": dtype, **fields})
    model = VLA(cfg, rngs=nnx.Rngs(0))
    tcfg = TrainConfig(data=("synthetic",), out="unused", preset=args.preset, model=fields, batch_size=args.batch_size)
    stepper = Stepper(model, tcfg, 10_000, make_mesh())
    state = stepper.init_state(nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    fb = fake_batch(cfg, args.batch_size, rng=0)
    batch = {k: jax.tree.map(np.asarray, v) for k, v in fb.__dict__.items()}
    batch["images"] = {c: ((v + 1) * 127.5).astype(np.uint8) for c, v in batch["images"].items()}  # as the loader
    flops = None
    try:
        lowered = stepper._train.lower(state, stepper.shard_batch(batch))
        flops = float(lowered.compile().cost_analysis()["flops"])
    except Exception:  # noqa: BLE001 - cost analysis is optional
        pass
    state, m = stepper.train_step(state, batch)
    jax.block_until_ready(m)
    rates = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        for _ in range(args.steps):
            state, m = stepper.train_step(state, batch)
        jax.block_until_ready(m)
        rates.append(args.steps * args.batch_size / (time.perf_counter() - t))
    sps = float(np.median(rates))
    dev = jax.devices()[0]
    if dev.platform == "gpu":
        peak_mem = dev.memory_stats().get("peak_bytes_in_use", 0)
    else:
        peak_mem = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # process peak RSS
    mfu = None
    if flops and dev.platform == "gpu":
        peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in dev.device_kind), None)
        mfu = flops * (sps / args.batch_size) / (peak * 1e12) if peak else None
    res = {
        "preset": args.preset,
        "model": args.model,
        "cameras": list(cfg.cameras),
        "image_size": list(cfg.image_size),
        "parameters": param_count(model),
        "batch_size": args.batch_size,
        "dtype": cfg.dtype,
        "samples_per_s": sps,
        "peak_memory_gb": peak_mem / 1e9,
        "flops_per_step": flops,
        "mfu": mfu,
        "device": f"{dev.platform}:{dev.device_kind}",
        "devices": len(jax.devices()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "repeats": args.repeats,
    }
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(
            f"{args.preset} ({res['parameters'] / 1e6:.1f}M params, {cfg.dtype}) batch {args.batch_size}, "
            f"{len(cfg.cameras)} camera(s) x "
            f"{cfg.image_size[0]}x{cfg.image_size[1]} px on {res['device']} x{res['devices']} ({res['machine']}): "
            f"{sps:.1f} samples/s, "
            f"peak memory {res['peak_memory_gb']:.2f} GB" + (f", MFU {mfu:.1%}" if mfu else "")
        )


if __name__ == "__main__":
    main()
