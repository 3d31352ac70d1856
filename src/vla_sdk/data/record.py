"""`vla record`: drive a task with a teleoperation source and write each episode to a dataset.

Sources (``--teleop``):
  scripted  the task's scripted expert (privileged simulator state)
  replay    re-executes the actions of an existing dataset's episodes from their seeds (a determinism check)
  keyboard  a person drives the end effector from a terminal (see :mod:`vla_sdk.data.keyboard`)

Each episode stores its instruction (the LeRobot task), seed, and a success label from the task's predicate: success
at any step, as LeRobot counts it (a replay runs on through all its recorded actions after succeeding). One frame =
the observation before a step and the action taken in it. Every source's episodes (keyboard's too) run through the
one episode loop, :func:`vla_sdk.episode.run_episode`. :class:`RecordConfig` lives in :mod:`vla_sdk.data.record_config`
(no mujoco: the CLI reads its defaults) and is re-exported here.

``--action-noise S`` (scripted only) records DART-style demonstrations: the robot executes the expert's action plus
slowly varying Gaussian noise on the arm joints (std S rad, correlation time ``noise_tau`` s; grippers are left
alone) while the dataset keeps the expert's clean action. The expert's joint targets are absolute, so every
recorded action then shows how to get back onto the demonstration from a pose the arm was pushed to — the
corrections a policy needs once its own small errors take it off the recorded path.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from tqdm import tqdm

from vla_sdk.data import layout as L
from vla_sdk.data.record_config import RecordConfig  # re-exported: callers import it from here
from vla_sdk.data.writer import DatasetWriter, EpisodeWriter, repair_meta
from vla_sdk.episode import EpisodeResult, GymSource, run_episode
from vla_sdk.errors import InputError, UsageError
from vla_sdk.interrupt import StopRequest
from vla_sdk.sim.env import VlaEnv


class ActionNoise:
    """AR(1) noise on the non-gripper dims: stationary std ``std``, correlation time ``tau`` seconds."""

    def __init__(self, embodiment, std: float, tau: float, dt: float, seed: int):
        self.std, self.rho = std, float(np.exp(-dt / tau))
        self.mask = np.ones(embodiment.action_dim)
        self.mask[list(embodiment.gripper_indices)] = 0.0
        self.rng = np.random.default_rng([seed, 0xDA27])
        self.value = self.rng.normal(0.0, std, embodiment.action_dim) * self.mask

    def __call__(self, action: np.ndarray) -> np.ndarray:
        """The action to execute; advances the noise by one control step."""
        out = action + self.value
        step = self.rng.normal(0.0, self.std * np.sqrt(1 - self.rho**2), self.value.shape)
        self.value = self.rho * self.value + step * self.mask
        return out


def noisy_expert_episode(env: VlaEnv, seed: int, std: float, tau: float = RecordConfig.noise_tau) -> bool:
    """The task's scripted expert from ``seed``, executed with the noise `vla record --action-noise std` adds (same
    draws), until success or the time limit, recording nothing; whether it succeeded (``env.steps``: how long)."""
    env.reset(seed=seed)
    expert = env.make_expert()
    noise = ActionNoise(env.embodiment, std, tau, 1.0 / env.control_hz, seed)
    success = truncated = False
    while not (success or truncated):
        _, _, success, truncated, _ = env.step(noise(expert.act()))
    return bool(success)


def open_dataset(
    cfg: RecordConfig,
    env: VlaEnv | None,
    *,
    embodiment=None,
    cameras: tuple[str, ...] | None = None,
    image_size: tuple[int, int] | None = None,
    fps: float | None = None,
) -> DatasetWriter:
    """Create the dataset for ``env`` (or reopen it with --resume, checking it matches). ``env``: the simulator (or
    a robot's twin) whose object positions are recorded; the keywords override what it says (the cameras a twin
    renders, a real robot's embodiment, cameras and rate, with ``env`` None: no object positions)."""
    emb = embodiment or env.embodiment
    cameras = tuple(env.cameras if cameras is None else cameras)
    image_size = tuple(image_size or env.image_size)
    fps = int(round(fps or env.control_hz))
    spec_name = env.spec_name if env is not None else cfg.task
    objects = env.physics.object_names() if env is not None else None
    features = L.make_features(emb.names, emb.names, list(cameras), image_size, fps, env_names=objects)
    if cfg.resume:
        repair_meta(cfg.out)  # a commit killed where no atomic swap exists can leave meta/ set aside
    if cfg.resume and (cfg.out / L.INFO_PATH).exists():
        writer = DatasetWriter.open(cfg.out, ignore_checksums=cfg.ignore_checksums)
        for key in ("observation.state", "action", *[L.camera_key(c) for c in cameras]):
            have = writer.features.get(key, {}).get("shape")
            if have != features[key]["shape"]:
                raise InputError(
                    f"{cfg.out}: feature {key!r} has shape {have}, this recording makes "
                    f"{features[key]['shape']} (same --task, --cameras and --image-size as before?)"
                )
        if writer.fps != fps or writer.info["vla"].get("task") != spec_name:
            raise InputError(
                f"{cfg.out} was recorded from {writer.info['vla'].get('task')} at {writer.fps} fps; "
                f"cannot resume it with {spec_name} at {fps} fps"
            )
        return writer
    vla = {"task": spec_name, "robot": emb.name, "embodiment": emb.to_json(), "teleop": cfg.teleop}
    if cfg.robot != "sim":
        vla["recorded_on"] = cfg.robot
    return DatasetWriter.create(cfg.out, features, fps, emb.name, vla, force=cfg.force)


def object_positions(writer: DatasetWriter, env: VlaEnv) -> np.ndarray | None:
    """This frame's object positions for a dataset that records ``observation.environment_state`` (datasets
    recorded before it existed do not, and are resumed without it)."""
    return env.physics.object_positions() if L.ENV_STATE in writer.features else None


def record_episode(
    env: VlaEnv,
    writer: DatasetWriter,
    seed: int,
    extra: dict,
    actions: np.ndarray | None = None,
    noise: ActionNoise | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[EpisodeWriter, EpisodeResult, list[np.ndarray]]:
    """One episode from ``seed`` through :func:`vla_sdk.episode.run_episode`: the task's scripted expert (built after
    the reset) until success or the time limit, or (``actions``) every recorded action re-executed, whatever the env
    says about being done. Each frame is the observation before the step, the action (the clean one: ``noise`` only
    perturbs what is executed) and the object positions at that instant. Returns the episode (still open: the caller
    commits or discards it), the loop's result (success: at any step) and the states recorded."""
    ep: list[EpisodeWriter] = []
    expert: list = []
    states: list[np.ndarray] = []
    replay = None if actions is None else iter(actions)

    def start(obs: dict) -> None:
        ep.append(writer.begin_episode(env.instruction, seed=seed, extra=extra))
        if replay is None:
            expert.append(env.make_expert())

    def act(obs: dict) -> np.ndarray:
        return expert[0].act() if replay is None else np.asarray(next(replay), np.float64)

    def frame(t: int, obs: dict, action: np.ndarray) -> None:
        ep[0].add(obs.get("images", {}), obs["state"], action, object_positions(writer, env))
        states.append(obs["state"])

    result = run_episode(
        GymSource(env, seed, until_done=actions is None, execute=noise),
        act,
        hz=env.control_hz,
        max_steps=env.max_steps if actions is None else len(actions),
        on_start=start,
        on_frame=frame,
        should_stop=should_stop,
    )
    return ep[0], result, states


def record(cfg: RecordConfig, progress: bool = True, log: Callable[[str], None] = print) -> dict:
    """Record until the dataset holds ``cfg.episodes`` episodes; returns a JSON-ready summary."""
    env = VlaEnv(cfg.task, cameras=cfg.cameras, image_size=cfg.image_size, control_hz=cfg.fps)
    writer = open_dataset(cfg, env)
    source = None
    if cfg.teleop == "replay":
        from vla_sdk.data.reader import Dataset

        source = Dataset(cfg.source)
        if source.info["vla"].get("task") != env.spec_name:
            raise UsageError(f"--source {cfg.source} holds {source.info['vla'].get('task')}, not {env.spec_name}")
    start = writer.num_episodes
    if start >= cfg.episodes:
        log(f"{cfg.out} already holds {start} episodes (>= {cfg.episodes}); nothing to record")
    results, replay_errors = [], []
    interrupted = StopRequest().install()  # Ctrl-C: discard the episode in progress, keep the committed ones
    bar = tqdm(total=cfg.episodes, initial=start, desc=f"record {cfg.task}", unit="ep", disable=not progress)
    attempt = start
    t0 = time.perf_counter()
    try:
        while writer.num_episodes < cfg.episodes and not interrupted.requested:
            k = writer.num_episodes
            if cfg.teleop == "replay":
                if k >= source.num_episodes:
                    log(f"--source has only {source.num_episodes} episodes")
                    break
                src = source.episode(k, decode_video=False)
                seed, actions = src["seed"], src["action"]
            else:
                seed, actions = cfg.seed + attempt, None
            attempt += 1
            extra = {"teleop": cfg.teleop, **({"action_noise": cfg.action_noise} if cfg.action_noise else {})}
            noise = None
            if cfg.action_noise and cfg.teleop == "scripted":
                noise = ActionNoise(env.embodiment, cfg.action_noise, cfg.noise_tau, 1.0 / env.control_hz, seed)
            ep, result, states = record_episode(env, writer, seed, extra, actions, noise, lambda: interrupted.requested)
            success = bool(result.success)
            if interrupted.requested:
                ep.discard()
                break
            if cfg.only_success and not success:
                ep.discard()
                log(f"seed {seed}: expert failed; episode discarded (--only-success)")
                continue
            idx = ep.commit(success=success)
            if source is not None:
                err = float(np.max(np.abs(np.stack(states) - src["observation.state"])))
                replay_errors.append(err)
                if err > cfg.replay_tolerance:
                    log(
                        f"episode {idx}: replayed states differ from the source by up to {err:.2e} "
                        f"(tolerance {cfg.replay_tolerance:g})"
                    )
            results.append({"episode_index": idx, "seed": seed, "success": success, "frames": len(ep)})
            bar.update(1)
    finally:
        bar.close()
        interrupted.restore()
        env.close()
    summary = summarize(cfg, writer, results, t0, interrupted.requested)
    if replay_errors:
        summary["replay_max_state_error"] = max(replay_errors)
    return summary


def summarize(cfg: RecordConfig, writer: DatasetWriter, results: list[dict], t0: float, interrupted: bool) -> dict:
    """The JSON summary every recording source returns."""
    return {
        "dataset": str(cfg.out),
        "task": cfg.task,
        "teleop": cfg.teleop,
        "episodes": writer.num_episodes,
        "recorded": len(results),
        "successes": sum(r["success"] for r in results),
        "seconds": round(time.perf_counter() - t0, 3),
        "interrupted": interrupted,
        "per_episode": results,
    }
