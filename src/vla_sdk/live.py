"""`vla run`: one live episode paced at the robot's control rate (real time), with progress and a video."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from vla_sdk.policy import Policy
from vla_sdk.robot import SimRobot
from vla_sdk.runner import STOPS, PolicyRunner, RunnerConfig
from vla_sdk.video import VideoWriter


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
    or a failed inference."""
    config = RunnerConfig(execution=execution, execute=execute)  # validates both before anything loads
    policy = Policy.load(policy_path) if isinstance(policy_path, str | Path) else policy_path
    from vla_sdk.evaluation import check_compatible

    check_compatible(policy, task)
    robot = SimRobot(task, policy.cameras, policy.image_size, seed)
    runner = PolicyRunner(policy, robot.embodiment, robot.control_hz, config)
    period = 1.0 / robot.control_hz
    stride = max(1, round(robot.control_hz / 25))
    writer = VideoWriter(video, fps=robot.control_hz / stride) if video else None
    robot.connect()
    policy(robot.observe())  # compile before the clock starts, for every strategy (receding infers in its first act)
    policy.reset(seed)  # then the episode's sampling noise starts from its seed
    steps, late, reason = 0, 0, None
    t0 = time.perf_counter()
    try:
        runner.reset(robot.observe())  # async: the first chunk is computed before the clock starts
        t0 = next_tick = time.perf_counter()
        while not robot.status()["done"] and (max_seconds is None or time.perf_counter() - t0 < max_seconds):
            robot.send(runner.act(robot.observe()))
            steps += 1
            if writer and steps % stride == 0:
                writer.write(robot.frame())
            if steps % int(robot.control_hz) == 0:
                log(f"t={steps * period:5.1f} s  step {steps}  success={robot.status()['success']}")
            next_tick += period
            sleep = next_tick - time.perf_counter()
            if sleep > 0:
                time.sleep(sleep)
            else:
                late += 1
                next_tick = time.perf_counter()  # do not rush to catch up
    except STOPS as e:
        reason = str(e)
        log(f"stopped: {reason}")
    finally:
        runner.close()
        robot.disconnect()
        if writer:
            writer.close()
    return {
        "task": task,
        "policy": str(policy_path) if isinstance(policy_path, str | Path) else type(policy_path).__name__,
        "seed": seed,
        "execution": execution,
        "execute": runner.execute,
        "execute_from": runner.execute_from,
        "steps": steps,
        "success": robot.status()["success"],
        "stopped": reason,
        "late_steps": late,
        "seconds": round(time.perf_counter() - t0, 2),
        "video": str(video) if video else None,
    }
