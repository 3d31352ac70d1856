"""`vla train`: the resumable fine-tuning loop."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np
from flax import nnx
from tqdm import tqdm

from vla_sdk.data import checksums
from vla_sdk.data.layout import ENV_STATE
from vla_sdk.data.reader import Dataset
from vla_sdk.data.stats import vector_stats
from vla_sdk.errors import AlreadyExists, InputError, NotFound, UsageError
from vla_sdk.interrupt import StopRequest
from vla_sdk.model import VLA, ModelConfig, get_preset, param_count
from vla_sdk.multi_robot import for_robot, trained_robots
from vla_sdk.train.checkpoint import CHECKPOINT_FORMAT, Checkpoints, read_checkpoint
from vla_sdk.train.config import TrainConfig
from vla_sdk.train.loader import FrameStore, batches
from vla_sdk.train.mixture import Mixture, RobotData, group_by_robot, image_size_notes, union_cameras
from vla_sdk.train.plot import refresh_plot
from vla_sdk.train.step import Stepper, make_mesh
from vla_sdk.transforms import PolicyTransform

_clock = time.perf_counter  # the run's clock (--time-budget, rates); tests drive it


def _split(datasets: list[Dataset], val_episodes: int, max_episodes: int | None = None) -> tuple[list, list]:
    """(training, validation) episodes as (dataset, episode): the last ``val_episodes`` of each dataset validate;
    of the rest, the first ``max_episodes`` (None: all) train."""
    train, val = [], []
    for d, ds in enumerate(datasets):
        if ds.num_episodes == 0:
            raise InputError(f"{ds.root}: the dataset has no episodes")
        if val_episodes >= ds.num_episodes:
            raise UsageError(
                f"--val-episodes {val_episodes} leaves no training episodes in {ds.root} ({ds.num_episodes} episodes)"
            )
        n_train = ds.num_episodes - val_episodes
        if max_episodes is not None and max_episodes > n_train:
            raise UsageError(
                f"--max-episodes {max_episodes}: {ds.root} has only {n_train} training episodes"
                + (f" ({val_episodes} more validate)" if val_episodes else "")
            )
        train += [(d, k) for k in range(min(n_train, max_episodes or n_train))]
        val += [(d, k) for k in range(n_train, ds.num_episodes)]
    return train, val


def _model_config(cfg: TrainConfig, robots: list[RobotData], base_meta: dict | None) -> ModelConfig:
    """The run's model config; each robot's ``cameras`` become the model slots it fills (bound by name)."""
    cameras = union_cameras(robots)
    if base_meta is not None:
        mcfg = ModelConfig.from_dict(base_meta["model_config"])
        slots = tuple(mcfg.cameras)
        if not set(cameras) <= set(slots):
            if len(robots) > 1 or len(cameras) != len(slots):
                raise InputError(
                    f"the base checkpoint's camera slots are {list(slots)}; the data's cameras are {list(cameras)}: "
                    "cameras bind to slots by name (rename the dataset's cameras, or give it as many cameras as "
                    "the base has slots to bind them in order)"
                )
            slots = cameras  # a one-robot base with as many cameras: the data's take its slots in order
        # --model on a base: a field that changes no weight shape (image_size, for either encoder) keeps every
        # weight; one that does re-initialises those weights (_load_base says which)
        mcfg = ModelConfig.from_dict({**mcfg.to_dict(), **cfg.model, "cameras": slots})
    else:
        mcfg = ModelConfig.from_dict({**get_preset(cfg.preset).to_dict(), **cfg.model})
        if len(robots) == 1:  # a preset's camera count caps one robot's cameras
            cameras = cameras[: len(mcfg.cameras)] if len(cameras) >= len(mcfg.cameras) else cameras
            robots[0].cameras = cameras
        mcfg = mcfg.replace(cameras=cameras)
    dtype = cfg.dtype or ("float32" if jax.default_backend() == "cpu" else "bfloat16")
    return mcfg.replace(dtype=dtype)


def _env_state_readout(cfg: TrainConfig, mcfg: ModelConfig, datasets: list[Dataset]) -> ModelConfig:
    """``--env-state-weight``: the model gets a readout as wide as the datasets' recorded environment state."""
    if cfg.env_state_weight <= 0:
        return mcfg
    widths = set()
    for ds in datasets:
        feature = ds.features.get(ENV_STATE)
        if feature is None:
            raise UsageError(
                f"--env-state-weight: {ds.root} has no {ENV_STATE!r} feature (record it again with this version of "
                "`vla record`, e.g. --teleop replay --source from the same dataset, or train without the flag)"
            )
        widths.add(tuple(feature.get("names") or range(feature["shape"][0])))
    if len(widths) > 1:
        raise UsageError(f"--env-state-weight: the datasets record different environment states: {sorted(widths)}")
    return mcfg.replace(env_state_dim=len(widths.pop()))


