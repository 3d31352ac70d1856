"""Latency of one action-chunk inference: ``python -m vla_sdk.model.bench [preset] [--calls N] [--batch B]``.

Builds the preset with random weights, jits ``sample_actions`` (split/merge + ``jax.jit``), warms it up and reports
the median and 90th percentile wall time of ``--calls`` calls on fake inputs (batch 1 by default).
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np
from flax import nnx

from vla_sdk.model.batch import fake_obs
from vla_sdk.model.config import ModelConfig, get_preset
from vla_sdk.model.vla import VLA, jit_sample_actions, param_count


def benchmark_sample(config: ModelConfig, calls: int = 20, batch_size: int = 1, num_steps: int | None = None) -> dict:
    """Compile time and per-call latency (ms) of a jitted ``sample_actions``."""
    model = VLA(config, rngs=nnx.Rngs(0))
    fn = jit_sample_actions(model, num_steps)
    obs = fake_obs(config, batch_size, 0)
    start = time.perf_counter()
    jax.block_until_ready(fn(obs, jax.random.key(0)))
    compile_s = time.perf_counter() - start
    for i in range(3):  # warm-up
        jax.block_until_ready(fn(obs, jax.random.key(i)))
    times = []
    for i in range(calls):
        start = time.perf_counter()
        jax.block_until_ready(fn(obs, jax.random.key(i)))
        times.append(1000 * (time.perf_counter() - start))
    return {
        "params": param_count(model),
        "batch_size": batch_size,
        "flow_steps": config.flow_steps if num_steps is None else num_steps,
        "compile_s": round(compile_s, 2),
        "p50_ms": round(float(np.median(times)), 1),
        "p90_ms": round(float(np.percentile(times, 90)), 1),
        "device": str(jax.devices()[0]),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset", nargs="?", default="vla-s")
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=None, help="flow steps (default: the preset's)")
    parser.add_argument("--head", choices=("flow", "l1"), default=None)
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default=None)
    args = parser.parse_args(argv)
    config = get_preset(args.preset)
    changes = {k: v for k, v in (("head", args.head), ("dtype", args.dtype)) if v is not None}
    config = config.replace(**changes) if changes else config
    result = benchmark_sample(config, args.calls, args.batch, args.steps)
    print(json.dumps({"preset": args.preset, **changes, **result}))


if __name__ == "__main__":
    main()
