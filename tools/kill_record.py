"""Crash safety, measured: SIGKILL `vla record --resume` at random moments and check the dataset after every kill.

    python tools/kill_record.py --kills 100 --out /tmp/kill_record          # prints a JSON summary

Each cycle starts `vla record TASK --episodes N --out DIR --resume` as a child process, kills it with SIGKILL at a
random moment (seeded RNG) and then, before anything resumes it, runs `vla_sdk.data.validate.validate` on the
dataset as it lies. Kill moments are drawn from three kinds so that the short windows matter as much as the long
ones: ``launch`` (uniform delay after the start: startup, reopening and repairing), ``episode`` (uniform delay after
an episode begins: recording), ``commit`` (a few ms after the episode's data file is staged or a new meta/ is being
written: hashing, renames, the meta/ swap). A round ends when a child records the dataset to N episodes unkilled;
the next round starts a new dataset. Each kill strikes the episode being recorded first or the one after it (drawn),
so the recording advances between kills. Checked, and reported:

  invalid_after_kill   kills after which validate reported an error (must be 0)
  episodes_lost        committed episodes (seed, length, checksums) that a later kill saw changed or gone (must be 0)
  contiguous / seeds   episode indices 0..n-1 and seed = --seed + k for episode k, after every kill
  target_reached       every round's dataset ends with N episodes that validate

Startup: importing the SDK (MuJoCo, mink, JAX) takes seconds, most of each cycle. By default the children are
forked from one "zygote" process that has done those imports once (``--zygote``): each child is still a separate
process, running `vla_sdk.cli.main(["record", ...])` (what the `vla` entry point runs) and killed by a real SIGKILL;
only the Python imports are shared, nothing of the dataset or the simulator. ``--fresh-process`` runs every child as
``python -m vla_sdk.cli record ...`` from scratch instead.

``states`` counts what each kill left on disk (inside the meta/ commit, finished episode files not yet in meta/,
an episode being recorded, no dataset yet, other), showing which windows the kills actually hit.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from vla_sdk.data import layout as L
from vla_sdk.data.validate import validate

MODES = {"launch": 0.25, "episode": 0.35, "commit": 0.40}  # share of kills of each kind


def _committed(root: Path) -> list[dict] | None:
    """The episode rows meta/ commits (None: no dataset yet)."""
    if not (root / L.INFO_PATH).exists():
        return None
    return [
        {"seed": e["seed"], "length": e["length"], "sha256": e["sha256"], "index": e["episode_index"]}
        for e in L.read_episodes(root)
    ]


def _ino(path: Path) -> int | None:
    """The inode of ``path`` (None: absent); a file or folder made anew has a new one."""
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


def _snapshot(root: Path) -> set[tuple[str, int]]:
    """(path, inode) of the files and folders a recording makes: what is new after a kill is what it left."""
    globs = [f"{L.STAGING}/meta-*", f"{L.STAGING}/ep-*", f"{L.STAGING}/ep-*/*", "data/*/*", "videos/*/*/*"]
    return {(p.relative_to(root).as_posix(), _ino(p)) for g in globs for p in root.glob(g)}


def _state(root: Path, before: set[tuple[str, int]]) -> str:
    """What the kill left on disk: where in the recording it struck."""
    if not (root / L.INFO_PATH).exists():
        return "no_dataset"
    new = [path for path, _ in _snapshot(root) - before]
    n = len(L.read_episodes(root))
    keys = L.video_keys(L.read_info(root)["features"])
    if any(p.startswith(f"{L.STAGING}/meta-") for p in new):
        return "in_meta_commit"
    if set(new) & {rel for i in range(n, n + 2) for rel in L.episode_files(i, keys).values()}:
        return "files_not_in_meta"
    if any(p.startswith(f"{L.STAGING}/ep-") for p in new):
        return "in_episode"
    return "other"


def _appears(path: Path):
    """A test that is true once ``path`` exists anew (not as an earlier kill left it); call before the launch."""
    old = _ino(path)
    return lambda: _ino(path) not in (None, old)


def _wait_for(proc: subprocess.Popen, ready, timeout: float) -> bool:
    """Poll every ms until ``ready()``; False if the child exited (or the timeout passed) first."""
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        if proc.poll() is not None:
            return False
        if ready():
            return True
        time.sleep(0.001)
    return True


def zygote_loop() -> None:
    """The zygote: import what `vla record` imports, then for each request fork a child that runs it."""
    import vla_sdk.cli
    import vla_sdk.commands
    import vla_sdk.data.record
    import vla_sdk.sim  # noqa: F401 - the imports are the point

    for line in sys.stdin:
        req = json.loads(line)
        pid = os.fork()
        if pid == 0:
            os.setsid()
            null = os.open(os.devnull, os.O_RDWR)
            err = os.open(req["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(null, 0), os.dup2(null, 1), os.dup2(err, 2)
            code = 1
            try:
                code = vla_sdk.cli.main(req["argv"])
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
            except BaseException:  # noqa: BLE001 - reported as the child's exit code, with its traceback
                import traceback

                traceback.print_exc()
            finally:
                sys.stdout.flush(), sys.stderr.flush()
                os._exit(code or 0)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"pid": pid, "returncode": os.waitstatus_to_exitcode(status)}), flush=True)


class _Zygote:
    """A process that imported the SDK once and forks one `vla` child per request (JSON lines on its stdin/stdout)."""

    def __init__(self, env: dict):
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--zygote"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def start(self, argv: list[str], stderr: Path) -> _Forked:
        self.proc.stdin.write(json.dumps({"argv": argv, "stderr": str(stderr)}) + "\n")
        self.proc.stdin.flush()
        return _Forked(self.proc, json.loads(self.proc.stdout.readline())["pid"])

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


class _Forked:
    """A zygote's child, driven like a subprocess.Popen (poll, send_signal, wait, returncode)."""

    def __init__(self, zygote: subprocess.Popen, pid: int):
        self.zygote, self.pid, self.returncode = zygote, pid, None

    def poll(self) -> int | None:
        if self.returncode is None and select.select([self.zygote.stdout], [], [], 0)[0]:
            self.wait()
        return self.returncode

    def send_signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def wait(self) -> int:
        if self.returncode is None:
            self.returncode = json.loads(self.zygote.stdout.readline())["returncode"]
        return self.returncode


