"""`vla eval`: closed-loop evaluation in simulation (ours or a mapped third-party gymnasium env), and offline replay.

Success rate with a 95 % Wilson interval, per-episode success/length/seed/stop reason/final state, inference latency
percentiles, videos of the first episodes and of failures (our tasks: the rendered cameras; a mapped env: its
observation's camera images, tiled). Episodes run in parallel worker processes; the same seeds give the same result
(the policy's sampling noise is seeded per episode).
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from vla_sdk.data.layout import ENV_STATE
from vla_sdk.embodiment import load_embodiment
from vla_sdk.episode import Film, GymSource, run_episode, tile
from vla_sdk.errors import InputError, UsageError
from vla_sdk.eval_config import EvalConfig  # re-exported: callers import it from here
from vla_sdk.model.config import image_hw
from vla_sdk.policy import Policy
from vla_sdk.runner import PolicyRunner, RunnerConfig, resolve_execute


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a binomial proportion."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def task_robot(task: str | None) -> str | None:
    """The robot of a ROBOT/TASK name (None: no task, e.g. a mapped third-party env)."""
    if task is None:
        return None
    from vla_sdk.sim.tasks import get_task

    return get_task(task).robot


def check_compatible(policy: Policy, task: str) -> None:
    """A clear error before any episode when the policy cannot drive this task's robot."""
    from vla_sdk.sim.tasks import get_task

    robot = get_task(task).robot
    emb = load_embodiment(robot)
    if policy.robot and policy.robot != robot:
        raise InputError(f"the policy was trained for robot {policy.robot!r}; {task} is a {robot!r} task")
    missing = sorted(set(policy.cameras) - set(emb.cameras))
    if missing:
        raise InputError(f"the policy needs camera(s) {missing}; {task} provides {list(emb.cameras)}")


def _make_env(cfg: EvalConfig, policy: Policy):
    if cfg.task is not None:
        from vla_sdk.sim.env import VlaEnv

        check_compatible(policy, cfg.task)
        env = VlaEnv(
            cfg.task,
            cameras=policy.cameras,
            image_size=image_hw(policy.image_size),
            render_size=cfg.video_size,
            variables=cfg.variables,
            instruction=cfg.instruction,
        )
        if cfg.max_steps:
            env.max_steps = cfg.max_steps
        return env, env.embodiment, env.control_hz
    from vla_sdk.envmap import MappedEnv, load_mapping

    mapping = load_mapping(cfg.env_map)
    env = MappedEnv({**mapping, "max_steps": cfg.max_steps} if cfg.max_steps else mapping)
    env.check(policy.cameras, policy.transform.robot_dim)
    emb = load_embodiment(policy.robot) if policy.robot else None
    if emb is None:
        raise InputError("the policy's checkpoint names no robot; cannot apply joint limits")
    return env, emb, float(env.mapping.get("control_hz", emb.control_hz))


def _episode(env, runner: PolicyRunner, policy: Policy, seed: int, filmed: bool) -> tuple[dict, Film | None]:
    """One episode. Our tasks: success is the step's ``info["success"]`` (the env terminates on it). A mapped env:
    success counts at any step (as LeRobot counts ``is_success``); the episode runs until the env terminates or
    truncates or the mapping's ``max_steps``, or ends at the first success when the mapping says
    ``"end_on_success": true``. Frames (when filmed, kept in the returned :class:`Film`): our rendered cameras, or the
    mapped observation's images, tiled."""
    from vla_sdk.sim.env import VlaEnv

    hz = 1 / runner.dt
    if isinstance(env, VlaEnv):
        source, max_steps, grab = GymSource(env, seed), None, lambda obs: env.render_frame()
    else:
        source = GymSource(env, seed, success=env.success, end_on_success=env.end_on_success)
        max_steps, grab = env.max_steps, lambda obs: tile([obs["images"][c] for c in env.cameras])
    film = Film(hz, grab) if filmed else None
    calls = len(runner.latencies)

    def start(obs):
        policy.reset(seed)
        runner.reset(obs)

    try:
        res = run_episode(source, runner.act, hz=hz, max_steps=max_steps, on_start=start, on_frame=film)
    finally:
        runner.close()
    inferences = len(runner.latencies) - calls
    result = {"seed": seed, "success": bool(res.success), "steps": res.steps, "inferences": inferences}
    result["stopped"] = res.stopped
    result["final_state"] = [round(float(x), 6) for x in res.obs["state"]]  # where the robot ended up
    return result, film


