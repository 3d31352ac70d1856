"""`vla run`: one live episode paced at the robot's control rate (real time), with progress and a video."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from vla_sdk.episode import Film, run_episode, tile
from vla_sdk.interrupt import StopRequest
from vla_sdk.policy import Policy
from vla_sdk.robot import RobotSource
from vla_sdk.robots.config import open_robot
from vla_sdk.runner import PolicyRunner, RunnerConfig
from vla_sdk.schema import IMAGE_PREFIX


def run_live(
    policy_path: str | Path | Policy,
    task: str,
    seed: int = 0,
    execution: str = RunnerConfig.execution,
    video: str | Path | None = None,
    max_seconds: float | None = None,
    log: Callable[[str], None] = print,
    execute: int | None = None,
    robot: str = "sim",
) -> dict:
    """One paced episode. ``policy_path``: a run/checkpoint folder or artifact, or an already loaded policy.
    ``execution``/``execute``: as `vla eval` (same defaults, resolved by the same runner), so `vla run` does what
    `vla eval` measured. The episode stops early, with ``stopped`` saying why, on an unsafe observation or action
    or a failed inference (``ended`` says how it ended: ``vla_sdk.episode.REASONS``; Ctrl-C: ``"interrupted"``).
    ``robot``: a name or robot config file (:mod:`vla_sdk.robots.config`; default the simulator of ``task``)."""
    config = RunnerConfig(execution=execution, execute=execute)  # validates both before anything loads
    from vla_sdk.evaluation import check_compatible, task_robot

    policy = Policy.load(policy_path, robot=task_robot(task)) if isinstance(policy_path, str | Path) else policy_path

    check_compatible(policy, task)
    with open_robot(robot, task=task, cameras=policy.cameras, image_size=policy.image_size, seed=seed) as setup:
        return _run(policy, setup.robot, task, seed, config, video, max_seconds, log) | {
            "policy": str(policy_path) if isinstance(policy_path, str | Path) else type(policy_path).__name__,
            "robot": robot,
        }


def _run(policy, robot, task, seed, config, video, max_seconds, log) -> dict:
    hz = robot.control_hz
    runner = PolicyRunner(policy, robot.embodiment, hz, config)
    # a robot's own frame() (the simulator's, a twin's) where it has one, else its cameras' images as observed
    frame = getattr(robot, "frame", None)
    film = None
    if video:
        film = Film(hz, (lambda obs: frame()) if frame else (lambda obs: tile(list(obs["images"].values()))), video)
    every = max(1, int(hz))  # a progress line per second

    # compile before the robot connects (a hardware bus watchdog would trip during a compile) and before the clock
    # starts, for every strategy (receding infers in its first act): on an observation of the robot's own schema
    policy(_blank_observation(robot))

    def start(obs):
        policy.reset(seed)  # the episode's sampling noise starts from its seed
        runner.reset(robot.observe())  # async: the first chunk is computed before the clock starts

    source = RobotSource(robot, keep_sent=True)

    states: list[np.ndarray] = []  # the state each sent action was clamped around

    def on_frame(t, obs, action):
        states.append(np.asarray(obs["state"], dtype=np.float64))
        if film:
            film(t, obs, action)
        if t and t % every == 0:
            log(f"t={t / hz:5.1f} s  step {t}  success={source.success}")

    try:
        with StopRequest() as stop:  # Ctrl-C: end the episode at the next tick (a second one: at once)
            result = run_episode(
                source,
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
        "seed": seed,
        "execution": config.execution,
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
        **_sent_summary(robot.embodiment, states, source.sent),
    }


def _blank_observation(robot) -> dict:
    """An observation of ``robot``'s schema (black images, the home pose): what compiles a policy for it."""
    images = {
        key.removeprefix(IMAGE_PREFIX): np.zeros(f["shape"], np.uint8)
        for key, f in robot.observation_features.items()
        if key.startswith(IMAGE_PREFIX)
    }
    state = np.asarray(robot.embodiment.home, np.float32)
    return {"images": images, "state": state, "instruction": getattr(robot, "instruction", "") or "go"}


def _sent_summary(embodiment, states: list[np.ndarray], sent: list[np.ndarray]) -> dict:
    """What the robot was sent (after its own clamps): whether every action was within the embodiment's limits, and
    the largest distance of a sent joint (rad) and gripper (opening) goal from the state observed before it."""
    if not sent:
        return {"within_limits": None, "max_joint_step": None, "max_gripper_step": None}
    a, q = np.stack(sent), np.stack(states[: len(sent)])
    inside = bool(np.all((a >= embodiment.low - 1e-6) & (a <= embodiment.high + 1e-6)))
    step = np.abs(a - q).max(axis=0)
    grip = np.zeros(len(step), bool)
    grip[list(embodiment.gripper_indices)] = True
    joint = float(step[~grip].max()) if (~grip).any() else None
    gripper = float(step[grip].max()) if grip.any() else None
    return {"within_limits": inside, "max_joint_step": joint, "max_gripper_step": gripper}
