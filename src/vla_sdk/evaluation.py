"""Closed-loop evaluation of a policy in a simulated task: success rate with a 95 % Wilson interval.

Execution is receding-horizon: the first ``execute`` actions of each predicted chunk run, then the policy replans.
"""

from __future__ import annotations

import math
import time

import numpy as np

from vla_sdk.embodiment import load_embodiment
from vla_sdk.policy import Policy
from vla_sdk.sim.env import VlaEnv
from vla_sdk.sim.tasks import get_task


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a binomial proportion."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def check_compatible(policy: Policy, task: str) -> None:
    """A clear error before any episode when the policy cannot drive this task's robot."""
    robot = get_task(task).robot
    emb = load_embodiment(robot)
    if policy.robot and policy.robot != robot:
        raise ValueError(f"the policy was trained for robot {policy.robot!r}; {task} is a {robot!r} task")
    missing = sorted(set(policy.cameras) - set(emb.cameras))
    if missing:
        raise ValueError(f"the policy needs camera(s) {missing}; {task} provides {list(emb.cameras)}")


def evaluate(policy: Policy, task: str, episodes: int, seed: int = 100_000, execute: int | None = None) -> dict:
    check_compatible(policy, task)
    env = VlaEnv(task, cameras=policy.cameras, image_size=(policy.image_size, policy.image_size))
    check_compatible(policy, env)
    execute = execute or max(1, policy.horizon // 2)
    results, latencies = [], []
    t0 = time.perf_counter()
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        success, steps, queue = False, 0, []
        while True:
            if not queue:
                t = time.perf_counter()
                queue = list(policy(obs)[:execute])
                latencies.append(time.perf_counter() - t)
            obs, _, terminated, truncated, info = env.step(queue.pop(0))
            steps += 1
            if terminated or truncated:
                success = bool(info["success"])
                break
        results.append({"seed": seed + i, "success": success, "steps": steps})
    env.close()
    k = sum(r["success"] for r in results)
    lo, hi = wilson_interval(k, episodes)
    return {
        "task": task,
        "episodes": episodes,
        "successes": k,
        "success_rate": k / episodes,
        "ci95": [lo, hi],
        "latency_ms_p50": 1000 * float(np.median(latencies)),
        "seconds": round(time.perf_counter() - t0, 2),
        "per_episode": results,
    }
