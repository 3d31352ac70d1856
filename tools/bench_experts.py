"""Success of every task's scripted expert over many seeds (the expert table in docs/robots-and-tasks.md).

python tools/bench_experts.py [--episodes 100] [--seed 0] [--workers 2] [--json]
python tools/bench_experts.py --action-noise 0.02     # under the DART noise `vla record --action-noise` adds
"""

from __future__ import annotations

import argparse
import json
import os
from concurrent.futures import ProcessPoolExecutor

os.environ.setdefault("MUJOCO_GL", "egl")


def _noisy(task: str, episodes: int, seed: int, std: float) -> dict:
    """The expert's actions executed with the noise of ``vla record --action-noise std`` (same seeds, same draws)."""
    import time

    from vla_sdk.data.record import noisy_expert_episode
    from vla_sdk.sim.env import VlaEnv

    env, t0, rows = VlaEnv(task, cameras=[]), time.perf_counter(), []
    for s in range(seed, seed + episodes):
        rows.append({"seed": s, "success": noisy_expert_episode(env, s, std), "steps": env.steps})
    env.close()
    ok = sum(r["success"] for r in rows)
    return {
        "task": task,
        "episodes": episodes,
        "successes": ok,
        "success_rate": ok / episodes,
        "mean_steps": sum(r["steps"] for r in rows) / episodes,
        "seconds": time.perf_counter() - t0,
        "per_episode": rows,
    }


def _run(args: tuple[str, int, int, float]) -> dict:
    from vla_sdk.sim.rollout import run_episodes

    task, episodes, seed, noise = args
    if noise:
        s = _noisy(task, episodes, seed, noise)
    else:
        s = run_episodes(task, "scripted", episodes=episodes, seed=seed, progress=False)
    failed = [e["seed"] for e in s["per_episode"] if not e["success"]]
    return {k: s[k] for k in ("task", "episodes", "successes", "success_rate", "mean_steps", "seconds")} | {
        "failed_seeds": failed
    }


def main() -> None:
    from vla_sdk.sim import list_tasks

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tasks", nargs="*", default=None)
    ap.add_argument("--action-noise", type=float, default=0.0, help="DART noise std, rad, as vla record adds")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    tasks = args.tasks or list_tasks()
    with ProcessPoolExecutor(args.workers) as pool:
        rows = list(pool.map(_run, [(t, args.episodes, args.seed, args.action_noise) for t in tasks]))
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    noise = f", action noise {args.action_noise} rad" if args.action_noise else ""
    seeds = f"seeds {args.seed}..{args.seed + args.episodes - 1}{noise}"
    print(f"| task | expert success ({seeds}) | mean steps | failed seeds |")
    print("|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['task']} | {r['successes']}/{r['episodes']} ({r['success_rate']:.0%}) | {r['mean_steps']:.0f} "
            f"| {', '.join(map(str, r['failed_seeds'])) or '-'} |"
        )


if __name__ == "__main__":
    main()