def _run_seeds(args: tuple[EvalConfig, list[int]]) -> tuple[list[dict], list[float]]:
    cfg, seeds = args
    import os

    os.environ.setdefault("MUJOCO_GL", "egl")
    return run_episodes(Policy.load(cfg.policy, robot=task_robot(cfg.task)), cfg, seeds)


def run_episodes(policy: Policy, cfg: EvalConfig, seeds: list[int]) -> tuple[list[dict], list[float]]:
    """Episodes ``seeds`` of ``cfg``'s task or mapped env with an already loaded ``policy``, in this process:
    (per-episode results, inference latencies in s). :func:`evaluate` runs this in each worker; `vla export
    --check-task` runs it for the float and the exported policy."""
    env, emb, hz = _make_env(cfg, policy)
    delay = cfg.delay_steps if cfg.execution == "async" else None
    runner = PolicyRunner(
        policy, emb, hz, RunnerConfig(execution=cfg.execution, execute=cfg.execute, delay_steps=delay)
    )
    obs, _ = env.reset(seed=seeds[0])
    policy(obs)  # compile before any latency is measured (each episode resets the policy's sampling noise)
    results, failures_filmed = [], 0
    for seed in seeds:
        first = seed - cfg.seed < cfg.video_first
        filmed = bool(cfg.video_dir) and (first or failures_filmed < cfg.max_failure_videos)
        res, film = _episode(env, runner, policy, seed, filmed)
        if film and film.frames and (first or not res["success"]):
            tag = "ok" if res["success"] else "fail"
            path = Path(cfg.video_dir) / f"seed{seed}_{tag}.mp4"
            film.save(path)
            res["video"] = str(path)
            failures_filmed += not res["success"]
        results.append(res)
    env.close()
    return results, runner.latencies


def evaluate(cfg: EvalConfig, policy: Policy | None = None) -> dict:
    """Closed-loop evaluation of ``cfg.policy``. ``policy``: an already loaded policy (any object with the Policy
    interface) to run instead of loading ``cfg.policy``, in this process (``workers`` must then be 1)."""
    t0 = time.perf_counter()
    given = policy is not None
    if given and cfg.workers > 1:
        raise UsageError("an in-memory policy runs in one process: workers must be 1")
    # validates the policy and the env before any episode; a multi-robot policy acts as the task's robot
    policy = policy if given else Policy.load(cfg.policy, robot=task_robot(cfg.task))
    env, _, hz = _make_env(cfg, policy)
    if cfg.execution == "async" and cfg.delay_steps is None:  # measure once, so every worker simulates the same
        obs, _ = env.reset(seed=cfg.seed)
        policy(obs)  # compile
        t = time.perf_counter()
        policy(obs)
        cfg = replace(cfg, delay_steps=max(1, math.ceil((time.perf_counter() - t) * hz)))
    env.close()
    execute, execute_from = resolve_execute(policy, cfg.execute)  # for the report; each runner resolves the same
    seeds = [cfg.seed + i for i in range(cfg.episodes)]
    parts = [seeds[i :: cfg.workers] for i in range(cfg.workers) if seeds[i :: cfg.workers]]
    if given:
        outs = [run_episodes(policy, cfg, parts[0])]
    elif len(parts) == 1:
        outs = [_run_seeds((cfg, parts[0]))]
    else:
        with ProcessPoolExecutor(len(parts), mp_context=get_context("spawn")) as pool:
            outs = list(pool.map(_run_seeds, [(cfg, p) for p in parts]))
    results = sorted((r for rs, _ in outs for r in rs), key=lambda r: r["seed"])
    lat = 1000 * np.array([x for _, ls in outs for x in ls])
    k = sum(r["success"] for r in results)
    lo, hi = wilson_interval(k, len(results))
    return {
        "policy": cfg.policy,
        "task": cfg.task or load_mapping_id(cfg.env_map),
        "episodes": len(results),
        "successes": k,
        "success_rate": k / len(results),
        "ci95": [lo, hi],
        "execution": cfg.execution,
        "execute": execute,
        "execute_from": execute_from,
        "latency_ms": {q: float(np.percentile(lat, int(q[1:]))) for q in ("p50", "p90", "p99")} if len(lat) else {},
        "latency_samples_ms": [round(float(x), 3) for x in lat],  # every timed call (the report's histogram)
        "workers": len(parts),
        "seconds": round(time.perf_counter() - t0, 2),
        "config": asdict(cfg),
        "per_episode": results,
    }


