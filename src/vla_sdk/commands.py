"""Handlers of the `vla` subcommands: each takes the parsed arguments, calls into the SDK and prints the result."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from vla_sdk.errors import EXIT_INTERRUPTED, UsageError


def doctor(args) -> int:
    from vla_sdk.doctor import run_checks

    checks = run_checks()
    if args.json:
        print(json.dumps({"ok": all(c.ok for c in checks), "checks": [vars(c) for c in checks]}, indent=2))
    else:
        for c in checks:
            print(f"[{'ok' if c.ok else 'FAIL':>4}] {c.name:<10} {c.detail}")
            if not c.ok:
                print(f"       {'':<10} fix: {c.fix}")
    return 0 if all(c.ok for c in checks) else 1


def sim_list(args) -> int:
    from vla_sdk.embodiment import list_robots, load_embodiment
    from vla_sdk.sim import TASKS, list_tasks

    if args.robot is not None and args.robot not in list_robots():
        from vla_sdk.registry import UnknownNameError

        raise UnknownNameError("robot", args.robot, list_robots())
    names = list_tasks(args.robot)
    rows = [
        {
            "task": n,
            "robot": TASKS[n].robot,
            "language_conditioned": TASKS[n].language_conditioned,
            "held_out": TASKS[n].held_out,  # never in the base policy's training mix
            "max_steps": TASKS[n].max_steps,
            "summary": TASKS[n].summary,
        }
        for n in names
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for robot in sorted({r["robot"] for r in rows}):
        emb = load_embodiment(robot)
        print(f"{robot}: {emb.action_dim}-D actions at {emb.control_hz:g} Hz, cameras {', '.join(emb.cameras)}")
        for r in (r for r in rows if r["robot"] == robot):
            tags = " [language]" * r["language_conditioned"] + " [held out]" * r["held_out"]
            print(f"  {r['task']:<24} {r['summary']}{tags}")
    return 0


def sim_run(args) -> int:
    from vla_sdk.sim import get_task
    from vla_sdk.sim.rollout import run_episodes

    task = get_task(args.task)  # fail fast on a bad name, before any work
    video = None if args.no_video else (args.video or Path("out") / f"{task.robot}_{task.name}.mp4")
    summary = run_episodes(
        args.task,
        policy=args.policy,
        episodes=args.episodes,
        seed=args.seed,
        video=video,
        video_episodes=args.video_episodes,
        video_size=tuple(args.video_size),
        progress=sys.stderr.isatty(),
    )
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"{summary['task']} [{summary['policy']}]: {summary['successes']}/{summary['episodes']} succeeded "
            f"(success rate {summary['success_rate']:.2f}) in {summary['seconds']:.1f} s"
        )
        if video:
            print(f"video: {video}")
    return 0


def record(args) -> int:
    from vla_sdk.data.record import RecordConfig, record
    from vla_sdk.sim import get_task

    task = get_task(args.task)
    cfg = RecordConfig(
        task=args.task,
        out=args.out or Path("demos") / f"{task.robot}_{task.name}",
        episodes=args.episodes,
        teleop=args.teleop,
        resume=args.resume,
        fps=args.fps,
        seed=args.seed,
        cameras=tuple(args.cameras) if args.cameras else None,
        image_size=tuple(args.image_size) if args.image_size else None,
        source=args.source,
        only_success=args.only_success,
        force=args.force,
        action_noise=args.action_noise,
        ignore_checksums=args.ignore_checksums,
        robot=args.robot,
        episode_seconds=args.episode_seconds,
    )
    if args.teleop == "leader":
        from vla_sdk.robots.teleop import record_leader

        summary = record_leader(cfg, progress=sys.stderr.isatty(), log=lambda m: print(m, file=sys.stderr))
    elif args.teleop == "keyboard":
        from vla_sdk.data.keyboard import record_keyboard

        summary = record_keyboard(cfg)
    else:
        summary = record(cfg, progress=sys.stderr.isatty(), log=lambda m: print(m, file=sys.stderr))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"{summary['dataset']}: {summary['episodes']} episodes ({summary['recorded']} recorded now, "
            f"{summary['successes']} successful) in {summary['seconds']:.1f} s"
            + (
                " — interrupted; the committed episodes are kept, continue with --resume"
                if summary["interrupted"]
                else ""
            )
        )
    return 130 if summary["interrupted"] else 0


def train(args) -> int:
    if args.distributed:
        import os

        import jax

        from vla_sdk.errors import UsageError

        # jax reads JAX_COORDINATOR_ADDRESS itself, the process count and id only on clusters it detects (SLURM,
        # Open MPI, Cloud TPU, ...): the README's variables are passed on, so plain hosts work too
        ids = {}
        for var, name in (("JAX_NUM_PROCESSES", "num_processes"), ("JAX_PROCESS_ID", "process_id")):
            if os.environ.get(var):
                if not os.environ[var].isdigit():
                    raise UsageError(f"--distributed: {var} must be a whole number, got {os.environ[var]!r}")
                ids[name] = int(os.environ[var])
        jax.distributed.initialize(**ids)
    from vla_sdk.train.config import TrainConfig, parse_duration, parse_model_fields
    from vla_sdk.train.loop import train

    _base_defaults(args)

    cfg = TrainConfig(
        data=tuple(str(d) for d in args.data),
        data_weights=args.data_weights,
        out=str(args.out),
        robot=args.robot,
        preset=None if args.base else (args.preset or TrainConfig.preset),
        base=str(args.base) if args.base else None,
        model=parse_model_fields(args.model),
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        finetune=args.finetune,
        lora_rank=args.lora_rank,
        val_episodes=args.val_episodes,
        max_episodes=args.max_episodes,
        eval_task=args.eval_task,
        eval_every=args.eval_every,
        eval_episodes=args.eval_episodes,
        eval_max_steps=args.eval_max_steps,
        ignore_checksums=args.ignore_checksums,
        save_every=args.save_every,
        keep=args.keep,
        log_every=args.log_every,
        time_budget=parse_duration(args.time_budget),
        seed=args.seed,
        augment=not args.no_augment,
        state_noise=args.state_noise,
        state_dropout=args.state_dropout,
        env_state_weight=args.env_state_weight,
        execute=args.execute,
        max_shift=args.max_shift,
        delta_actions=args.delta_actions,
        dtype=args.dtype,
        cache_dir=str(args.cache_dir) if args.cache_dir else None,
    )
    if args.demos_curve:
        return _demos_curve(args, cfg)
    summary = train(
        cfg,
        resume=args.resume,
        progress=sys.stderr.isatty(),
        log=lambda m: print(m, file=sys.stderr),
        sim_eval=_sim_eval,
    )
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"{summary['run']}: {summary['steps']}/{summary['total_steps']} steps ({summary['stopped']}), "
            f"final loss {summary['final_loss']}, last checkpoint step {summary['last_checkpoint']}, "
            f"{summary['seconds']:.0f} s"
        )
    if summary["stopped"] == "interrupted":
        return 130  # the shell's code for a run stopped by Ctrl-C
    return 0 if summary["stopped"] in ("finished", "time budget") else 1


def _base_defaults(args) -> None:
    """A shipped base (``--base vla-base``, or no --preset and no --base when this build carries one): the flags the
    user did not give take the settings its card recommends for fine-tuning."""
    from vla_sdk import bases
    from vla_sdk.errors import InputError

    if args.base is None and args.preset is None and bases.is_released(bases.DEFAULT):
        args.base = bases.DEFAULT
        print(f"fine-tuning the shipped base {bases.DEFAULT} (--preset NAME trains from scratch)", file=sys.stderr)
    if args.base is None or not bases.is_base_name(str(args.base)):
        return
    taken = {k: v for k, v in bases.read_card(str(args.base)).get("finetune", {}).items() if k not in args.given}
    for key, value in taken.items():
        if not hasattr(args, key):
            raise InputError(f"base {args.base}: its card recommends {key!r}, which `vla train` has no flag for")
        setattr(args, key, value)
    if taken:
        said = ", ".join(f"{k} {v}" for k, v in taken.items())
        print(f"{args.base}'s recommended settings: {said} (a flag overrides each)", file=sys.stderr)


def _demos_curve(args, cfg) -> int:
    from vla_sdk.demo_curve import curve_table, demos_curve
    from vla_sdk.errors import UsageError

    if not args.eval_task:
        raise UsageError("--demos-curve needs --eval-task ROBOT/TASK: each count's run is evaluated on it")
    if args.max_episodes is not None:
        raise UsageError("--demos-curve sets the episodes of each run itself; drop --max-episodes")
    curve = demos_curve(
        cfg.replace(eval_task=None, eval_every=0),  # each run is evaluated once, at its end
        args.demos_curve,
        args.eval_task,
        episodes=args.curve_episodes,
        workers=min(2, os.cpu_count() or 1),
        progress=sys.stderr.isatty(),
        log=lambda m: print(m, file=sys.stderr),
    )
    print(json.dumps(curve, indent=2) if args.json else curve_table(curve), end="" if not args.json else "\n")
    return 0


def _sim_eval(checkpoint: str, task: str, episodes: int, max_steps: int | None) -> dict:
    """`vla train --eval-task`: a saved checkpoint evaluated as `vla eval CHECKPOINT --task TASK` would."""
    from vla_sdk.evaluation import EvalConfig, evaluate

    out = evaluate(EvalConfig(policy=checkpoint, task=task, episodes=episodes, max_steps=max_steps))
    out.pop("latency_samples_ms")
    return out


def _task_vars(items: list[str]) -> dict:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--task-var expects NAME=VALUE (e.g. color=blue), got {item!r}")
        out[key] = value
    return out


def eval_policy(args) -> int:
    from vla_sdk.evaluation import EvalConfig, evaluate, replay

    if args.replay:
        from vla_sdk.policy import Policy

        # replay runs no simulator: what only closed-loop episodes use is refused, not silently ignored
        unused = {
            "--workers": args.workers not in (None, 1),
            "--video-dir": args.video_dir is not None,
            "--execution": args.execution is not None,
            "--execute": args.execute is not None,
            "--delay-steps": args.delay_steps is not None,
            "--max-steps": args.max_steps is not None,
            "--report": args.report is not None,
            "--task-var": bool(args.task_var),
            "--instruction": args.instruction is not None,
        }
        given = [k for k, v in unused.items() if v]
        if given:
            raise UsageError(
                f"{', '.join(given)}: not used by --replay (offline, in one process: it replays the dataset's first "
                "--episodes episodes, with the policy's noise seeded --seed + episode)"
            )
        if args.episodes is not None and args.episodes < 1:
            raise UsageError(f"--episodes must be >= 1, got {args.episodes}")
        episodes = list(range(args.episodes)) if args.episodes is not None else None
        out = replay(Policy.load(args.policy), args.replay, episodes=episodes, seed=args.seed or 0)
        if args.json:
            print(json.dumps(out, indent=2))
        else:
            print(
                f"{args.replay}: chunk MSE {out['chunk_mse']:.5f} over {out['chunks']} chunks of "
                f"{out['episodes']} episode(s)"
            )
            for name, v in out["per_joint_mse"].items():
                print(f"  {name:<24} {v:.5f}")
            phases = "  ".join(f"{k} {v:.5f}" for k, v in out["mse_by_phase"].items())
            print(f"by where the chunk starts in its episode: {phases}")
        return 0
    given = {k: getattr(args, k) for k in ("episodes", "seed", "workers", "execution") if getattr(args, k) is not None}
    cfg = EvalConfig(
        policy=str(args.policy),
        task=args.task,
        env_map=str(args.env_map) if args.env_map else None,
        **given,  # the rest: EvalConfig's defaults
        video_dir=str(args.video_dir) if args.video_dir else None,
        execute=args.execute,
        delay_steps=args.delay_steps,
        max_steps=args.max_steps,
        variables=_task_vars(args.task_var),
        instruction=args.instruction,
    )
    out = evaluate(cfg)
    samples = out.pop("latency_samples_ms")  # for the report's histogram, not for --json
    report = None
    if args.report or args.video_dir:
        from vla_sdk.report import REPORT_NAME, write_report

        report = write_report(out, args.report or args.video_dir / REPORT_NAME, latencies_ms=samples)
        out["report"] = str(report)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        lo, hi = out["ci95"]
        lat = out["latency_ms"]
        print(
            f"{out['task']}: success {out['successes']}/{out['episodes']} = {out['success_rate']:.2f} "
            f"(95% CI {lo:.2f}-{hi:.2f}); inference p50 {lat.get('p50', 0):.1f} ms, p99 {lat.get('p99', 0):.1f} ms; "
            f"{out['seconds']:.0f} s with {out['workers']} worker(s)"
        )
        for e in out["per_episode"]:
            if e["stopped"]:
                print(f"  seed {e['seed']} stopped after {e['steps']} steps: {e['stopped']}")
        if report:
            print(f"report: {out['report']}")
    return 0


def plot_run(args) -> int:
    from vla_sdk.train.plot import plot_run

    print(plot_run(args.run, args.out))
    return 0


def run_policy(args) -> int:
    from vla_sdk.live import run_live
    from vla_sdk.sim import get_task

    if (args.policy is None) == (args.server is None):
        raise UsageError("give POLICY or --server URL (one of them)")
    if args.token and not args.server:
        raise UsageError("--token is for --server")
    task = get_task(args.task)
    video = args.video or Path("out") / f"run_{task.robot}_{task.name}.mp4"
    policy = str(args.policy)
    if args.server:
        from vla_sdk.serve.client import PolicyClient

        policy = PolicyClient(args.server, token=args.token or os.environ.get("VLA_SERVE_TOKEN"))
    try:
        out = run_live(
            policy,
            args.task,
            seed=args.seed,
            execution=args.execution,
            execute=args.execute,
            video=video,
            max_seconds=args.max_seconds,
            log=lambda m: print(m, file=sys.stderr),
            robot=args.robot,
        )
    finally:
        if args.server:
            policy.close()
    print(
        json.dumps(out, indent=2)
        if args.json
        else f"{out['task']}: {'success' if out['success'] else 'no success'} after {out['steps']} steps "
        f"({out['seconds']:.1f} s, {out['late_steps']} late steps); video {out['video']}"
        + (f"\nstopped: {out['stopped']}" if out["stopped"] else "")
    )
    if out["ended"] == "interrupted":  # Ctrl-C: the run stopped at the operator's request
        return EXIT_INTERRUPTED
    return 1 if out["stopped"] else 0  # the robot stopped early (unsafe action or observation, failed inference)


def serve(args) -> int:
    from vla_sdk.policy import Policy
    from vla_sdk.serve.server import PolicyServer, check_host

    token = args.token or os.environ.get("VLA_SERVE_TOKEN")
    check_host(args.host, token)  # refuse before the (slow) policy load
    policy = Policy.load(args.policy, seed=args.seed, robot=args.robot)
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s vla serve: %(message)s", stream=sys.stderr)
    logging.getLogger("websockets").setLevel(logging.WARNING)  # its per-connection lines repeat ours
    server = PolicyServer(
        policy,
        host=args.host,
        port=args.port,
        token=token,
        default_prompt=args.prompt,
        max_message_bytes=int(args.max_message_mb * 2**20),
        rate_limit=args.rate_limit,
        max_connections=args.max_connections,
        handshake_timeout=args.handshake_timeout,
        idle_timeout=args.idle_timeout,
    )

    def ready(port: int) -> None:
        print(
            f"serving {args.policy} ({policy.robot or 'unknown robot'}, cameras {', '.join(policy.cameras)}) on "
            f"{server.url} (health check: http://{server.url[5:]}/healthz{'; token required' if token else ''}); "
            "Ctrl-C stops",
            file=sys.stderr,
            flush=True,
        )

    server.serve_forever(ready)
    return 0


def robot_emulate(args) -> int:
    from vla_sdk.interrupt import StopRequest
    from vla_sdk.robots.aloha2_emulated import EmulatedAloha2, serve_emulated, write_robot_config

    emu = EmulatedAloha2(args.dir, leaders=args.leaders, watchdog_s=args.watchdog_s)
    t0 = time.perf_counter()
    with emu, StopRequest() as stop:
        path = write_robot_config(emu)
        print(f"emulated {args.robot}: {', '.join(f'{a} {e.port}' for a, e in emu.emulators.items())}", file=sys.stderr)
        print(
            f"robot config: {path}   (vla run POLICY --task aloha2/TASK --robot {path}); Ctrl-C stops", file=sys.stderr
        )
        done = lambda: stop.requested or (args.seconds is not None and time.perf_counter() - t0 >= args.seconds)  # noqa: E731
        events = serve_emulated(emu, lambda m: print(m, file=sys.stderr), done)
    if args.json:
        print(json.dumps({"robot_config": str(path), "events": events}, indent=2))
    return 0


def export(args) -> int:
    from vla_sdk.export.build import export_checkpoint, format_summary

    if args.episodes < 1:
        raise UsageError("--episodes must be >= 1")
    summary = export_checkpoint(
        args.policy,
        args.out,
        args.quantize,
        check_task=args.check_task,
        episodes=args.episodes,
        execute=args.execute,
        platforms=tuple(p.strip() for p in args.platforms.split(",") if p.strip()),
        format=args.format,
        robot=args.robot or (args.check_task.split("/")[0] if args.check_task else None),
    )
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0


def dataset_info(args) -> int:
    from vla_sdk.data.info import dataset_info, format_info

    info = dataset_info(args.path)
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0


def dataset_validate(args) -> int:
    from vla_sdk.data.validate import validate

    problems = validate(args.path)
    errors = [p for p in problems if p.severity == "error"]
    if args.json:
        print(json.dumps({"ok": not errors, "problems": [vars(p) for p in problems]}, indent=2))
    else:
        for p in problems:
            print(p)
        print(
            f"{args.path}: {'valid' if not errors else f'{len(errors)} error(s)'}"
            + (f", {len(problems) - len(errors)} warning(s)" if len(problems) > len(errors) else "")
        )
    return 0 if not errors else 1


def dataset_convert(args) -> int:
    from vla_sdk.data.convert import convert_aloha_hdf5

    if args.src_format == "lerobot-v2.1":
        from vla_sdk.data.lerobot_v21 import convert_lerobot_v21

        summary = convert_lerobot_v21(args.src, args.out, force=args.force)
        if args.json:
            print(json.dumps(summary, indent=2))
        else:
            print(
                f"{summary['dataset']}: {summary['episodes']} episodes, {summary['frames']} frames, "
                f"{len(summary['tasks'])} task(s) from {summary['format']} {summary['source']} "
                f"in {summary['seconds']:.1f} s"
            )
        return 0
    if not args.task_instruction:
        raise UsageError("--from aloha-hdf5 needs --task-instruction")
    summary = convert_aloha_hdf5(
        args.src,
        args.out,
        task_instruction=args.task_instruction,
        fps=args.fps,
        image_size=tuple(args.image_size) if args.image_size else None,
        cameras=args.cameras,
        jpeg_rgb=args.jpeg_rgb,
        force=args.force,
        progress=sys.stderr.isatty(),
    )
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"{summary['dataset']}: {summary['episodes']} episodes, {summary['frames']} frames from "
            f"{summary['source']} (cameras {', '.join(summary['cameras'])} at "
            f"{summary['image_size'][0]}x{summary['image_size'][1]}) in {summary['seconds']:.1f} s"
        )
        if summary["ignored"]:
            print(f"not converted: {', '.join(summary['ignored'])}")
        if summary["gripper_values_outside_0_1"]:
            print(f"note: {summary['gripper_values_outside_0_1']} gripper values lie outside [0, 1] (not clipped)")
    return 0


def dataset_viz(args) -> int:
    from vla_sdk.data.viz import render_episode_video, stream_episode_rerun

    if args.rerun or args.rerun_save:
        if args.out:
            raise UsageError("--out names the mp4; with --rerun the episode goes to Rerun (--rerun-save FILE: a file)")
        r = stream_episode_rerun(args.path, args.episode, cameras=args.cameras, save=args.rerun_save)
        where = r["out"] or "the Rerun viewer"
        print(f"{where}: episode {r['episode']}, {r['frames']} frames at {r['fps']} fps, cameras {r['cameras']}")
        return 0
    out = args.out or Path("out") / f"{args.path.resolve().name}_ep{args.episode}.mp4"
    r = render_episode_video(args.path, args.episode, out, cameras=args.cameras, plot_height=args.plot_height)
    print(f"{r['out']}: episode {r['episode']}, {r['frames']} frames at {r['fps']} fps, {r['size'][1]}x{r['size'][0]}")
    return 0