def run(
    out: Path,
    kills: int = 100,
    task: str = "fr3/pick_place",
    camera: str = "cam_external",
    image_size: tuple[int, int] = (24, 32),
    episodes: int = 4,
    seed: int = 0,
    rng_seed: int = 0,
    episode_seconds: float = 2.5,
    launch_seconds: float = 3.0,
    fresh_process: bool = False,
    verbose: bool = False,
) -> dict:
    """Kill `vla record` ``kills`` times; returns the summary (see the module doc)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(rng_seed)
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"), "PYTHONWARNINGS": "ignore"}
    summary = {
        "task": task,
        "episodes_per_round": episodes,
        "kills": 0,
        "kills_by_mode": dict.fromkeys(MODES, 0),
        "states": {},
        "invalid_after_kill": 0,
        "invalid_examples": [],
        "episodes_lost": 0,
        "not_contiguous": 0,
        "wrong_seeds": 0,
        "child_failures": [],
        "rounds": 0,
        "rounds_complete": 0,
        "episodes_committed": 0,
    }
    t0 = time.perf_counter()
    zygote = None if fresh_process else _Zygote(env)
    rnd, seen = 0, None  # seen: the episodes committed so far in this round's dataset (None: no dataset yet)

    def root() -> Path:
        return out / f"round-{rnd:03d}"

    def check(where: str) -> None:
        nonlocal seen
        problems = [str(p) for p in validate(root()) if p.severity == "error"]
        rows = _committed(root())
        if rows is None and seen is None:
            return  # killed before the dataset's first commit: nothing was ever recorded there
        if problems:
            summary["invalid_after_kill"] += 1
            summary["invalid_examples"] = (summary["invalid_examples"] + [f"{where}: {problems[:3]}"])[:5]
        rows = rows or []
        before = seen or []
        summary["episodes_lost"] += sum(1 for i, e in enumerate(before) if i >= len(rows) or rows[i] != e)
        summary["not_contiguous"] += [e["index"] for e in rows] != list(range(len(rows)))
        summary["wrong_seeds"] += [e["seed"] for e in rows] != [seed + k for k in range(len(rows))]
        summary["episodes_committed"] += max(0, len(rows) - len(before))
        seen = rows

    def launch() -> subprocess.Popen | _Forked:
        argv = ["record", task, "--episodes", str(episodes), "--out", str(root()), "--resume", "--seed", str(seed)]
        argv += ["--cameras", camera, "--image-size", *[str(s) for s in image_size]]
        if zygote is not None:
            return zygote.start(argv, out / "child-stderr.txt")
        cmd = [sys.executable, "-m", "vla_sdk.cli", *argv]
        with open(out / "child-stderr.txt", "wb") as log:  # a file, not a pipe: a full pipe would stall the child
            return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)

    def finished(proc: subprocess.Popen) -> None:
        nonlocal rnd, seen
        err = (out / "child-stderr.txt").read_text(errors="replace")
        if proc.returncode != 0:
            summary["child_failures"].append(f"round {rnd}: exit {proc.returncode}: {err[-400:]}")
            raise SystemExit(json.dumps(summary, indent=2))
        check(f"round {rnd} end")
        summary["rounds_complete"] += len(seen or []) == episodes
        rnd, seen = rnd + 1, None

    while summary["kills"] < kills:
        t_cycle = time.perf_counter()
        n = len(seen or [])
        k = n + rng.choice([0, 1])  # the episode whose recording or commit this kill strikes: some kills let one commit
        here = root()
        before = _snapshot(here)
        mode = rng.choices(list(MODES), weights=list(MODES.values()))[0]
        began = _appears(here / L.STAGING / f"ep-{k:06d}")  # episode k has begun
        staged = _appears(here / L.STAGING / f"ep-{k:06d}" / "data.parquet")  # episode k is being committed
        metas = {p for p, _ in before if p.startswith(f"{L.STAGING}/meta-")}

        def meta_commit(r=here, m=metas) -> bool:  # a meta/ commit began (the dataset's creation, a repair)
            return any(f"{L.STAGING}/{p.name}" not in m for p in (r / L.STAGING).glob("meta-*"))

        proc = launch()
        if mode == "launch":
            alive = _wait_for(proc, lambda: False, rng.uniform(0.0, launch_seconds))
        elif mode == "episode":
            alive = _wait_for(proc, began, 120.0)
            alive = alive and _wait_for(proc, lambda: False, rng.uniform(0.0, episode_seconds))
        else:
            alive = _wait_for(proc, lambda s=staged, m=meta_commit: s() or m(), 120.0)
            alive = alive and _wait_for(proc, lambda: False, rng.uniform(0.0, 0.03))
        if not alive:  # the child finished the round before this kill
            proc.wait()
            finished(proc)
            continue
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        summary["kills"] += 1
        summary["kills_by_mode"][mode] += 1
        state = _state(here, before)
        summary["states"][state] = summary["states"].get(state, 0) + 1
        check(f"kill {summary['kills']} ({mode}, {state})")
        if verbose:
            took = time.perf_counter() - t_cycle
            line = f"kill {summary['kills']}: {mode}, {state}, {len(seen or [])} committed, {took:.1f} s"
            print(line, file=sys.stderr)
    proc = launch()  # the last round: resume to the end, unkilled
    proc.wait()
    finished(proc)
    if zygote is not None:
        zygote.close()
    summary["rounds"] = rnd
    summary["target_reached"] = summary["rounds_complete"] == rnd
    summary["ok"] = (
        summary["target_reached"]
        and summary["invalid_after_kill"] == summary["episodes_lost"] == 0
        and summary["not_contiguous"] == summary["wrong_seeds"] == 0
    )
    summary["wall_seconds"] = round(time.perf_counter() - t0, 1)
    summary["seconds_per_kill"] = round(summary["wall_seconds"] / max(1, summary["kills"]), 2)
    summary["machine"] = f"{os.cpu_count()} CPU cores, {sys.platform}"
    summary["children"] = "fresh processes" if fresh_process else "forked from a zygote that imported the SDK"
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, help="folder for the datasets (one per round)")
    ap.add_argument("--kills", type=int, default=100)
    ap.add_argument("--task", default="fr3/pick_place")
    ap.add_argument("--camera", default="cam_external")
    ap.add_argument("--image-size", type=int, nargs=2, default=(24, 32), metavar=("H", "W"))
    ap.add_argument("--episodes", type=int, default=4, help="episodes per round's dataset")
    ap.add_argument("--seed", type=int, default=0, help="--seed of `vla record` (episode k uses seed + k)")
    ap.add_argument("--rng-seed", type=int, default=0, help="seed of the kill moments")
    ap.add_argument("--fresh-process", action="store_true", help="start each child as `python -m vla_sdk.cli`")
    ap.add_argument("--verbose", action="store_true", help="one line per kill on stderr")
    ap.add_argument("--zygote", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.zygote:
        zygote_loop()
        return 0
    if args.out is None:
        ap.error("--out is required")
    if any(args.out.glob("round-*")):
        raise SystemExit(f"{args.out} already holds rounds of an earlier run; choose a new --out")
    summary = run(
        args.out,
        kills=args.kills,
        task=args.task,
        camera=args.camera,
        image_size=tuple(args.image_size),
        episodes=args.episodes,
        seed=args.seed,
        rng_seed=args.rng_seed,
        fresh_process=args.fresh_process,
        verbose=args.verbose,
    )
    print(json.dumps(summary, indent=2))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
