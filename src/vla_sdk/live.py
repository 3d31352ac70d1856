"""`vla run`: one live episode paced at the robot's control rate (real time), with progress and a video."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vla_sdk.episode import Film, run_episode
from vla_sdk.interrupt import StopRequest
from vla_sdk.policy import Policy
from vla_sdk.robot import RobotSource, SimRobot
from vla_sdk.runner import PolicyRunner, RunnerConfig


def run_live(
    policy_path: str | Path | Policy,
    task: str,
    seed: int = 0,
    execution: str = RunnerConfig.execution,
    video: str | Path | None = None,
    max_seconds: float | None = None,
    log: Callable[[str], None] = print,
    execute: int | None = None,
) -> dict:
    """One paced episode. ``policy_path``: a run/checkpoint folder or artifact, or an already loaded policy.
    ``execution``/``execute``: as `vla eval` (same defaults, resolved by the same runner), so `vla run` does what
    `vla eval` measured. The episode stops early, with ``stopped`` saying why, on an unsafe observation or action
    or a failed inference (``ended`` says how it ended: ``vla_sdk.episode.REASONS``; Ctrl-C: ``"interrupted"``)."""
    config = RunnerConfig(execution=execution, execute=execute)  # validates both before anything loads
    policy = Policy.load(policy_path) if isinstance(policy_path, str | Path) else policy_path
    from vla_sdk.evaluation import check_compatible

    check_compatible(policy, task)
    robot = SimRobot(task, policy.cameras, policy.image_size, seed)
    hz = robot.control_hz
    runner = PolicyRunner(policy, robot.embodiment, hz, config)
    film = Film(hz, lambda obs: robot.frame(), path=video) if video else None
    every = max(1, int(hz))  # a progress line per second

    def start(obs):
        policy(obs)  # compile before the clock starts, for every strategy (receding infers in its first act)
        policy.reset(seed)  # then the episode's sampling noise starts from its seed
        runner.reset(robot.observe())  # async: the first chunk is computed before the clock starts

    def on_frame(t, obs, action):
        if film:
            film(t, obs, action)
        if t and t % every == 0:
            log(f"t={t / hz:5.1f} s  step {t}  success={robot.status()['success']}")

    try:
        with StopRequest() as stop:  # Ctrl-C: end the episode at the next tick (a second one: at once)
            result = run_episode(
                RobotSource(robot),
                runner.act,
                hz=hz,
                max_seconds=max_seconds,
                paced=True,
                on_start=start,
                on_frame=on_frame,
                should_stop=lambda: stop.requested,
            )
        if film:
            film.last(result)
        if result.stopped:
            log(f"stopped: {result.stopped}")
    finally:
        runner.close()
        robot.disconnect()
        if film:
            film.close()
    return {
        "task": task,
        "policy": str(policy_path) if isinstance(policy_path, str | Path) else type(policy_path).__name__,
        "seed": seed,
        "execution": execution,
        "execute": runner.execute,
        "execute_from": runner.execute_from,
        "steps": result.steps,
        "success": result.success,
        "ended": result.reason,  # one of vla_sdk.episode.REASONS
        "stopped": result.stopped,
        "late_steps": result.late_steps,
        "period_ms": result.period_ms(),  # achieved control period, p50/p99 (the target is 1000 / hz)
        "seconds": round(result.seconds, 2),
        "video": str(video) if video else None,
    }