def _resolve_delta_actions(cfg: TrainConfig, base_meta: dict | None, log) -> TrainConfig:
    """``delta_actions`` None follows the base checkpoint (a delta-action base fine-tuned on absolute targets would
    relearn its output layer from scratch), and is on without one; an explicit choice that differs from the base
    is said out loud."""
    parts = [base_meta or {}, *((base_meta or {}).get("robots") or {}).values()]
    base_delta = any(any(m.get("delta_mask") or []) for m in parts)
    if cfg.delta_actions is None:
        if base_meta is None:
            return cfg.replace(delta_actions=True)
        if base_delta:
            log("delta actions: on, as the base checkpoint was trained (--no-delta-actions to train absolute ones)")
        return cfg.replace(delta_actions=base_delta)
    if base_meta is not None and cfg.delta_actions != base_delta:
        was, now = ("delta", "absolute") if base_delta else ("absolute", "delta")
        log(f"delta actions: the base checkpoint predicts {was} actions, this run trains {now} ones")
    return cfg


def _child(tree, key):
    """``tree[key]``; restored checkpoints key list items by string ("0"), the live model by int (0)."""
    if not isinstance(tree, dict):
        return None
    return tree[key] if key in tree else tree.get(str(key))


def _load_base(model: VLA, base_params: dict, base_meta: dict, robots: list[str], log) -> dict:
    """Fresh params of ``model`` with every same-shaped weight taken from the base; for a robot the base was not
    trained for the action head's input/output projections (the per-dimension action slots) stay freshly
    initialised."""
    fresh = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    same_robot = set(robots) <= set(trained_robots(base_meta))
    kept, reinit = 0, []

    def walk(f, b, path):
        nonlocal kept
        if isinstance(f, dict):
            return {k: walk(v, _child(b, k), (*path, k)) for k, v in f.items()}
        name = "/".join(map(str, path))
        action_slot = path[0] == "head" and any("action" in str(p) for p in path)
        if b is None or np.shape(b) != np.shape(f) or (action_slot and not same_robot):
            reinit.append(name)
            return f
        kept += 1
        return np.asarray(b, dtype=np.asarray(f).dtype)

    params = walk(fresh, base_params, ())
    log(
        f"base checkpoint: kept {kept} weight arrays, re-initialised {len(reinit)}"
        + (f" ({', '.join(reinit[:6])}{', ...' if len(reinit) > 6 else ''})" if reinit else "")
    )
    return params


