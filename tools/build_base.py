"""Rebuild the shipped base policy, vla-base, in one command: record, train, evaluate, publish (weights + card).

    python tools/build_base.py                          # everything, resumable: run it again to go on
    python tools/build_base.py --time-budget 2h         # this session's share of the training (then save or publish)
    python tools/build_base.py --stage eval publish     # only some stages

Stages (each skips what is already done, so an interrupted build goes on where it stopped):

  record   scripted demonstrations of every task the base trains on (`vla sim list`: all but the held-out ones),
           each robot with its fixed camera at its native 240x320, DART noise 0.02 rad (every expert succeeds
           at least 72 % of the time under it, docs/robots-and-tasks.md), successes only (vla record TASK
           --only-success --action-noise ...), into
           DATA/<robot>_<task>
  train    one run on all of them (vla train --data ... --preset vla-base) until --steps in all sessions: an
           unfinished session is resumed; a new one (RUN/s2, ...) fine-tunes the one before it with a fresh
           schedule over the steps left (a warm restart). On a machine whose RUN is empty it starts from the base
           at DEST, published or saved by an earlier build anywhere (--from-scratch: not), and carries its card's
           session log, so a build spans machines: commit DEST after each session. Every session's wall time
           goes to RUN/build_sessions.jsonl
  save     training not finished: the slim checkpoint and a card marked "complete": false (no results) to DEST,
           for the next session, here or on another machine; `vla train` does not pick an incomplete base as its
           default. The default stages end with save instead of eval + publish while steps are left
  eval     every task, prompted only by its instruction, on unseen seeds (vla eval RUN --task T), kept in
           RUN/base_eval/<robot>_<task>.json
  publish  the slim checkpoint (EMA weights + meta, no optimizer state) to DEST/checkpoint and the model card to
           DEST/card.json: data per task, steps, hours, machine, per-task success with 95 % intervals, the
           recommended fine-tuning settings and the weights' SHA-256; prints the README's table

DEST defaults to the package's src/vla_sdk/bases/vla-base (the wheel carries it). The figures of the card are
this machine's; they are what `--base vla-base` users are told.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEST = ROOT / "src" / "vla_sdk" / "bases" / "vla-base"
CAMERAS = {"aloha2": ("cam_high",), "fr3": ("cam_external",)}  # one fixed camera per robot, as users have
# Demonstrations per task, per robot. The encoder learns where objects lie from as many layouts as it sees, and
# fr3's (a cube anywhere in 30x44 cm, the bin elsewhere) need more than aloha2's (15x20 cm): the vla-m encoder read
# from cam_external places the fr3 cube to 11.8 cm on unseen layouts after 50 layouts, 3.8 cm after 200, 1.6 cm
# after 480 (tools/probe_vision.py --train-layouts, docs/training.md); a fr3 demonstration records in ~1 s
EPISODES = {"aloha2": 50, "fr3": 200}
# What fine-tuning the base on 50-100 demonstrations of a new task uses (`vla train --base vla-base` without flags)
FINETUNE = {
    "steps": 3000,
    "batch_size": 32,
    "lr": 3e-4,
    "state_noise": 0.1,
    "state_dropout": 0.3,
    "max_shift": 0,
    "delta_actions": True,
}
STAGES = ("record", "train", "save", "eval", "publish")
SESSIONS = "build_sessions.jsonl"


def _machine() -> dict:
    from vla_sdk.doctor import cpu_name

    cpu = cpu_name()
    import jax

    return {"cpu": cpu, "cores": os.cpu_count(), "backend": jax.default_backend(), "python": platform.python_version()}


def _name(task: str) -> str:
    return task.replace("/", "_")


def record_stage(args, tasks, log) -> None:
    from vla_sdk.data.record import RecordConfig, record

    for task in tasks:
        robot = task.split("/")[0]
        out = Path(args.data) / _name(task)
        cfg = RecordConfig(
            task,
            out,
            episodes=args.episodes[robot],
            resume=out.exists(),
            cameras=CAMERAS[robot],
            image_size=tuple(args.image_size),
            only_success=True,
            action_noise=args.action_noise,
        )
        summary = record(cfg, progress=sys.stderr.isatty(), log=log)
        log(f"record {task}: {summary.get('episodes', args.episodes[robot])} episodes in {out}")


def _sessions(root) -> list[Path]:
    """The training sessions of a build, in order: RUN/s1, RUN/s2, ... (each after the first fine-tunes the one
    before it with a fresh schedule: a warm restart, so a build spans machines and sessions of any length)."""
    root = Path(root)
    return sorted((p for p in root.glob("s*") if p.name[1:].isdigit()), key=lambda p: int(p.name[1:]))


def _finished(run: Path) -> bool:
    cfg = json.loads((run / "config.json").read_text())["train"]
    steps = [int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit()]
    return bool(steps) and max(steps) >= cfg["steps"]


def _log(root) -> list[dict]:
    """Every session record of this build, those carried from earlier machines first."""
    path = Path(root) / SESSIONS
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln] if path.exists() else []


def _last_per_session(records: list[dict]) -> list[dict]:
    """The last record of each session (a resumed session is logged once per invocation, its steps cumulative)."""
    return list({r.get("session", r["run"]): r for r in records}.values())


def steps_done(root) -> int:
    return sum(r["steps"] for r in _last_per_session(_log(root)))


def _carry(args, log) -> Path | None:
    """On a machine with no session yet: the base an earlier build left at DEST (its checkpoint, to start from),
    its card's session log copied into this build's; None for a build from scratch."""
    from vla_sdk.bases import CARD, CHECKPOINT

    dest = Path(args.dest)
    if args.from_scratch or not (dest / CHECKPOINT).is_dir() or not (dest / CARD).is_file():
        return None
    card = json.loads((dest / CARD).read_text())
    Path(args.run).mkdir(parents=True, exist_ok=True)
    have = {r.get("session") for r in _log(args.run)}
    with (Path(args.run) / SESSIONS).open("a") as f:
        for rec in card.get("sessions", []):
            if rec.get("session") not in have:
                f.write(json.dumps(rec) + "\n")
    log(f"train: going on from the base at {dest} ({card.get('training', {}).get('steps', '?')} steps so far)")
    return dest / CHECKPOINT


def train_stage(args, tasks, log) -> dict | None:
    from vla_sdk.train.config import TrainConfig, parse_duration
    from vla_sdk.train.loop import train

    sessions = [s for s in _sessions(args.run) if (s / "config.json").exists()]
    last = sessions[-1] if sessions else None
    resume = last is not None and not _finished(last)
    run = last if resume else Path(args.run) / f"s{len(sessions) + 1}"
    base = None if resume else (last or _carry(args, log))
    current = (run / "build_session").read_text().strip() if resume and (run / "build_session").exists() else None
    done = sum(r["steps"] for r in _last_per_session(_log(args.run)) if r.get("session") != current)
    if done >= args.steps:
        log(f"train: {done} of --steps {args.steps} done; nothing to train")
        return None
    if not resume:
        run.mkdir(parents=True, exist_ok=True)
        (run / "build_session").write_text(uuid.uuid4().hex + "\n")
    cfg = TrainConfig(
        data=tuple(str(Path(args.data) / _name(t)) for t in tasks),
        out=str(run),
        preset=None if base else args.preset,
        base=str(base) if base else None,
        steps=args.steps - done,
        batch_size=args.batch_size,
        lr=args.lr,
        state_noise=0.1,
        state_dropout=0.3,
        max_shift=0,
        delta_actions=True,
        execute=args.execute,
        save_every=args.save_every,
        keep=2,
        time_budget=parse_duration(args.time_budget),
        cache_dir=args.cache_dir,
    )
    log(f"train: {'resuming' if resume else 'starting'} {run}" + (f" from {base}" if base else ""))
    summary = train(cfg, resume=resume, progress=sys.stderr.isatty(), log=log)
    with (Path(args.run) / SESSIONS).open("a") as f:
        rec = {
            "session": (run / "build_session").read_text().strip(),
            "date": time.time(),
            "run": str(run),
            "machine": platform.node(),
            **{k: summary[k] for k in ("steps", "seconds", "stopped")},
        }
        f.write(json.dumps(rec) + "\n")
    return summary


def _latest_run(root) -> Path:
    sessions = [s for s in _sessions(root) if (s / "checkpoints").is_dir()]
    if not sessions:
        raise SystemExit(f"{root}: no training session yet (run the train stage)")
    return sessions[-1]


def eval_stage(args, tasks, log) -> dict:
    from vla_sdk.eval_config import EvalConfig
    from vla_sdk.evaluation import evaluate

    folder = Path(args.run) / "base_eval"
    folder.mkdir(parents=True, exist_ok=True)
    run = _latest_run(args.run)
    step = max(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit())
    results = {}
    for task in tasks:
        path = folder / f"{_name(task)}.json"
        if path.exists() and json.loads(path.read_text()).get("checkpoint") == f"{run.name}/{step}":
            results[task] = json.loads(path.read_text())
            continue
        ev = evaluate(
            EvalConfig(
                policy=str(run),
                task=task,
                episodes=args.eval_episodes,
                seed=args.eval_seed,
                workers=args.workers,
                max_steps=args.eval_max_steps,
            )
        )
        keep = {k: ev[k] for k in ("successes", "episodes", "success_rate", "ci95", "seconds")}
        results[task] = {
            "checkpoint": f"{run.name}/{step}",
            "seeds": [args.eval_seed, args.eval_seed + args.eval_episodes - 1],
            **keep,
        }
        path.write_text(json.dumps(results[task], indent=2) + "\n")
        log(f"eval {task}: {ev['successes']}/{ev['episodes']}")
    return results


def _write_base(args, tasks, results: dict | None, log) -> dict:
    """The slim checkpoint of the latest session and its card at DEST; ``results`` None: training goes on (the
    card says "complete": false and carries no results)."""
    from vla_sdk.bases import CARD, CHECKPOINT
    from vla_sdk.data.reader import Dataset
    from vla_sdk.train.checkpoint import write_slim

    dest = Path(args.dest)
    dest.mkdir(parents=True, exist_ok=True)
    tmp = dest / f".{CHECKPOINT}.new"
    shutil.rmtree(tmp, ignore_errors=True)
    meta = write_slim(_latest_run(args.run), tmp)
    shutil.rmtree(dest / CHECKPOINT, ignore_errors=True)
    tmp.rename(dest / CHECKPOINT)
    records = _log(args.run)
    data = {}
    for task in tasks:
        ds = Dataset(Path(args.data) / _name(task))
        data[task] = {
            "episodes": ds.num_episodes,
            "frames": ds.num_frames,
            "cameras": ds.cameras,
            "image_size": ds.features[f"observation.images.{ds.cameras[0]}"]["shape"][:2],
            "how": f"scripted expert, action noise {args.action_noise} rad, successes only",
        }
    rates = [r["success_rate"] for r in (results or {}).values()]
    card = {
        "name": DEST.name,  # the name the package loads it by, wherever this build writes it (--dest)
        "complete": results is not None,
        "sha256": meta["sha256"]["ema"],
        "preset": meta["train_config"].get("preset") or args.preset,
        "robots": sorted(meta.get("robots") or [meta["embodiment"]["name"]]),
        "size_bytes": sum(p.stat().st_size for p in (dest / CHECKPOINT).rglob("*") if p.is_file()),
        "data": data,
        "training": {
            "steps": sum(r["steps"] for r in _last_per_session(records)),
            "steps_goal": args.steps,
            "hours": round(sum(r["seconds"] for r in records) / 3600, 2),
            "sessions": len(_last_per_session(records)),
            "batch_size": meta["train_config"]["batch_size"],
            "lr": meta["train_config"]["lr"],
            "machine": _machine(),
            "date": datetime.date.today().isoformat(),
        },
        "results": results or {},
        "mean_success": sum(rates) / len(rates) if rates else None,
        "finetune": FINETUNE,
        "sessions": records,
    }
    (dest / CARD).write_text(json.dumps(card, indent=2) + "\n")
    what = "published" if results is not None else "saved (training goes on: commit it, run this again)"
    log(f"{what} {dest}: {card['size_bytes'] / 1e6:.1f} MB, sha256 {card['sha256'][:12]}...")
    return card


def save_stage(args, tasks, log) -> dict:
    return _write_base(args, tasks, None, log)


def publish_stage(args, tasks, results: dict, log) -> dict:
    card = _write_base(args, tasks, results, log)
    print(card_table(card))
    return card


def card_table(card: dict) -> str:
    """The README's table of a card."""
    lines = ["| task | demonstrations | success (base, no fine-tuning) | 95 % interval |", "|---|---|---|---|"]
    for task, r in card["results"].items():
        lo, hi = r["ci95"]
        n = card["data"].get(task, {}).get("episodes", "?")
        lines.append(
            f"| {task} | {n} | {r['success_rate']:.0%} ({r['successes']}/{r['episodes']}) | {lo:.0%}-{hi:.0%} |"
        )
    t = card["training"]
    lines.append(
        f"\n{t['steps']} steps in {t['hours']} h ({t['sessions']} session(s)) on {t['machine']['cores']} cores of "
        f"{t['machine']['cpu']} [{t['machine']['backend']}], {t['date']}; {card['size_bytes'] / 1e6:.1f} MB."
    )
    return "\n".join(lines)


