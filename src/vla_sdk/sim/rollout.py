"""Roll out a policy in a task for several seeded episodes, with an optional video of the first ones."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vla_sdk.episode import Film, GymSource, run_episode
from vla_sdk.errors import UsageError
from vla_sdk.registry import lookup
from vla_sdk.sim.env import VlaEnv

# A policy factory is called once per episode, after reset, and returns obs -> action [A].
PolicyFactory = Callable[[VlaEnv], Callable[[dict], np.ndarray]]


def scripted_policy(env: VlaEnv) -> Callable[[dict], np.ndarray]:
    """The task's scripted expert (privileged simulator state)."""
    expert = env.make_expert()
    return lambda obs: expert.act()


def hold_policy(env: VlaEnv) -> Callable[[dict], np.ndarray]:
    """Holds the robot at its home pose: a do-nothing baseline that should never succeed."""
    home = np.array(env.embodiment.home)
    return lambda obs: home


SIM_POLICIES: dict[str, PolicyFactory] = {"scripted": scripted_policy, "hold": hold_policy}


@dataclass
class RolloutResult:
    seed: int
    success: bool
    steps: int  # control steps taken
    instruction: str


def rollout(env: VlaEnv, policy: PolicyFactory, seed: int, film: Film | None = None) -> RolloutResult:
    """One episode from ``env.reset(seed=seed)`` until success or the time limit; ``film``: every stride-th instant,
    the first and (on the stride) the last included."""
    act: list[Callable[[dict], np.ndarray]] = []  # the factory needs the env after its reset
    result = run_episode(
        GymSource(env, seed),
        lambda obs: act[0](obs),
        hz=env.control_hz,
        on_start=lambda obs: act.append(policy(env)),
        on_frame=film,
    )
    if film:
        film.last(result)
    return RolloutResult(seed=seed, success=bool(result.success), steps=result.steps, instruction=env.instruction)


def run_episodes(
    task: str,
    policy: str = "scripted",
    episodes: int = 1,
    seed: int = 0,
    video: str | Path | None = None,
    video_episodes: int = 1,
    video_size: tuple[int, int] = (180, 240),
    progress: bool = True,
) -> dict:
    """Run ``episodes`` episodes with seeds ``seed, seed+1, ...``; returns a JSON-ready summary."""
    if episodes < 1:
        raise UsageError(f"--episodes must be >= 1, got {episodes}")
    factory = lookup(SIM_POLICIES, "policy", policy)
    env = VlaEnv(task, cameras=[], render_size=video_size)  # scripted/hold policies read no images
    film = Film(env.control_hz, lambda obs: env.render_frame(), path=video) if video else None
    results: list[RolloutResult] = []
    t0 = time.perf_counter()
    bar = tqdm(range(episodes), desc=f"{task} [{policy}]", unit="ep", disable=not progress, leave=False)
    try:
        for i in bar:
            results.append(rollout(env, factory, seed + i, film if i < video_episodes else None))
            bar.set_postfix(success=f"{np.mean([r.success for r in results]):.2f}")
    finally:
        if film:
            film.close()
        env.close()
    successes = sum(r.success for r in results)
    return {
        "task": task,
        "policy": policy,
        "episodes": episodes,
        "seed": seed,
        "successes": successes,
        "success_rate": successes / episodes,
        "mean_steps": float(np.mean([r.steps for r in results])),
        "seconds": round(time.perf_counter() - t0, 3),
        "video": str(video) if video else None,
        "per_episode": [asdict(r) for r in results],
    }