def _prepare_robot(r: RobotData, cfg, mcfg, datasets, train_eps, val_eps, progress, base_meta, log) -> None:
    """One robot's frame stores, statistics, delta mask and transform. The statistics are its data's, or, when the
    base was trained for this robot with the same action dims and kind of actions, the base's: the normalized
    space the base learned in carries over (the data's own would shift every target the base predicts)."""
    mine = set(r.dataset_ids)
    r.store = FrameStore(
        datasets, [e for e in train_eps if e[0] in mine], r.cameras, mcfg.image_size, cfg.cache_dir, progress
    )
    vals = [e for e in val_eps if e[0] in mine]
    r.val_store = FrameStore(datasets, vals, r.cameras, mcfg.image_size, cfg.cache_dir, progress) if vals else None
    # delta actions: every arm dim relative to the state (grippers stay absolute); the mask travels in the checkpoint
    if cfg.delta_actions and "dims" not in r.embodiment:
        raise UsageError(
            f"delta actions (--delta-actions, on by default): {datasets[r.dataset_ids[0]].root} declares an "
            "embodiment without 'dims', "
            "so which action dims are grippers (kept absolute) is unknown: give --robot NAME or --robot FILE.json "
            "(docs/datasets.md), or --no-delta-actions to train absolute actions"
        )
    delta_mask = [d.get("kind") != "gripper" for d in r.embodiment["dims"]] if cfg.delta_actions else None
    if delta_mask is not None and len(delta_mask) != len(r.action_names):
        raise InputError(f"the embodiment declares {len(delta_mask)} dims, the actions have {len(r.action_names)}")
    store = r.store
    actions = store.actions if delta_mask is None else store.delta_chunks(mcfg.horizon, np.array(delta_mask))
    r.stats = {"observation.state": vector_stats(store.states), "action": vector_stats(actions)}
    if cfg.env_state_weight > 0:
        r.stats[ENV_STATE] = vector_stats(store.env_states)
    if base_meta is not None and r.name in trained_robots(base_meta):
        was = for_robot(base_meta, r.name)
        same = was.get("action_names") == r.action_names and any(was.get("delta_mask") or []) == bool(delta_mask)
        if same and all(k in was.get("stats", {}) for k in r.stats):
            r.stats = {k: was["stats"][k] for k in r.stats}
            log(f"statistics of {r.name}: the base's (its normalization carries over)")
    r.delta_mask = delta_mask
    r.transform = PolicyTransform(mcfg, r.action_names, r.stats, delta_mask, r.cameras)
    r.transform.report_truncation(sorted(set(store.tasks)))  # once per text, before the batches do


def _check_checksums(cfg: TrainConfig, datasets: list[Dataset], log) -> None:
    """Refuse data whose committed files changed since recording (unless ``ignore_checksums``); datasets recorded
    before checksums existed train as before, with a note."""
    for ds in datasets:
        if cfg.ignore_checksums:
            bad = checksums.changed_files(ds.root, ds.episodes)
            if bad:
                log(f"--ignore-checksums: training on {ds.root} although {len(bad)} file(s) fail their checksums")
            continue
        checksums.require_intact(ds.root, ds.episodes, "--ignore-checksums")
        unchecked = checksums.unchecked_episodes(ds.episodes)
        if unchecked:
            log(f"note: {ds.root}: {len(unchecked)} of {ds.num_episodes} episodes carry no checksums (not verified)")


# (checkpoint folder, ROBOT/TASK, episodes, max steps or None) -> {"successes", "episodes", "success_rate", ...}:
# what `vla eval CHECKPOINT --task ...` measures. The caller passes it in (the CLI gives vla_sdk.evaluation's), so the
# trainer never imports the evaluator above it.
SimEval = Callable[[str, str, int, "int | None"], dict]


def _check_eval_task(cfg: TrainConfig, robots: list[str], sim_eval: SimEval | None) -> None:
    """``--eval-task`` that cannot be evaluated is refused before the first step, not at the first evaluation."""
    if not cfg.eval_task:
        return
    if sim_eval is None:
        raise UsageError("--eval-task needs an evaluator: call train(..., sim_eval=...) (the `vla` CLI passes one)")
    from vla_sdk.sim.tasks import get_task

    robot = get_task(cfg.eval_task).robot  # a wrong name lists the valid ones
    if robots and robot not in robots:
        raise UsageError(
            f"--eval-task {cfg.eval_task} is a {robot!r} task; the data is of {', '.join(map(repr, robots))}"
        )


def _score(record: dict, eval_task: str | None) -> float | None:
    """What the best checkpoint is chosen by: the sim success rate when the run evaluates in sim (checkpoints
    without an evaluation are then not candidates, so one ranking never mixes two measures), else minus the
    validation loss; None: not a candidate."""
    if eval_task:
        return record.get("success_rate")
    return None if record.get("val_loss") is None else -record["val_loss"]


