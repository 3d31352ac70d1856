"""The `vla` command line: argument parsing only; the work happens in the modules it calls."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import traceback
from pathlib import Path

from vla_sdk import __version__, commands, compile_cache
from vla_sdk.data.record_config import TELEOPS, RecordConfig
from vla_sdk.errors import EXIT_BUG, EXIT_INTERRUPTED, VlaError
from vla_sdk.train.config import FINETUNE, TrainConfig

EXAMPLES = {
    "doctor": "example:\n  vla doctor          # JAX, MuJoCo, headless rendering, video encoding\n  vla doctor --json",
    "sim list": "example:\n  vla sim list\n  vla sim list --robot fr3 --json",
    "sim run": (
        "examples:\n"
        "  vla sim run aloha2/transfer_cube                      # one scripted episode, video in out/\n"
        "  vla sim run fr3/pick_place --episodes 20 --json --no-video\n"
        "  vla sim run aloha2/insertion --seed 100 --episodes 3 --video-episodes 3 --video ins.mp4"
    ),
    "record": (
        "examples:\n"
        "  vla record aloha2/transfer_cube --teleop scripted --episodes 50 --out demos/transfer_cube\n"
        "  vla record aloha2/transfer_cube --episodes 50 --out demos/transfer_cube --resume   # after a crash\n"
        "  vla record aloha2/transfer_cube --teleop replay --source demos/transfer_cube --episodes 5 --out /tmp/r\n"
        "  vla record fr3/pick_place --teleop keyboard --episodes 10 --out demos/my_pick_place\n"
        "  vla record aloha2/transfer_cube --robot aloha2-emulated --teleop leader --episodes 3 --out /tmp/lead\n"
        "  vla record aloha2/transfer_cube --robot ~/aloha2.json --teleop leader --episodes 50 --episode-seconds 20"
    ),
    "train": (
        "examples:\n"
        "  vla train --data demos/aloha2_transfer_cube --preset vla-s --out runs/tc --steps 20000 --batch-size 64\n"
        "  vla train --data demos/aloha2_transfer_cube --out runs/tc --resume          # after any interruption\n"
        "  vla train --data demos/fr3_pick_place --base runs/tc --out runs/fr3 --time-budget 48h \\\n"
        "      --val-episodes 5 --eval-task fr3/pick_place --eval-every 2000\n"
        "  vla train --data ~/lerobot_ds --robot so100.json --out runs/so100   # a lerobot dataset, its robot declared"
    ),
    "eval": (
        "examples:\n"
        "  vla eval runs/tc --task aloha2/transfer_cube --episodes 50 --workers 2 --video-dir out/eval --json\n"
        "  vla eval runs/tc --replay demos/transfer_cube          # offline: predicted chunks vs recorded actions\n"
        "  vla eval runs/fr3 --env-map my_env.json --episodes 20   # a third-party gymnasium env\n"
        "  vla eval runs/tc --replay demos/transfer_cube --episodes 5 --seed 0   # replay dataset episodes 0-4\n"
        "  vla eval runs/tc --task aloha2/transfer_cube --episodes 20 --video-dir out/eval   # + out/eval/report.html"
    ),
    "plot": "example:\n  vla plot runs/tc     # runs/tc/curves.png: loss, validation loss, sim success vs step",
    "run": (
        "examples:\n"
        "  vla run runs/tc --task aloha2/transfer_cube --video out/run.mp4   # as `vla eval` measured it (receding)\n"
        "  vla run runs/tc --task aloha2/transfer_cube --execution async --execute 20\n"
        "  vla run --server ws://127.0.0.1:8000 --task aloha2/transfer_cube   # a policy served by `vla serve`\n"
        "  vla run runs/tc --task aloha2/transfer_cube --robot aloha2-emulated --max-seconds 60   # emulated buses\n"
        "  vla run runs/tc --task aloha2/transfer_cube --robot ~/aloha2.json   # a robot config file (real arms)"
    ),
    "robot emulate": (
        "examples:\n"
        "  vla robot emulate aloha2 --dir /tmp/aloha   # emulated buses + /tmp/aloha/robot.json, until Ctrl-C\n"
        "  vla run runs/tc --task aloha2/transfer_cube --robot /tmp/aloha/robot.json   # in another terminal"
    ),
    "serve": (
        "examples:\n"
        "  vla serve runs/tc                                  # ws://127.0.0.1:8000, health check at /healthz\n"
        "  vla serve tc_int8.vla --host 0.0.0.0 --port 8000 --token $(openssl rand -hex 16)   # from other machines\n"
        "  # a robot wired for openpi connects unchanged:\n"
        '  #   WebsocketClientPolicy(host="gpu-box", port=8000, api_key=TOKEN).infer(\n'
        '  #       {"images": {"cam_high": img}, "state": q, "prompt": "pick up the cube"})["actions"]\n'
        "  vla run --server ws://127.0.0.1:8000 --task aloha2/transfer_cube   # drive the sim from a served policy"
    ),
    "export": (
        "examples:\n"
        "  vla export runs/tc --quantize int8 --out tc_int8.vla     # reports the action error vs the float policy\n"
        "  vla export runs/tc --quantize int4 --out tc_int4.vla --check-task aloha2/transfer_cube --episodes 20\n"
        "  vla eval tc_int8.vla --task aloha2/transfer_cube          # an artifact runs wherever a checkpoint does\n"
        "  vla export runs/tc --format onnx --quantize int8 --out tc_onnx.vla   # ONNX Runtime instead of JAX"
    ),
    "dataset": (
        "examples:\n  vla dataset info demos/transfer_cube [--json]\n  vla dataset validate demos/transfer_cube"
    ),
    "dataset convert": (
        "examples:\n"
        "  vla dataset convert --from aloha-hdf5 ~/aloha_data/transfer_cube --out demos/aloha_transfer_cube \\\n"
        '      --task-instruction "pick up the cube and hand it over" --image-size 128 128\n'
        "  vla dataset convert --from lerobot-v2.1 ~/lerobot_data/koch_pick_place --out data/koch_pick_place"
    ),
    "dataset viz": (
        "examples:\n"
        "  vla dataset viz demos/transfer_cube --episode 3 --out ep3.mp4\n"
        "  vla dataset viz demos/transfer_cube --episode 3 --rerun              # the Rerun viewer (extra: rerun)\n"
        "  vla dataset viz demos/transfer_cube --episode 3 --rerun-save ep3.rrd   # a recording: rerun ep3.rrd"
    ),
}


def _config_defaults(parser: argparse.ArgumentParser, config, skip: tuple[str, ...] = ()) -> None:
    """The defaults of the flags that fill ``config`` are its dataclass field defaults: one place, no drift
    (tests/test_cli_defaults.py checks every subcommand against its config)."""
    dests = {a.dest for a in parser._actions}
    parser.set_defaults(
        **{
            f.name: f.default
            for f in dataclasses.fields(config)
            if f.name in dests and f.name not in skip and f.default is not dataclasses.MISSING
        }
    )


def given_options(options: dict[str, str], argv: list[str]) -> set[str]:
    """The dests of the ``options`` ({option string: dest}) given in ``argv``, spelled whole or as an unambiguous
    prefix (as argparse accepts them): what the user chose, as opposed to a default."""
    given = set()
    for tok in argv:
        if tok == "--":
            break
        name = tok.split("=", 1)[0]
        if not name.startswith("--"):
            continue
        matches = [name] if name in options else [o for o in options if o.startswith(name)]
        if len(matches) == 1:
            given.add(options[matches[0]])
    return given


def _parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(
        prog="vla",
        description="vla-sdk: record demonstrations, fine-tune compact VLA policies, evaluate them in MuJoCo.",
        formatter_class=fmt,
        epilog="run `vla COMMAND --help` for a command's options and an example",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    doc = sub.add_parser(
        "doctor",
        help="check the install: JAX devices, MuJoCo, headless rendering, video codec",
        epilog=EXAMPLES["doctor"],
        formatter_class=fmt,
    )
    doc.add_argument("--json", action="store_true", help="print the checks as a JSON object")

    sim = sub.add_parser(
        "sim",
        help="simulated robots and tasks",
        formatter_class=fmt,
        epilog=EXAMPLES["sim list"] + "\n" + EXAMPLES["sim run"],
    )
    simsub = sim.add_subparsers(dest="sim_command", metavar="SUBCOMMAND", required=True)
    sl = simsub.add_parser("list", help="list robots and tasks", epilog=EXAMPLES["sim list"], formatter_class=fmt)
    sl.add_argument("--robot", help="only this robot's tasks")
    sl.add_argument("--json", action="store_true", help="print a JSON list")

    sr = simsub.add_parser(
        "run", help="roll out a policy in a task and write a video", epilog=EXAMPLES["sim run"], formatter_class=fmt
    )
    sr.add_argument("task", metavar="ROBOT/TASK", help="e.g. aloha2/transfer_cube (see `vla sim list`)")
    sr.add_argument("--policy", default="scripted", help="scripted (the task's expert) or hold (do nothing)")
    sr.add_argument("--episodes", type=int, default=1, help="number of episodes (default 1)")
    sr.add_argument("--seed", type=int, default=0, help="seed of the first episode; episode i uses seed+i")
    sr.add_argument("--video", type=Path, help="mp4 path (default out/<robot>_<task>.mp4)")
    sr.add_argument("--no-video", action="store_true", help="write no video (fastest)")
    sr.add_argument("--video-episodes", type=int, default=1, help="how many of the first episodes to film")
    sr.add_argument(
        "--video-size",
        type=int,
        nargs=2,
        default=(180, 240),
        metavar=("H", "W"),
        help="per-camera video frame size (default 180 240); cameras are tiled",
    )
    sr.add_argument("--json", action="store_true", help="print a JSON summary (success_rate, episodes, ...)")

    rec = sub.add_parser(
        "record",
        help="record demonstrations into a dataset (LeRobot v3.0 layout)",
        epilog=EXAMPLES["record"],
        formatter_class=fmt,
    )
    rec.add_argument("task", metavar="ROBOT/TASK", help="e.g. aloha2/transfer_cube (see `vla sim list`)")
    rec.add_argument(
        "--teleop",
        choices=TELEOPS,
        help="who drives: the task's scripted expert, a person at the keyboard, or a dataset's actions "
        "(default %(default)s)",
    )
    rec.add_argument("--episodes", type=int, help="episodes the dataset should hold (default %(default)s)")
    rec.add_argument("--out", type=Path, help="dataset folder (default demos/<robot>_<task>)")
    rec.add_argument("--resume", action="store_true", help="continue an interrupted recording in --out")
    rec.add_argument("--fps", type=int, help="recording and control rate (default: the robot's control rate)")
    rec.add_argument("--seed", type=int, help="episode k uses seed + k (default %(default)s)")
    rec.add_argument("--cameras", nargs="+", help="cameras to record (default: all of the robot's)")
    rec.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"), help="image size (default: robot's)")
    rec.add_argument("--source", type=Path, help="--teleop replay: the dataset whose actions are re-executed")
    rec.add_argument("--only-success", action="store_true", help="scripted: keep only successful episodes")
    rec.add_argument(
        "--action-noise",
        type=float,
        metavar="RAD",
        help="scripted: execute the expert's arm actions plus slowly varying noise of this std (rad) and record "
        "the clean actions (DART: demonstrations that show corrections; try 0.02; default %(default)s: none)",
    )
    rec.add_argument("--force", action="store_true", help="delete an existing dataset at --out and start over")
    rec.add_argument(
        "--ignore-checksums",
        action="store_true",
        help="--resume: continue even if committed files fail their SHA-256 checksums (default: refuse, naming them)",
    )
    rec.add_argument(
        "--robot",
        help="leader: the robot to record from: aloha2-emulated or a robot config file (default %(default)s)",
    )
    rec.add_argument(
        "--episode-seconds", type=float, help="leader: seconds per episode (default: the task's time limit)"
    )
    rec.add_argument("--json", action="store_true", help="print a JSON summary")
    _config_defaults(rec, RecordConfig)

    tr = sub.add_parser(
        "train",
        help="fine-tune a VLA policy on recorded demonstrations (resumable)",
        epilog=EXAMPLES["train"],
        formatter_class=fmt,
    )
    tr.add_argument(
        "--data",
        type=Path,
        action="append",
        required=True,
        metavar="DIR",
        help="dataset folder; repeat for several datasets, of one robot or several (each robot keeps its own "
        "statistics, action dims and cameras)",
    )
    tr.add_argument(
        "--data-weights",
        type=float,
        nargs="+",
        metavar="W",
        help="each --data folder's relative share of a batch, in --data order (default: every frame equally likely)",
    )
    tr.add_argument("--out", type=Path, required=True, metavar="RUN", help="run folder for checkpoints and metrics")
    src = tr.add_mutually_exclusive_group()
    src.add_argument(
        "--preset",
        help="model preset to train from scratch (vla-tiny, vla-xs, vla-s, vla-m, vla-base; default vla-m, or the "
        "shipped base vla-base when this build carries one)",
    )
    tr.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="change one field of the preset's (or --base checkpoint's) model config, e.g. --model image_size=96 "
        "--model horizon=30; on a base, weights whose shape changes are re-initialised (the log names them)",
    )
    src.add_argument("--base", type=Path, help="checkpoint (run or step folder) to fine-tune")
    tr.add_argument(
        "--robot",
        help="the data's robot, for datasets that do not declare one (LeRobot's): aloha2, fr3, or a JSON file "
        "declaring the robot's joints (docs/datasets.md; default: what the data declares)",
    )
    tr.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    tr.add_argument("--steps", type=int, help="optimizer steps (default %(default)s)")
    tr.add_argument("--batch-size", type=int, help="global batch size (default %(default)s)")
    tr.add_argument("--lr", type=float, help="peak learning rate (default %(default)s)")
    tr.add_argument(
        "--finetune",
        choices=FINETUNE,
        help="which weights learn: all, LoRA adapters + action head, or the action head (default %(default)s)",
    )
    tr.add_argument("--lora-rank", type=int, help="rank of the LoRA adapters (default %(default)s)")
    tr.add_argument(
        "--val-episodes", type=int, help="episodes per dataset held out for validation loss (default %(default)s)"
    )
    tr.add_argument(
        "--eval-task",
        help="ROBOT/TASK evaluated in sim during training (each evaluated checkpoint as `vla eval` would); RUN/best "
        "keeps the checkpoint with the highest success rate (the latest of equals)",
    )
    tr.add_argument(
        "--eval-every",
        type=int,
        help="steps between sim evaluations, each with a checkpoint (default: with --eval-task, every checkpoint)",
    )
    tr.add_argument("--eval-episodes", type=int, help="episodes per sim evaluation (default %(default)s)")
    tr.add_argument(
        "--eval-max-steps", type=int, help="cap on each evaluation episode's control steps (default: the task's)"
    )
    tr.add_argument(
        "--ignore-checksums",
        action="store_true",
        help="train on a dataset whose committed files fail their content checksums (refused by default)",
    )
    tr.add_argument("--save-every", type=int, help="steps between checkpoints (default %(default)s)")
    tr.add_argument("--keep", type=int, help="checkpoints kept besides the best (default %(default)s)")
    tr.add_argument("--log-every", type=int, help="steps between metric lines (default %(default)s)")
    tr.add_argument(
        "--time-budget",
        help="wall-clock budget, e.g. 48h or 90m: the step count (at most --steps) and the "
        "learning-rate schedule are fitted to it, again at checkpoints if the pace changes",
    )
    tr.add_argument("--seed", type=int, help="seed of the initialization, data order and noise (default %(default)s)")
    tr.add_argument("--no-augment", action="store_true", help="no image augmentation")
    tr.add_argument(
        "--max-shift",
        type=int,
        help="random image shift in pixels (default: image size / 16; 0: colour jitter only, for fixed cameras "
        "whose policy must localize objects precisely)",
    )
    tr.add_argument(
        "--state-noise",
        type=float,
        help="std of noise on the normalized robot state while training (e.g. 0.2): makes the policy use its "
        "cameras instead of extrapolating the demonstration from the arm's pose (default %(default)s)",
    )
    tr.add_argument(
        "--execute",
        type=int,
        metavar="K",
        help="actions of each chunk a runner executes before replanning, stored with the checkpoints and exports "
        "as the default of `vla eval`/`vla run`/`vla export --check-task` (default: the --base's, else the whole "
        "chunk)",
    )
    tr.add_argument(
        "--env-state-weight",
        type=float,
        metavar="W",
        help="also regress the recorded object positions (observation.environment_state, which `vla record` stores "
        "in simulation) from the cameras, with this loss weight (e.g. 1): a training-only target that teaches the "
        "cameras where the objects are; the policy never reads it (default %(default)s: off)",
    )
    tr.add_argument(
        "--state-dropout",
        type=float,
        help="fraction of training samples shown without the robot state (e.g. 0.3): those must be predicted from "
        "the cameras alone, which then learn where the objects are instead of leaving it to the state "
        "(default %(default)s)",
    )
    tr.add_argument(
        "--delta-actions",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="predict arm actions relative to the current state (grippers stay absolute), as openpi does for "
        "joint-space arms; the choice travels in the checkpoint (default: as the --base checkpoint was trained, "
        "delta without one)",
    )
    tr.add_argument(
        "--max-episodes",
        type=int,
        metavar="K",
        help="train on the first K episodes of each dataset only (after any --val-episodes; default: all)",
    )
    tr.add_argument(
        "--demos-curve",
        type=int,
        nargs="+",
        metavar="K",
        help="do I have enough demonstrations? one run per count K on the first K episodes (nested subsets), each "
        "evaluated on --eval-task over --curve-episodes unseen seeds: RUN/demos_K runs and RUN/demos_curve.{json,md,"
        "png} (success against demonstrations, 95%% intervals); resumable",
    )
    tr.add_argument(
        "--curve-episodes",
        type=int,
        default=50,
        help="evaluation episodes per count of --demos-curve (default %(default)s)",
    )
    tr.add_argument("--dtype", choices=["float32", "bfloat16"], help="compute dtype (default: bf16 on GPU, fp32 CPU)")
    tr.add_argument("--cache-dir", type=Path, help="decoded-frame cache (default ~/.cache/vla-sdk/frames)")
    tr.add_argument(
        "--distributed",
        action="store_true",
        help="multi-host: call jax.distributed.initialize() (reads JAX_COORDINATOR_ADDRESS etc.)",
    )
    tr.add_argument("--json", action="store_true", help="print a JSON summary")
    _config_defaults(tr, TrainConfig, skip=("preset", "model"))
    tr.set_defaults(options={o: a.dest for a in tr._actions for o in a.option_strings})  # for given_options

    ev = sub.add_parser(
        "eval",
        help="success rate of a policy in simulation (or offline replay of a dataset)",
        epilog=EXAMPLES["eval"],
        formatter_class=fmt,
    )
    ev.add_argument("policy", metavar="POLICY", help="training run folder, checkpoint folder or exported artifact")
    where = ev.add_mutually_exclusive_group(required=True)
    where.add_argument("--task", help="ROBOT/TASK to evaluate in")
    where.add_argument(
        "--env-map",
        type=Path,
        help="JSON mapping for a third-party gymnasium env: cameras, state, joint order/units, success "
        "(fields: docs/evaluation.md, vla_sdk/envmap.py)",
    )
    where.add_argument("--replay", type=Path, metavar="DATASET", help="offline: compare chunks with recorded actions")
    # numpy only (no flax, no mujoco). The eval flags default to None, not to EvalConfig's values: --replay has
    # defaults of its own and refuses the flags it does not use, so it must see which were given; the help shows
    # EvalConfig's defaults, which apply to the rest.
    from vla_sdk.eval_config import EvalConfig
    from vla_sdk.runner import STRATEGIES, RunnerConfig

    ev.add_argument(
        "--episodes",
        type=int,
        help=f"episodes (default {EvalConfig.episodes}); with --replay: replay the dataset's first N episodes "
        "(default all)",
    )
    ev.add_argument(
        "--seed",
        type=int,
        help=f"episode i uses seed + i (default {EvalConfig.seed}); with --replay: dataset episode k is replayed "
        "with the policy's sampling noise seeded seed + k (default 0)",
    )
    ev.add_argument(
        "--workers",
        type=int,
        help=f"parallel worker processes (default {EvalConfig.workers}; --replay runs in one process)",
    )
    ev.add_argument(
        "--video-dir",
        type=Path,
        help=f"videos of the first {EvalConfig.video_first} episodes and of failures (--env-map: the env's cameras)",
    )
    ev.add_argument(
        "--execution",
        choices=STRATEGIES,
        help=f"how chunks become actions (default {EvalConfig.execution})",
    )
    ev.add_argument(
        "--execute", type=int, help="actions executed per chunk (default: as trained with --execute, else half)"
    )
    ev.add_argument(
        "--delay-steps", type=int, help="async: simulated inference delay in control steps (default: measured once)"
    )
    ev.add_argument(
        "--task-var",
        action="append",
        metavar="NAME=VALUE",
        help="fix a task variable in every episode, e.g. --task-var color=blue on a pick_color task (the scenes "
        "are those of the same seeds; success is judged for the value set)",
    )
    ev.add_argument(
        "--instruction",
        help="every episode's instruction instead of the task's phrasings, e.g. 'grab the {color} block and bin "
        "it' ({color}: the episode's); for trying phrasings the policy never saw",
    )
    ev.add_argument(
        "--max-steps",
        type=int,
        help="episode length in control steps, below or above the task's limit (default: that limit)",
    )
    ev.add_argument(
        "--report",
        type=Path,
        metavar="FILE",
        help="write a self-contained HTML report (success rate and interval, episodes, latency, video links) "
        "(default: VIDEO_DIR/report.html with --video-dir, else none)",
    )
    ev.add_argument("--json", action="store_true", help="print a JSON summary")

    pl = sub.add_parser(
        "plot",
        help="draw a training run's curves (loss, validation loss, sim success) to a PNG",
        epilog=EXAMPLES["plot"],
        formatter_class=fmt,
    )
    pl.add_argument("run", type=Path, metavar="RUN", help="training run folder (`vla train --out RUN`)")
    pl.add_argument("--out", type=Path, metavar="FILE", help="PNG to write (default RUN/curves.png)")

    rn = sub.add_parser(
        "run",
        help="run a policy live, paced at the robot's control rate (sim for now)",
        epilog=EXAMPLES["run"],
        formatter_class=fmt,
    )
    rn.add_argument(
        "policy", metavar="POLICY", nargs="?", help="training run folder, checkpoint folder or exported artifact"
    )
    rn.add_argument(
        "--server", metavar="URL", help="instead of POLICY: a policy served by `vla serve` (ws://HOST:PORT)"
    )
    rn.add_argument("--token", help="--server: the server's token (default: $VLA_SERVE_TOKEN)")
    rn.add_argument("--task", required=True, help="ROBOT/TASK: the robot and the instruction (and a twin's scene)")
    rn.add_argument(
        "--robot",
        default="sim",
        help="sim (the task's simulator), aloha2-emulated (emulated Dynamixel buses seen through the task's twin) "
        "or a robot config file (docs/robots-and-tasks.md) (default %(default)s)",
    )
    rn.add_argument("--seed", type=int, default=0)
    rn.add_argument(
        "--execution",
        choices=STRATEGIES,
        default=RunnerConfig.execution,
        help=f"how chunks become actions, as in `vla eval` (default {RunnerConfig.execution})",
    )
    rn.add_argument(
        "--execute", type=int, help="actions executed per chunk (default: as trained with --execute, else half)"
    )
    rn.add_argument("--video", type=Path, help="mp4 of the episode (default out/run_<robot>_<task>.mp4)")
    rn.add_argument("--max-seconds", type=float, help="stop after this long")
    rn.add_argument("--json", action="store_true", help="print a JSON summary")

    ex = sub.add_parser(
        "export",
        help="export a policy to one file (quantized weights + StableHLO) that runs without flax",
        epilog=EXAMPLES["export"],
        formatter_class=fmt,
    )
    ex.add_argument("policy", metavar="POLICY", help="training run folder or checkpoint folder")
    ex.add_argument(
        "--quantize",
        choices=["none", "bf16", "int8", "int4"],
        default="none",
        help="weight storage: float32, bfloat16, int8 per output channel, int4 per group of 32-128 input rows "
        "(docs/export.md; default none)",
    )
    ex.add_argument("--out", type=Path, required=True, metavar="FILE", help="artifact to write, e.g. policy.vla")
    ex.add_argument(
        "--format",
        choices=["stablehlo", "onnx"],
        default="stablehlo",
        help="the function's serialization: jax.export StableHLO (default; runs with jax) or an ONNX graph for "
        "onnxruntime (--quantize none or int8; needs pip install 'vla-sdk[onnx]'; docs/export.md)",
    )
    ex.add_argument(
        "--robot",
        help="the robot the artifact is for, when the checkpoint was trained for several (default: its only one)",
    )
    ex.add_argument("--check-task", metavar="ROBOT/TASK", help="also compare float vs exported success rates in sim")
    ex.add_argument("--episodes", type=int, default=10, help="episodes per policy for --check-task (default 10)")
    ex.add_argument("--execute", type=int, help="--check-task: actions executed per chunk (default: as trained)")
    ex.add_argument("--platforms", default="cpu,cuda", help="platforms to compile the function for (default cpu,cuda)")
    ex.add_argument("--json", action="store_true", help="print a JSON summary")

    sv = sub.add_parser(
        "serve",
        help="serve a policy over websockets with openpi's protocol (openpi-client connects unchanged)",
        description="Serve POLICY over websockets + msgpack as openpi's policy server does: the metadata first, then "
        "one {actions, server_timing} reply per observation {images, state, prompt}; a bad observation gets a text "
        "frame naming the field and the connection is closed (other clients are unaffected). GET /healthz answers "
        "200. Binding anything but loopback needs --token; clients send `Authorization: Api-Key TOKEN` "
        "(openpi-client: api_key=TOKEN).",
        epilog=EXAMPLES["serve"],
        formatter_class=fmt,
    )
    sv.add_argument("policy", metavar="POLICY", help="training run folder, checkpoint folder or exported artifact")
    sv.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    sv.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0: any free port)")
    sv.add_argument(
        "--token", help="required to bind a non-loopback --host; clients must send it (default: $VLA_SERVE_TOKEN)"
    )
    sv.add_argument("--prompt", help="instruction for requests that carry no prompt (default: such requests fail)")
    sv.add_argument("--seed", type=int, default=0, help="seed of the policy's sampling noise (default 0)")
    sv.add_argument("--robot", help="the robot to act for, when the policy was trained for several")
    sv.add_argument(
        "--max-message-mb", type=float, default=16.0, help="largest observation message accepted, MiB (default 16)"
    )
    sv.add_argument(
        "--rate-limit",
        type=float,
        default=100.0,
        help="requests per second per connection, bursts up to as many (default 100; 0: no limit)",
    )
    sv.add_argument(
        "--max-connections",
        type=int,
        default=128,
        help="open connections at once; more are refused with HTTP 503 (default 128; 0: no cap)",
    )
    sv.add_argument(
        "--idle-timeout",
        type=float,
        default=300.0,
        help="close a connection that sends no complete message for this many seconds, with an error frame and "
        "code 1008 (default 300; 0: never); the SDK's client reconnects on its next request",
    )
    sv.add_argument(
        "--handshake-timeout",
        type=float,
        default=10.0,
        help="drop a TCP connection that has not finished the websocket handshake within this many seconds "
        "(default 10)",
    )

    rb = sub.add_parser("robot", help="robots without hardware: emulated buses", formatter_class=fmt)
    rbsub = rb.add_subparsers(dest="robot_command", required=True, metavar="{emulate}")
    re_ = rbsub.add_parser(
        "emulate",
        help="emulated ALOHA 2 buses in this process and a robot config for them, until Ctrl-C",
        epilog=EXAMPLES["robot emulate"],
        formatter_class=fmt,
    )
    re_.add_argument("robot", choices=["aloha2"], help="the robot to emulate")
    re_.add_argument("--dir", type=Path, required=True, help="folder for robot.json and the calibration files")
    re_.add_argument("--leaders", action="store_true", help="emulate the leader arms too (for --teleop leader)")
    re_.add_argument(
        "--watchdog-s", type=float, default=0.5, help="the followers' bus watchdog, seconds (default %(default)s)"
    )
    re_.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl-C)")
    re_.add_argument("--json", action="store_true", help="print the watchdog events as JSON at the end")

    ds = sub.add_parser("dataset", help="inspect and check datasets", epilog=EXAMPLES["dataset"], formatter_class=fmt)
    dsub = ds.add_subparsers(dest="dataset_command", metavar="SUBCOMMAND", required=True)
    di = dsub.add_parser(
        "info",
        help="episodes, frames, features, tasks, success rate, size",
        epilog=EXAMPLES["dataset"],
        formatter_class=fmt,
    )
    di.add_argument("path", type=Path, metavar="DIR")
    di.add_argument("--json", action="store_true", help="print a JSON object")
    dv = dsub.add_parser(
        "validate", help="deep check; reports every problem found", epilog=EXAMPLES["dataset"], formatter_class=fmt
    )
    dv.add_argument("path", type=Path, metavar="DIR")
    dv.add_argument("--json", action="store_true", help="print a JSON object")
    dc = dsub.add_parser(
        "convert",
        help="convert episodes from another format (ALOHA/ACT HDF5, LeRobot v2.1) into a new dataset",
        epilog=EXAMPLES["dataset convert"],
        formatter_class=fmt,
    )
    dc.add_argument("src", type=Path, metavar="SRC", help="folder of episode_<k>.hdf5 files, or a LeRobot v2.1 dataset")
    dc.add_argument(
        "--from", dest="src_format", required=True, choices=["aloha-hdf5", "lerobot-v2.1"], help="format of SRC"
    )
    dc.add_argument("--out", type=Path, required=True, help="new dataset folder")
    dc.add_argument("--task-instruction", help="aloha-hdf5 (required): instruction stored with every episode")
    dc.add_argument("--fps", type=int, default=50, help="frame rate of the source (default 50: ALOHA's DT = 0.02)")
    dc.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"), help="resize cameras (default: as stored)")
    dc.add_argument("--cameras", nargs="+", help="cameras to convert (default: all but depth)")
    dc.add_argument("--jpeg-rgb", action="store_true", help="JPEG frames hold true RGB (default: cv2.imencode order)")
    dc.add_argument("--force", action="store_true", help="delete an existing dataset at --out first")
    dc.add_argument("--json", action="store_true", help="print a JSON summary")
    dz = dsub.add_parser(
        "viz",
        help="render an episode to mp4: cameras tiled above state/action curves",
        epilog=EXAMPLES["dataset viz"],
        formatter_class=fmt,
    )
    dz.add_argument("path", type=Path, metavar="DIR")
    dz.add_argument("--episode", type=int, default=0, help="episode index (default 0)")
    dz.add_argument("--out", type=Path, help="mp4 path (default out/<dataset>_ep<K>.mp4)")
    dz.add_argument("--cameras", nargs="+", help="cameras to show (default: all)")
    dz.add_argument("--plot-height", type=int, default=160, help="height of the curve panel in pixels (default 160)")
    dz.add_argument(
        "--rerun",
        action="store_true",
        help="stream the episode to a new Rerun viewer instead of writing an mp4 (pip install 'vla-sdk[rerun]')",
    )
    dz.add_argument(
        "--rerun-save",
        type=Path,
        metavar="FILE",
        help="write the Rerun recording to FILE (.rrd; open it with `rerun FILE`)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering, before anything imports mujoco
    args = _parser().parse_args(argv)  # usage errors exit 2 here
    args.given = given_options(getattr(args, "options", {}), sys.argv[1:] if argv is None else list(argv))
    compile_cache.enable()  # before anything imports jax
    try:
        return _dispatch(args)
    except VlaError as e:  # bad input or a refusal: one line that names what is wrong
        print(f"vla: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("vla: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:  # noqa: BLE001 - anything else is a bug: show it whole
        traceback.print_exc()
        print(
            f"vla: internal error: this is a bug in vla-sdk {__version__}, not a problem with your input. Please "
            "report it with the command you ran and the traceback above.",
            file=sys.stderr,
        )
        return EXIT_BUG


def _dispatch(args) -> int:
    handlers = {
        ("doctor", None): commands.doctor,
        ("sim", "list"): commands.sim_list,
        ("sim", "run"): commands.sim_run,
        ("record", None): commands.record,
        ("train", None): commands.train,
        ("eval", None): commands.eval_policy,
        ("plot", None): commands.plot_run,
        ("run", None): commands.run_policy,
        ("export", None): commands.export,
        ("serve", None): commands.serve,
        ("robot", "emulate"): commands.robot_emulate,
        ("dataset", "info"): commands.dataset_info,
        ("dataset", "validate"): commands.dataset_validate,
        ("dataset", "convert"): commands.dataset_convert,
        ("dataset", "viz"): commands.dataset_viz,
    }
    sub = getattr(args, f"{args.command}_command", None)
    return handlers[args.command, sub](args)


if __name__ == "__main__":
    sys.exit(main())