def episodes_per_robot(items: list[str], error) -> dict[str, int]:
    """``--episodes`` items (``N``: every robot; ``ROBOT=N``: one) over the defaults of :data:`EPISODES`."""
    out = dict(EPISODES)
    for item in items:
        robot, _, n = item.rpartition("=")
        if robot and robot not in out:
            error(f"--episodes {item}: unknown robot {robot!r}; robots: {', '.join(out)}")
        if not n.isdigit() or int(n) < 1:
            error(f"--episodes {item}: expected a count >= 1 (N or ROBOT=N), got {n!r}")
        out.update({r: int(n) for r in ([robot] if robot else out)})
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    home = Path.home() / "vla-base-build"
    ap.add_argument(
        "--stage",
        nargs="+",
        choices=STAGES,
        help="stages to run (default: record train, then save while steps are left, else eval publish)",
    )
    ap.add_argument("--tasks", nargs="+", help="tasks to train on (default: every task that is not held out)")
    ap.add_argument("--data", default=str(home / "data"), help="demonstrations folder (default %(default)s)")
    ap.add_argument("--run", default=str(home / "run"), help="training run folder (default %(default)s)")
    ap.add_argument("--dest", default=str(DEST), help="where the base is published (default: the package's)")
    ap.add_argument(
        "--episodes",
        nargs="+",
        default=[],
        metavar="N|ROBOT=N",
        help="demonstrations per task: N for every robot, ROBOT=N for one\n(default "
        + " ".join(f"{r}={n}" for r, n in EPISODES.items())
        + ")",
    )
    ap.add_argument("--image-size", type=int, nargs=2, default=[240, 320], metavar=("H", "W"))
    ap.add_argument(
        "--action-noise", type=float, default=0.02, help="DART noise of the recording, rad (default %(default)s)"
    )
    ap.add_argument("--preset", default="vla-base")
    ap.add_argument("--steps", type=int, default=60_000, help="training steps in all sessions (default %(default)s)")
    ap.add_argument("--from-scratch", action="store_true", help="do not go on from the base at DEST")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--execute", type=int, default=None, help="actions per chunk the base executes (default: half)")
    ap.add_argument("--save-every", type=int, default=1000)
    ap.add_argument("--time-budget", help="this session's training budget, e.g. 2h (default: until --steps)")
    ap.add_argument("--cache-dir", default=None, help="decoded-frame cache")
    ap.add_argument("--eval-episodes", type=int, default=50)
    ap.add_argument("--eval-seed", type=int, default=1000, help="first evaluation seed (recording uses 0, 1, ...)")
    ap.add_argument("--eval-max-steps", type=int, default=None)
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = ap.parse_args(argv)
    args.episodes = episodes_per_robot(args.episodes, ap.error)
    from vla_sdk.sim.tasks import get_task, list_tasks

    tasks = args.tasks or list_tasks(held_out=False)
    held = [t for t in tasks if get_task(t).held_out]
    if held:
        ap.error(f"--tasks: {held} are held out of the base (they measure what it learns from few demonstrations)")

    def log(m):
        print(m, file=sys.stderr)

    out = {}
    stages = args.stage or ["record", "train"]
    if "record" in stages:
        record_stage(args, tasks, log)
    if "train" in stages:
        out["train"] = train_stage(args, tasks, log)
    if args.stage is None:
        left = args.steps - steps_done(args.run)
        stages += ["save"] if left > 0 else ["eval", "publish"]
        if left > 0:
            log(f"{left} of --steps {args.steps} left: saving the base to go on in the next session")
    if "save" in stages and "publish" not in stages:
        out["card"] = save_stage(args, tasks, log)
    if "eval" in stages or "publish" in stages:
        out["results"] = eval_stage(args, tasks, log)
    if "publish" in stages:
        out["card"] = publish_stage(args, tasks, out["results"], log)
    return out


if __name__ == "__main__":
    main()