def _barrier(name: str, minutes: float = 30) -> None:
    """Multi-host: wait until every process gets here, through the coordination service (whose wait is long),
    before a collective whose transport gives up soon (CPU gloo connects within about 30 s): processes that
    build their models or evaluate at different speeds then meet at the collective together."""
    if jax.process_count() == 1:
        return
    from jax._src import distributed  # the coordination client; jax has no public barrier without a collective

    distributed.global_state.client.wait_at_barrier(f"vla-train/{name}", int(minutes * 60_000))


def _sim_eval(cfg: TrainConfig, checkpoint: Path, sim_eval: SimEval) -> dict:
    """Closed-loop evaluation of a saved checkpoint (what `vla eval CHECKPOINT` would measure), on process 0;
    every process gets its success rate (they must agree on which checkpoint is best)."""
    ev = {"success_rate": 0.0, "successes": 0, "episodes": cfg.eval_episodes}
    if jax.process_index() == 0:
        ev = sim_eval(str(checkpoint), cfg.eval_task, cfg.eval_episodes, cfg.eval_max_steps)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        _barrier(f"eval {checkpoint.name}")
        k = int(multihost_utils.broadcast_one_to_all(np.int32(ev["successes"])))
        ev = {**ev, "successes": k, "success_rate": k / ev["episodes"]}
    return ev


