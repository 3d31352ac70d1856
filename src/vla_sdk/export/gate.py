"""The accuracy gate of `vla export`: the exported policy vs the float checkpoint policy.

Offline (always): chunks of both policies on frames of the training data (``meta["train_config"]["data"]``, frames
spread evenly over all episodes), with the same sampling noise (both reset to the same seed, called in the same
order); mean and max absolute difference in raw action units. Closed loop (``--check-task``): both policies run the
same episodes (same seeds) of a simulated task; success rates with 95 % Wilson intervals and their change.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def gate_frames(meta: dict, cfg, count: int = 32) -> tuple[list[dict], str]:
    """``count`` raw observations from the training datasets of the meta's robot (or synthetic ones when none can
    be read); ``meta``: one robot's view (:func:`vla_sdk.multi_robot.for_robot`)."""
    cameras = tuple(meta.get("cameras") or cfg.cameras)  # the robot's camera slots
    paths = [p for p in (meta.get("train_config") or {}).get("data", []) if Path(p).is_dir()]
    if paths:
        from vla_sdk.data.reader import Dataset

        datasets = [Dataset(p) for p in paths]
        if len(meta.get("trained_robots") or []) > 1:  # a multi-robot run's data: only this robot's
            datasets = [d for d in datasets if d.features["action"].get("names") == list(meta["action_names"])]
        episodes = [(d, k, int(e["length"])) for d in datasets for k, e in enumerate(d.episodes)]
        total = sum(n for _, _, n in episodes)
        if total:
            starts = np.cumsum([0] + [n for _, _, n in episodes])
            picks = np.unique(np.linspace(0, total - 1, min(count, total)).round().astype(int))
            frames, loaded = [], {}
            for g in picks:
                i = int(np.searchsorted(starts, g, side="right") - 1)
                ds, k, _ = episodes[i]
                if i not in loaded:
                    loaded = {i: ds.episode(k, cameras=list(cameras))}  # frames are in order: one episode open
                ep, t = loaded[i], int(g - starts[i])
                frames.append(
                    {
                        "images": {c: ep["images"][c][t] for c in cameras},
                        "state": ep["observation.state"][t],
                        "instruction": ep["task"],
                    }
                )
            return frames, f"{len(frames)} frames of the training data ({', '.join(paths)})"
    rng = np.random.default_rng(0)
    stats = meta["stats"]["observation.state"]
    mean, std = np.asarray(stats["mean"], np.float32), np.asarray(stats["std"], np.float32)
    frames = [
        {
            "images": {c: rng.integers(0, 256, (*cfg.image_size, 3), np.uint8) for c in cameras},
            "state": (mean + std * rng.standard_normal(mean.shape)).astype(np.float32),
            "instruction": "do the task",
        }
        for _ in range(count)
    ]
    return frames, "synthetic frames (the training data named in the checkpoint was not found)"


def compare(reference, candidate, frames: list[dict], seed: int = 0) -> dict:
    """Absolute action differences (raw units) of two policies over the same frames and sampling noise."""
    reference.reset(seed)
    candidate.reset(seed)
    diffs = np.stack([np.abs(reference(f) - candidate(f)) for f in frames])  # [N, T, A_robot]
    reference.reset(seed)
    candidate.reset(seed)
    names = candidate.transform.action_names
    return {
        "frames": len(frames),
        "seed": seed,
        "mean_abs": float(diffs.mean()),
        "max_abs": float(diffs.max()),
        "per_joint_mean_abs": dict(zip(names, diffs.mean((0, 1)).tolist(), strict=True)),
    }


def check_task(
    reference, candidate, task: str, episodes: int, source: str, seed: int = 100_000, execute: int | None = None
) -> dict:
    """Success rates of both policies on the same episodes of ``task`` (one process, receding execution of
    ``execute`` actions per chunk, default: as the checkpoint was trained, else half the chunk)."""
    from vla_sdk.evaluation import EvalConfig, run_episodes, wilson_interval
    from vla_sdk.runner import resolve_execute

    cfg = EvalConfig(policy=source, task=task, episodes=episodes, seed=seed, execute=execute)
    seeds = [seed + i for i in range(episodes)]
    out = {"task": task, "episodes": episodes, "seeds": [seeds[0], seeds[-1]]}
    out["execute"] = resolve_execute(reference, execute)[0]
    outcomes = {}
    for name, policy in (("float", reference), ("quantized", candidate)):
        results, latencies = run_episodes(policy, cfg, seeds)
        k = sum(r["success"] for r in results)
        outcomes[name] = [r["success"] for r in results]
        out[name] = {
            "successes": k,
            "success_rate": k / episodes,
            "ci95": list(wilson_interval(k, episodes)),
            "latency_p50_ms": float(np.percentile(1000 * np.asarray(latencies), 50)) if latencies else None,
        }
    out["change"] = out["quantized"]["success_rate"] - out["float"]["success_rate"]
    out["same_outcome"] = int(sum(a == b for a, b in zip(outcomes["float"], outcomes["quantized"], strict=True)))
    return out
