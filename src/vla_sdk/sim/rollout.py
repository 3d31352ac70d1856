"""Roll out a policy in a task for several seeded episodes, with an optional video of the first ones."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vla_sdk.errors import UsageError
from vla_sdk.registry import lookup
from vla_sdk.sim.env import VlaEnv
from vla_sdk.video import VideoWriter

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
class EpisodeResult:
    seed: int
    success: bool
    steps: int  # control steps taken
    instruction: str


def rollout(
    env: VlaEnv, policy: PolicyFactory, seed: int, on_frame: Callable[[], None] | None = None, frame_stride: int = 1
) -> EpisodeResult:
    """One episode from ``env.reset(seed=seed)`` until success or the time limit."""
    obs, info = env.reset(seed=seed)
    act = policy(env)
    success, steps = False, 0
    if on_frame:
        on_frame()
    while True:
        obs, _, terminated, truncated, info = env.step(act(obs))
        steps += 1
        if on_frame and steps % frame_stride == 0:
            on_frame()
        if terminated or truncated:
            success = bool(info["success"])
            break
    return EpisodeResult(seed=seed, success=success, steps=steps, instruction=env.instruction)


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
    stride = max(1, round(env.control_hz / 25))  # videos at <= 25 fps
    writer = VideoWriter(video, fps=env.control_hz / stride) if video else None
    results: list[EpisodeResult] = []
    t0 = time.perf_counter()
    bar = tqdm(range(episodes), desc=f"{task} [{policy}]", unit="ep", disable=not progress, leave=False)
    try:
        for i in bar:
            on_frame = (lambda: writer.write(env.render_frame())) if writer and i < video_episodes else None
            results.append(rollout(env, factory, seed + i, on_frame, stride))
            bar.set_postfix(success=f"{np.mean([r.success for r in results]):.2f}")
    finally:
        if writer:
            writer.close()
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