def train(
    cfg: TrainConfig, resume: bool = False, progress: bool = True, log=print, sim_eval: SimEval | None = None
) -> dict:
    """Run (or with ``resume`` continue) the training described by ``cfg``; ``sim_eval`` evaluates checkpoints in
    simulation for ``--eval-task`` (see :data:`SimEval`). Returns a summary (steps, stop reason, losses, ...)."""
    run = Path(cfg.out)
    if resume:
        saved = run / "config.json"
        if not saved.exists():
            raise NotFound(f"{run} has no config.json to resume from; start without --resume")
        cfg = TrainConfig.from_dict({**json.loads(saved.read_text())["train"], "time_budget": cfg.time_budget})
    elif (run / "checkpoints").exists() and any((run / "checkpoints").iterdir()):
        raise AlreadyExists(f"{run} already holds checkpoints; use --resume to continue it or choose a new --out")
    t_start = _clock()
    datasets = [Dataset(d) for d in cfg.data]
    _check_checksums(cfg, datasets, log)
    robots = group_by_robot(datasets, cfg.robot)
    _check_eval_task(cfg, [r.name for r in robots], sim_eval)
    train_eps, val_eps = _split(datasets, cfg.val_episodes, cfg.max_episodes)
    base_params, base_meta = read_checkpoint(cfg.base) if cfg.base else (None, None)
    mcfg = _model_config(cfg, robots, base_meta)
    if base_meta is not None and cfg.model:
        was = ModelConfig.from_dict(base_meta["model_config"])  # a field the base predates: its default
        changes = ", ".join(f"{k} {getattr(was, k)} -> {getattr(mcfg, k)}" for k in cfg.model)  # as validated
        log(f"model config changed from the base: {changes}")
    mcfg = _env_state_readout(cfg, mcfg, datasets)
    for note in image_size_notes(datasets, robots, mcfg.image_size):
        log(note)
    execute = cfg.execute if cfg.execute is not None else (base_meta or {}).get("execute")
    if execute is None and base_meta is None:
        execute = mcfg.horizon  # from scratch: whole chunks
    if execute is not None and execute > mcfg.horizon:
        raise UsageError(f"--execute {execute} is longer than the model's chunk (horizon {mcfg.horizon})")
    cfg = _resolve_delta_actions(cfg, base_meta, log)
    for r in robots:
        _prepare_robot(r, cfg, mcfg, datasets, train_eps, val_eps, progress, base_meta, log)
    weights = list(cfg.data_weights) if cfg.data_weights else None
    source = Mixture([r.store for r in robots], [r.transform for r in robots], weights)
    val_source = Mixture([r.val_store for r in robots], [r.transform for r in robots], weights) if val_eps else None

    model = VLA(mcfg, rngs=nnx.Rngs(cfg.seed))
    params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    if base_params is not None:
        params = _load_base(model, base_params, base_meta, [r.name for r in robots], log)
    mesh = make_mesh()
    _barrier("checkpoints")  # orbax's first collective
    ckpts = Checkpoints(run, cfg.keep)
    cap = cfg.requested_steps or cfg.steps  # --time-budget fits the steps, at most the --steps asked for
    # a resumed run with a time budget fits its steps again (early, from this session's pace): up to the cap,
    # so a run that one session's budget fitted goes on in the next
    total = cap if resume and cfg.time_budget else cfg.steps
    stepper = Stepper(model, cfg, total, mesh)
    state = stepper.init_state(params)
    start = 0
    if resume:
        step = ckpts.latest_step()
        if step is None:  # killed before its first checkpoint: the same run from its first step
            log(f"{run} has no checkpoint yet: starting it from step 0")
        else:
            state, _ = ckpts.restore(step, jax.tree.map(np.asarray, state))
            state = jax.device_put(state, stepper.replicated)
            start = step
            log(f"resumed {run} at step {start}")

    def meta(metrics: dict) -> dict:
        common = {
            "format_version": CHECKPOINT_FORMAT,
            "train_config": cfg.to_dict(),
            "model_config": mcfg.to_dict(),
            "execute": execute,  # the runner's default actions per chunk (None: half the chunk)
            "metrics": metrics,
        }
        if len(robots) > 1:  # per robot (vla_sdk.multi_robot)
            return {**common, "robots": {r.name: r.parts() for r in robots}}
        parts = robots[0].parts()
        if set(parts["cameras"]) == set(mcfg.cameras):
            del parts["cameras"]  # it fills every slot
        return {**common, **parts}

    # multi-host: process 0 writes the run's files (config, metrics, events); every process takes part in the
    # checkpoint saves, which orbax coordinates (process 0 writes the replicated arrays and the metadata)
    procs, primary = jax.process_count(), jax.process_index() == 0
    if cfg.batch_size % procs:
        raise UsageError(f"--batch-size {cfg.batch_size} must be divisible by the number of processes ({procs})")

    def write_config(cfg):
        if primary:
            (run / "config.json").write_text(json.dumps({"train": cfg.to_dict(), "model": mcfg.to_dict()}, indent=2))

    if primary:
        run.mkdir(parents=True, exist_ok=True)
    write_config(cfg)  # before the first step, so a run killed at any moment can be resumed
    if primary:
        from tensorboardX import SummaryWriter

        tb = SummaryWriter(str(run / "events"))
        _drop_torn_line(run / "metrics.jsonl")
        metrics_file = (run / "metrics.jsonl").open("a")
    else:
        tb, metrics_file = _Discard(), _Discard()
    # each process builds its rows of the global batch that one process would draw (default_rng([seed, step])):
    # the global batch, the loss curve and a resume are the same for any number of processes
    part = (jax.process_index(), procs)
    data = batches(source, cfg.batch_size, mcfg.horizon, cfg.seed, start, part=part)
    n_params = param_count(model)
    log(
        f"model {cfg.preset or cfg.base}: {n_params / 1e6:.2f}M parameters, cameras {list(mcfg.cameras)}, "
        f"{len(train_eps)} training / {len(val_eps)} validation episodes, {len(source)} frames, "
        f"{mesh.size} device(s) [{jax.default_backend()}]"
    )
    if len(robots) > 1 or weights:
        for r, share in zip(robots, source.share(), strict=True):
            log(
                f"robot {r.name}: {len(r.dataset_ids)} dataset(s), {len(r.store.episodes)} episodes, "
                f"{len(r.store)} frames, cameras {list(r.cameras)}, {share:.0%} of each batch"
            )
    bar = tqdm(total=total, initial=start, desc="train", unit="step", disable=not progress)
    step, last_saved, best_val, stop_reason = start, start if resume else None, math.inf, "finished"
    t_loop, steps_timed, save_seconds = _clock(), 0, 0.0
    fit_mark = None  # --time-budget: (step, time) the pace is measured from
    history, plotted = [], None
    _barrier("first step")
    ctrl_c = StopRequest().install()
    try:
        while step < total:
            state, m = stepper.train_step(state, next(data))
            step += 1
            steps_timed += 1
            if steps_timed in (1, 6) and cfg.time_budget:  # steps run asynchronously: wait for them to time them
                jax.block_until_ready(m)
            if steps_timed == 1:
                t_compiled = _clock()  # step time is measured after compilation
            if steps_timed == 6 and cfg.time_budget:  # fit the step count to the time budget early ...
                per_step = (_clock() - t_compiled) / 5
                fitted = _fit_steps(step, cap, per_step, _clock() - t_start, cfg.time_budget)
                fit_mark = (step, _clock())
                if fitted != total:
                    total, cfg = _refit(fitted, cfg, stepper, bar, write_config)
                    log(f"--time-budget: {total} steps fit ({per_step * 1000:.0f} ms/step)")
                    fit_mark = None  # the pace is measured again from the next step on
            elif fit_mark is None and steps_timed > 6 and cfg.time_budget:
                jax.block_until_ready(m)
                fit_mark = (step, _clock())
            if step % cfg.log_every == 0 or step == total:
                m = {k: float(v) for k, v in jax.device_get(m).items()}
                if not math.isfinite(m["loss"]):
                    stop_reason = "non-finite loss"
                    log(
                        f"loss became non-finite at step {step}; stopping. Last good checkpoint: "
                        f"{run / 'checkpoints' / str(last_saved) if last_saved is not None else 'none yet'}"
                    )
                    break
                rate = steps_timed / (_clock() - t_loop)
                rec = {"step": step, **m, "steps_per_s": rate, "time": time.time()}
                history.append(rec)
                metrics_file.write(json.dumps(rec) + "\n")
                metrics_file.flush()
                for k, v in m.items():
                    tb.add_scalar(f"train/{k}", v, step)
                bar.set_postfix(loss=f"{m['loss']:.4f}", sps=f"{rate:.2f}")
            bar.update(1)
            deadline = cfg.time_budget and (_clock() - t_start) + 2 * save_seconds + 5 > cfg.time_budget
            periodic_eval = bool(cfg.eval_every) and (step % cfg.eval_every == 0 or step == total)
            if step % cfg.save_every == 0 or step == total or deadline or periodic_eval:
                # --eval-task without --eval-every: every checkpoint is evaluated
                evaluate_now = bool(cfg.eval_task) and (periodic_eval or not cfg.eval_every)
                t_save = _clock()
                val = _val_loss(stepper, state, val_source, cfg, mcfg, part) if val_source else None
                record = {"step": step, "val_loss": val}
                if val is not None:
                    best_val = min(best_val, val)
                host_state = jax.device_get(state)
                if not all(np.all(np.isfinite(x)) for x in jax.tree.leaves(host_state["params"])):
                    stop_reason = "non-finite loss"
                    log(
                        f"parameters became non-finite by step {step}; stopping without saving them. Last good "
                        f"checkpoint: {run / 'checkpoints' / str(last_saved) if last_saved is not None else 'none'}"
                    )
                    break
                if evaluate_now:  # the saved checkpoint is evaluated, then offered as the best by its success rate
                    ckpts.save(step, host_state, meta(record))
                    ev = _sim_eval(cfg, run / "checkpoints" / str(step), sim_eval)
                    record["success_rate"] = ev["success_rate"]
                    log(f"step {step}: {cfg.eval_task} success {ev['successes']}/{ev['episodes']}")
                    ckpts.save_best(step, host_state, meta(record), _score(record, cfg.eval_task))
                else:
                    ckpts.save(step, host_state, meta(record), score=_score(record, cfg.eval_task))
                for k, v in record.items():
                    if k != "step" and v is not None:
                        tb.add_scalar(f"val/{k}", v, step)
                metrics_file.write(json.dumps(record) + "\n")
                metrics_file.flush()
                if primary:  # RUN/curves.png, redrawn from metrics.jsonl (~0.2 s)
                    refresh_plot(run)
                    plotted = step
                last_saved = step
                save_seconds = _clock() - t_save
                if fit_mark and step > fit_mark[0] and not deadline:
                    # ... and again at each checkpoint, from the pace since the last fit (saves included), when the
                    # machine got slower or faster: the schedule then still decays before the deadline
                    per_step = (_clock() - fit_mark[1]) / (step - fit_mark[0])
                    fitted = _fit_steps(step, cap, per_step, _clock() - t_start, cfg.time_budget)
                    fit_mark = (step, _clock())
                    if abs(fitted - total) > 0.05 * total:
                        log(f"--time-budget: {fitted} steps fit now, not {total} ({per_step * 1000:.0f} ms/step)")
                        total, cfg = _refit(fitted, cfg, stepper, bar, write_config)
                        fit_mark = None
                if deadline and step < total:
                    stop_reason = "time budget"
                    log(f"--time-budget reached at step {step}; checkpoint saved")
                    break
            if ctrl_c.requested:  # Ctrl-C: keep every step done so far, then stop
                stop_reason = "interrupted"
                if step != last_saved:
                    ckpts.save(step, jax.device_get(state), meta({"step": step, "val_loss": None}))
                    last_saved = step
                log(f"interrupted at step {step}: checkpoint saved; run the same command with --resume to go on")
                break
    finally:
        ctrl_c.restore()
        bar.close()
        metrics_file.close()
        tb.close()
        ckpts.close()
    if primary and plotted != step:  # stopped without a checkpoint line after the last metrics (Ctrl-C, NaN)
        refresh_plot(run)
    return {
        "run": str(run),
        "steps": step,
        "total_steps": total,
        "stopped": stop_reason,
        "last_checkpoint": last_saved,
        "final_loss": history[-1]["loss"] if history else None,
        "best_val_loss": None if best_val == math.inf else best_val,
        "parameters": n_params,
        "seconds": round(_clock() - t_start, 2),
        "losses": [(h["step"], h["loss"]) for h in history],
    }