def load_mapping_id(spec) -> str:
    from vla_sdk.envmap import load_mapping

    return str(load_mapping(spec).get("env_id", "mapped env"))


PHASES = 5  # replay reports the chunk MSE per fifth of the episode


def replay(
    policy: Policy,
    dataset: str | Path,
    episodes: list[int] | None = None,
    stride: int = 10,
    seed: int = 0,
) -> dict:
    """Offline: predicted chunks vs the recorded actions (MSE in raw action units, per joint and per fifth of the
    episodes' timelines, by where each chunk starts), no simulator. The phases show what an average hides: a policy
    that ignores its cameras fits late chunks from the arm's pose and misses only the first ones, before the arm
    has moved towards the object. ``episodes``: dataset episode indices (default all); the policy's sampling noise
    for episode k is seeded with ``seed + k``."""
    from vla_sdk.data.reader import Dataset

    ds = Dataset(dataset)
    if episodes is not None:
        bad = [k for k in episodes if not 0 <= k < ds.num_episodes]
        if bad or not episodes:
            raise UsageError(
                f"{dataset}: episode(s) {bad or episodes} do not exist; it has {ds.num_episodes} (0-based)"
            )
    missing = sorted(set(policy.cameras) - set(ds.cameras))
    if missing:
        raise InputError(f"{dataset}: the policy needs camera(s) {missing}; the dataset has {ds.cameras}")
    names = ds.features["action"].get("names")
    if names and list(names) != list(policy.transform.action_names):
        raise InputError(f"{dataset}: its actions {names} are not the policy's {policy.transform.action_names}")
    env_names = ds.features.get(ENV_STATE, {}).get("names")
    width = getattr(policy.config, "env_state_dim", 0)  # a readout: trained with --env-state-weight (not exported)
    read_env = bool(width and getattr(policy.transform, "env_norm", None) is not None and env_names)
    if read_env and len(env_names) != width:
        raise InputError(f"{dataset}: its {ENV_STATE} has {len(env_names)} values, the policy reads out {width}")
    env_abs = []
    sq, count = np.zeros(policy.transform.robot_dim), np.zeros(policy.transform.robot_dim)
    phase_sq, phase_n = np.zeros(PHASES), np.zeros(PHASES)
    n_chunks = 0
    for k in episodes if episodes is not None else range(ds.num_episodes):
        ep = ds.episode(k, cameras=list(policy.cameras))
        policy.reset(seed + k)
        for t in range(0, ep["length"], stride):
            obs = {
                "images": {c: ep["images"][c][t] for c in policy.cameras},
                "state": ep["observation.state"][t],
                "instruction": ep["task"],
            }
            pred = policy(obs)
            if read_env:
                env_abs.append(np.abs(policy.read_env_state(obs) - ep[ENV_STATE][t]))
            target = ep["action"][t : t + len(pred)]
            err = (pred[: len(target)] - target) ** 2
            sq += err.sum(0)
            count += len(target)
            n_chunks += 1
            phase = min(PHASES - 1, PHASES * t // ep["length"])
            phase_sq[phase] += err.mean()
            phase_n[phase] += 1
    per_joint = sq / np.maximum(count, 1)
    env = {"env_state_mae": dict(zip(env_names, np.mean(env_abs, axis=0).tolist(), strict=True))} if read_env else {}
    return {
        **env,
        "dataset": str(dataset),
        "episodes": len(episodes) if episodes is not None else ds.num_episodes,
        "seed": seed,
        "chunks": n_chunks,
        "chunk_mse": float(per_joint.mean()),
        "per_joint_mse": dict(zip(policy.transform.action_names, per_joint.tolist(), strict=True)),
        "mse_by_phase": {
            f"{100 * i // PHASES}-{100 * (i + 1) // PHASES} %": float(phase_sq[i] / phase_n[i])
            for i in range(PHASES)
            if phase_n[i]
        },
    }