def _fit_steps(step: int, cap: int, per_step: float, elapsed: float, budget: float) -> int:
    """The step count that ends within ``budget`` seconds, ``elapsed`` of them gone, at ``per_step`` seconds a step,
    keeping a reserve for the final checkpoint and evaluation: at least one more step, at most ``cap`` (resumed runs
    count on from ``step``)."""
    reserve = min(60.0, 0.1 * budget)
    return max(step + 1, min(cap, step + int((budget - elapsed - reserve) / per_step)))


def _refit(total: int, cfg: TrainConfig, stepper: Stepper, bar, write_config) -> tuple[int, TrainConfig]:
    """A new step count: the same state and the same compiled step, with the learning-rate schedule over ``total``
    steps (an input of the step, so nothing compiles again); config.json says it, so a --resume keeps it."""
    cfg = cfg.replace(steps=total, requested_steps=cfg.requested_steps or cfg.steps)
    bar.total = total
    write_config(cfg)
    stepper.set_total_steps(total)
    return total, cfg


def _val_loss(stepper, state, source, cfg, mcfg, part=(0, 1), n_batches: int = 4) -> float:
    losses = [
        stepper.eval_loss(
            state["ema"],
            source.batch(cfg.batch_size, mcfg.horizon, np.random.default_rng([cfg.seed, 10**9, i]), part),
            seed=i,
        )
        for i in range(n_batches)
    ]
    return float(np.mean(losses))


def _drop_torn_line(path: Path) -> None:
    """A run killed while writing a metrics line leaves it cut short: cut it off, so the resumed run's lines start
    on a line of their own (the steps after the last checkpoint are logged again)."""
    if not path.exists():
        return
    with path.open("rb+") as f:
        data = f.read()
        if data and not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)


class _Discard:
    """The metrics file and TensorBoard writer of a process other than 0 (multi-host): writes nothing."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None
