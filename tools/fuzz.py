"""Fuzz the SDK's readers: damaged copies of a dataset, checkpoint or artifact through the user-facing entry points.

    python tools/fuzz.py --target datasets --cases 1000 --make /tmp/fuzz-inputs --out fuzz-datasets.json
    python tools/fuzz.py --target checkpoints --cases 200 --dataset D --checkpoint R/checkpoints/4 --artifact A.vla

Each case is one seeded damage (``--seed``, case index) of a copy of the pristine input: flipped bits, a zeroed
range, a truncation, appended garbage, a deleted file, an edited JSON value / type / key, an edited parquet value
(datasets), files swapped or copied between episodes (datasets), an entry dropped from the zip or an edited manifest
(artifacts). The entry points run in worker processes (each reads case paths from stdin and reports per entry on
stdout; a worker that dies or runs past ``--timeout`` is replaced):

    datasets     validate (`vla dataset validate --json`), info (`vla dataset info`), reader (``Dataset(p)`` and
                 every ``episode(k)``), verify (``Dataset(p).verify()``), loader (``FrameStore``), replay
                 (``evaluation.replay``, what `vla eval POLICY --replay DATASET` runs, with the pristine artifact)
    checkpoints  policy: ``Policy.load(p)`` and one inference
    artifacts    policy: ``Policy.load(p)`` and one inference

Each entry is classified ok / clear (an SDK error: exit 1 or 2 with one ``vla: error:`` line, or a validate report) /
traceback / crash (signal) / hang (timeout). For datasets, ``detected`` says whether validate named, as an error,
every data or video file whose bytes changed; for checkpoints and artifacts, ``undetected`` counts cases that loaded
and ran although a file carrying weights or meta had changed. The JSON report holds the counts, every case that was
not fine and the wall time; a summary table goes to stdout. Exit status 0 when no entry gave a traceback, crash or
hang and every damage that must be detected was.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import zipfile
from pathlib import Path

import numpy as np

TARGETS = ("datasets", "checkpoints", "artifacts")
ENTRIES = {
    "datasets": ("validate", "info", "reader", "verify", "loader", "replay"),
    "checkpoints": ("policy",),
    "artifacts": ("policy",),
}
DAMAGES = {
    "datasets": ("flip", "zero", "truncate", "garbage", "delete", "json", "parquet", "swap", "copy"),
    "checkpoints": ("flip", "zero", "truncate", "garbage", "delete", "json"),
    "artifacts": ("flip", "zero", "truncate", "garbage", "json", "drop_entry", "reorder"),
}
CLASSES = ("ok", "clear", "traceback", "crash", "hang")
WEIRD = [None, -1, 0, 1, -(10**12), 10**12, 10**30, 1.5, -0.5, float("nan"), "nonsense", "", True, [], {}, [1, "a"]]
WEIRD += [{"x": 1}, [[1, 2], [3]], "float32", "video", 3]


# ---- damage --------------------------------------------------------------------------------------------------------
def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]


def _json_paths(obj, prefix=()) -> list[tuple]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _json_paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:8]):
            out += _json_paths(v, (*prefix, i))
    return out


def _edit_json(obj, rng: np.random.Generator) -> tuple[object, str]:
    """A random edit of a value, type or key somewhere in ``obj``: (new object, what was done)."""
    paths = _json_paths(obj)
    path = paths[int(rng.integers(len(paths)))]
    if not path:
        return WEIRD[int(rng.integers(len(WEIRD)))], "replaced the whole document"
    parent = obj
    for k in path[:-1]:
        parent = parent[k]
    key, old = path[-1], parent[path[-1]]
    op = rng.choice(["value", "value", "type", "delete", "rename"]) if isinstance(parent, dict) else "value"
    where = "/".join(map(str, path))
    if op == "delete":
        del parent[key]
        return obj, f"deleted key {where}"
    if op == "rename":
        parent[f"{key}_x"] = parent.pop(key)
        return obj, f"renamed key {where}"
    if op == "type" and isinstance(old, int | float) and not isinstance(old, bool):
        parent[key] = str(old)
        return obj, f"{where}: number {old!r} -> string"
    if op == "type" and isinstance(old, str):
        parent[key] = len(old)
        return obj, f"{where}: string -> number"
    if isinstance(old, int | float) and not isinstance(old, bool) and rng.random() < 0.4:
        new = old * float(rng.choice([-1, 2, 1e6, 1e-6, 0]))
        new = int(new) if isinstance(old, int) and abs(new) < 1e18 else new
    else:
        new = WEIRD[int(rng.integers(len(WEIRD)))]
    parent[key] = new
    return obj, f"{where}: {old!r:.40} -> {new!r:.40}"


def _edit_parquet(path: Path, rng: np.random.Generator) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = pq.read_table(path)
    i = int(rng.integers(t.num_columns))
    name, col = t.column_names[i], t.column(i)
    op = rng.choice(["value", "value", "null", "string", "drop"])
    if op == "drop":
        t = t.remove_column(i)
    elif op == "string":
        t = t.set_column(i, name, pa.array([str(v) for v in col.to_pylist()], pa.string()))
    else:
        vals = col.to_pylist()
        if not vals:
            return "empty table, unchanged"
        r = int(rng.integers(len(vals)))
        if op == "null":
            vals[r] = None
        elif isinstance(vals[r], bool):
            vals[r] = not vals[r]
        elif isinstance(vals[r], int):
            vals[r] = int(rng.choice([-1, -(10**12), 10**12, vals[r] + 1, 2**62]))
        elif isinstance(vals[r], float):
            vals[r] = float(rng.choice([np.nan, -1.0, 1e30, np.inf, vals[r] + 0.5]))
        elif isinstance(vals[r], str):
            vals[r] = rng.choice(["", "nonsense", vals[r] + "x"])
        elif isinstance(vals[r], list) and vals[r]:
            j = int(rng.integers(len(vals[r])))
            x = vals[r][j]
            vals[r] = list(vals[r])
            vals[r][j] = (
                None if rng.random() < 0.3 else (float("nan") if isinstance(x, float) else -1 if x is not None else 0)
            )
        else:
            vals[r] = None
        try:
            t = t.set_column(i, name, pa.array(vals, col.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError):
            return f"{name}: edit not representable, unchanged"
        op = f"row {r} ({op}) -> {vals[r]!r:.40}"
    pq.write_table(t, path, compression="snappy")
    return f"{name}: {op}"


def _rewrite_zip(path: Path, rng: np.random.Generator, op: str) -> str:
    with zipfile.ZipFile(path) as z:
        entries = [(i, z.read(i.filename)) for i in z.infolist()]
    what = op
    if op == "drop_entry":
        j = int(rng.integers(len(entries)))
        what = f"dropped {entries[j][0].filename}"
        del entries[j]
    elif op == "reorder":
        entries = entries[::-1]
        what = "entries in reverse order (same content)"
    else:  # json: edit the manifest, keep the zip valid
        j = next(j for j, (i, _) in enumerate(entries) if i.filename == "manifest.json")
        obj, what = _edit_json(json.loads(entries[j][1]), rng)
        entries[j] = (entries[j][0], json.dumps(obj).encode())
        what = f"manifest.json {what}"
    with zipfile.ZipFile(path, "w") as z:
        for info, data in entries:
            z.writestr(info, data)
    return what


def damage(root: Path, target: str, rng: np.random.Generator) -> str:
    """Damage the copy at ``root`` (a folder, or a file for artifacts) in place; returns what was done."""
    kind = str(rng.choice(DAMAGES[target]))
    files = _files(root)
    rel = lambda p: str(p.relative_to(root)) if root.is_dir() else p.name  # noqa: E731
    if kind in ("drop_entry", "reorder") or (kind == "json" and target == "artifacts"):
        return f"{kind}: {_rewrite_zip(root, rng, kind)}"
    if kind == "json":
        cands = []
        for p in files:
            try:
                cands.append((p, json.loads(p.read_bytes())))
            except ValueError:
                continue
        p, obj = cands[int(rng.integers(len(cands)))]
        obj, what = _edit_json(obj, rng)
        p.write_text(json.dumps(obj))
        return f"json {rel(p)}: {what}"
    if kind == "parquet":
        cands = [p for p in files if p.suffix == ".parquet"]
        p = cands[int(rng.integers(len(cands)))]
        return f"parquet {rel(p)}: {_edit_parquet(p, rng)}"
    if kind in ("swap", "copy"):
        groups: dict[Path, list[Path]] = {}
        for p in files:
            if p.suffix in (".parquet", ".mp4") and "meta" not in p.parts:
                groups.setdefault(p.parent, []).append(p)
        group = [g for g in groups.values() if len(g) > 1]
        g = group[int(rng.integers(len(group)))]
        a, b = (g[int(i)] for i in rng.choice(len(g), 2, replace=False))
        da, db = a.read_bytes(), b.read_bytes()
        a.write_bytes(db)
        if kind == "swap":
            b.write_bytes(da)
        return f"{kind} {rel(a)} {'<->' if kind == 'swap' else '<-'} {rel(b)}"
    p = files[int(rng.integers(len(files)))]
    data = bytearray(p.read_bytes())
    n = len(data)
    if kind == "delete":
        p.unlink()
        return f"delete {rel(p)}"
    if kind == "truncate":
        k = int(rng.integers(n)) if n else 0
        p.write_bytes(bytes(data[:k]))
        return f"truncate {rel(p)} to {k} of {n} bytes"
    if kind == "garbage":
        extra = rng.integers(0, 256, int(rng.integers(1, 4097)), dtype=np.uint8).tobytes()
        p.write_bytes(bytes(data) + extra)
        return f"garbage: {len(extra)} bytes appended to {rel(p)}"
    if n == 0:
        return f"{kind} {rel(p)}: empty file, unchanged"
    if kind == "flip":
        offs = rng.integers(n, size=int(rng.integers(1, 9)))
        for o in offs:
            data[o] ^= 1 << int(rng.integers(8))
        p.write_bytes(bytes(data))
        return f"flip {len(offs)} bit(s) in {rel(p)} at {sorted(int(o) for o in offs)[:4]}"
    start = int(rng.integers(n))
    end = min(n, start + int(rng.integers(1, 4097)))
    data[start:end] = bytes(end - start)
    p.write_bytes(bytes(data))
    return f"zero {rel(p)} bytes {start}..{end}"


def changed_files(pristine: Path, copy: Path) -> list[str]:
    """Files (relative) whose bytes differ from the pristine input, or that are missing."""
    if pristine.is_file():
        return [] if copy.is_file() and copy.read_bytes() == pristine.read_bytes() else [copy.name]
    out = []
    for p in _files(pristine):
        q = copy / p.relative_to(pristine)
        if not q.is_file() or q.read_bytes() != p.read_bytes():
            out.append(str(p.relative_to(pristine)))
    return out


def must_detect(target: str, rel: str) -> bool:
    """Whether a changed file must make validate (datasets) or loading (checkpoints, artifacts) fail."""
    if target == "datasets":
        return rel.startswith(("data/", "videos/"))
    if target == "checkpoints":  # weights and meta; commit markers and orbax's own bookkeeping may change harmlessly
        return rel == "meta/metadata" or ("/d/" in f"/{rel}" and rel.startswith("state/"))
    return True  # every byte of an artifact is hashed


# ---- worker (runs the entry points) --------------------------------------------------------------------------------
def _cli(argv: list[str]) -> tuple[str, str, dict]:
    from vla_sdk import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = cli.main(argv)
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 2
    lines = [x for x in err.getvalue().splitlines() if x.strip()]
    detail = {"rc": rc, "stderr": err.getvalue()[-2000:]}
    if rc == 0:
        return "ok", out.getvalue(), detail
    if rc in (1, 2) and lines and lines[-1].startswith("vla: error:") and "Traceback" not in err.getvalue():
        return "clear", out.getvalue(), detail
    if argv[:2] == ["dataset", "validate"] and rc == 1 and "Traceback" not in err.getvalue():
        return "clear", out.getvalue(), detail  # a validate report
    return "traceback", out.getvalue(), detail


def _call(fn) -> tuple[str, dict]:
    from vla_sdk.errors import VlaError

    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            fn()
        return "ok", {}
    except VlaError as e:
        msg = str(e)
        return ("clear" if "\n" not in msg else "traceback"), {"error": f"{type(e).__name__}: {msg[:500]}"}
    except Exception as e:  # noqa: BLE001 - the point: anything else is a bug
        return "traceback", {"error": f"{type(e).__name__}: {e}"[:500], "traceback": traceback.format_exc()[-3000:]}


class Changed(Exception):
    """A damaged policy that loaded and acts differently from the undamaged one (damage not detected)."""


def _diff(a, b) -> str:
    try:
        return f"{float(np.max(np.abs(np.asarray(a, np.float64) - b))):.3g}"
    except ValueError:
        return f"shape {np.shape(a)} vs {np.shape(b)}"


def _fingerprint(p) -> str:
    """SHA-256 of a loaded policy's weights and meta (checkpoint Policy or ArtifactPolicy)."""
    import hashlib

    import jax

    if hasattr(p, "_weights"):
        leaves = p._weights
    else:
        from flax import nnx

        leaves = jax.tree.leaves(nnx.state(p.model, nnx.Param))
    h = hashlib.sha256(json.dumps(p.meta, sort_keys=True, default=str).encode())
    for x in leaves:
        h.update(np.asarray(x).tobytes())
    return h.hexdigest()


class Worker:
    def __init__(self, target, dataset, artifact, cache, pristine=None, infer="always"):
        self.target, self.cache, self.infer = target, cache, infer
        self.obs = self.policy = self.reference = None
        from vla_sdk.data.reader import Dataset

        if dataset:
            ds = Dataset(dataset)
            ep = ds.episode(0)
            self.obs = {
                "images": {c: ep["images"][c][0] for c in ds.cameras},
                "state": ep["observation.state"][0],
                "instruction": ep["task"],
            }
        if target == "datasets" and artifact:
            from vla_sdk.policy import Policy

            self.policy = Policy.load(artifact)
        if pristine:  # the actions of the undamaged policy: a damaged one that loads must act the same
            from vla_sdk.policy import Policy

            ref = Policy.load(pristine)
            self.reference, self.fingerprint = self._act(ref), _fingerprint(ref)

    def _act(self, p) -> np.ndarray:
        return np.asarray(p({**self.obs, "images": {c: self.obs["images"][c] for c in p.cameras}}))

    def entries(self, path: str):
        from vla_sdk.data.reader import Dataset
        from vla_sdk.policy import Policy
        from vla_sdk.train.loader import FrameStore

        if self.target != "datasets":

            def policy():
                p = Policy.load(path)
                if self.infer == "changed" and _fingerprint(p) == self.fingerprint:
                    return  # bit-identical weights and meta: it acts as the reference, by construction
                a = self._act(p)
                same = a.shape == self.reference.shape and np.array_equal(a, self.reference)
                if not same:
                    raise Changed(
                        f"loaded, but acts differently from the undamaged policy (max diff {_diff(a, self.reference)})"
                    )

            def run():
                cls, detail = _call(policy)
                if detail.get("error", "").startswith("Changed"):
                    return "ok", {"changed": detail["error"]}
                return cls, detail

            yield "policy", run
            return

        def validate():
            cls, out, detail = _cli(["dataset", "validate", "--json", path])
            try:
                detail["errors"] = sorted({p["file"] for p in json.loads(out)["problems"] if p["severity"] == "error"})
            except (ValueError, KeyError, TypeError):
                detail["errors"] = None
            return cls, detail

        def info():
            cls, _, detail = _cli(["dataset", "info", path])
            return cls, detail

        def reader():
            ds = Dataset(path)
            for k in range(ds.num_episodes):
                ds.episode(k)

        def loader():
            ds = Dataset(path)
            eps = [(0, k) for k in range(ds.num_episodes)]
            store = FrameStore(
                [ds], eps, tuple(ds.cameras), 16, cache_dir=Path(self.cache) / Path(path).parent.name, progress=False
            )
            assert len(store) == ds.num_frames

        def replay():
            from vla_sdk.evaluation import replay as run_replay

            run_replay(self.policy, path)

        yield "validate", validate
        yield "info", info
        yield "reader", lambda: _call(reader)
        yield "verify", lambda: _call(lambda: Dataset(path).verify())
        yield "loader", lambda: _call(loader)
        if self.policy is not None:
            yield "replay", lambda: _call(replay)


def worker_main(args) -> None:
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # C libraries (ffmpeg, XLA) must not write into the protocol

    def send(**kw):
        proto.write(json.dumps(kw) + "\n")
        proto.flush()

    from vla_sdk import compile_cache

    compile_cache.enable()  # as the CLI does: the same tiny programs compile once per machine, not once per case
    pristine = {"checkpoints": args.checkpoint, "artifacts": args.artifact}.get(args.target)
    w = Worker(args.target, args.dataset, args.artifact, args.cache, pristine, args.infer)
    send(ready=True)
    for line in sys.stdin:
        case = json.loads(line)
        for name, run in w.entries(case["path"]):
            send(id=case["id"], entry=name, event="start")
            t = time.perf_counter()
            cls, detail = run()
            send(id=case["id"], entry=name, cls=cls, detail=detail, seconds=round(time.perf_counter() - t, 3))
        shutil.rmtree(Path(args.cache) / Path(case["path"]).parent.name, ignore_errors=True)
        send(id=case["id"], done=True)


# ---- parent ----------------------------------------------------------------------------------------------------------
class Runner:
    """One worker process: sends a case, collects per-entry results, restarts the worker after a crash or hang."""

    def __init__(self, args, log):
        self.args, self.log, self.proc, self.lines = args, log, None, None

    def start(self):
        cmd = [sys.executable, __file__, "--worker", "--target", self.args.target, "--cache", self.args.cache]
        cmd += ["--dataset", str(self.args.dataset), "--infer", self.args.infer] if self.args.dataset else []
        cmd += (
            ["--checkpoint", str(self.args.checkpoint)]
            if self.args.checkpoint and self.args.target == "checkpoints"
            else []
        )
        if self.args.artifact and self.args.target in ("datasets", "artifacts"):
            cmd += ["--artifact", str(self.args.artifact)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.lines = queue.Queue()
        threading.Thread(target=lambda p=self.proc, q=self.lines: [q.put(x) for x in p.stdout] + [q.put(None)]).start()
        msg = self.lines.get(timeout=600)
        if msg is None:
            raise RuntimeError("worker failed to start (see the --log file)")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
        if self.proc:
            self.proc.wait()
        self.proc = None

    def run(self, case: dict) -> dict:
        if self.proc is None:
            self.start()
        self.proc.stdin.write(json.dumps(case) + "\n")
        self.proc.stdin.flush()
        results, current = {}, None
        deadline = time.monotonic() + self.args.timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                results[current or "?"] = {"cls": "hang", "detail": {"timeout_s": self.args.timeout}}
                self.stop()
                return results
            if line is None:  # the worker died
                rc = self.proc.wait()
                results[current or "?"] = {"cls": "crash" if rc < 0 else "traceback", "detail": {"returncode": rc}}
                self.proc = None
                return results
            msg = json.loads(line)
            if msg.get("done"):
                return results
            if msg.get("event") == "start":
                current = msg["entry"]
            else:
                results[msg["entry"]] = {k: msg[k] for k in ("cls", "detail", "seconds")}
                current = None


def make_inputs(folder: Path, log=print) -> dict[str, Path]:
    """Small pristine inputs: a 3-episode fr3 dataset (one 24x32 camera), a vla-tiny checkpoint written from its
    initialization (no training steps: the files are what `vla train` writes) and its int8 export."""
    import jax
    from flax import nnx

    from vla_sdk.data.reader import Dataset
    from vla_sdk.data.record import RecordConfig, record
    from vla_sdk.data.stats import vector_stats
    from vla_sdk.export.build import export_policy
    from vla_sdk.model import VLA, get_preset
    from vla_sdk.train.checkpoint import CHECKPOINT_FORMAT, Checkpoints, read_checkpoint
    from vla_sdk.train.config import TrainConfig

    folder.mkdir(parents=True, exist_ok=True)
    data, run, art = folder / "dataset", folder / "run", folder / "policy.vla"
    if not (data / "meta/info.json").exists():
        record(
            RecordConfig("fr3/pick_place", data, episodes=3, cameras=("cam_external",), image_size=(24, 32)),
            progress=False,
            log=lambda m: None,
        )
        seal_dataset(data)
    ds = Dataset(data)
    if not (run / "checkpoints").is_dir():
        from dataclasses import replace

        cfg = replace(get_preset("vla-tiny"), cameras=("cam_external",))
        params = nnx.to_pure_dict(nnx.state(VLA(cfg, rngs=nnx.Rngs(0)), nnx.Param))
        params = jax.tree.map(lambda x: np.asarray(x, np.float32), params)
        eps = [ds.episode(k, decode_video=False) for k in range(ds.num_episodes)]
        meta = {
            "format_version": CHECKPOINT_FORMAT,
            "train_config": TrainConfig(data=(str(data),), out=str(run), preset="vla-tiny", steps=1).to_dict(),
            "model_config": cfg.to_dict(),
            "stats": {k: vector_stats(np.concatenate([e[k] for e in eps])) for k in ("observation.state", "action")},
            "embodiment": ds.info["vla"].get("embodiment") or {"name": ds.info.get("robot_type")},
            "action_names": ds.features["action"]["names"],
            "metrics": {"step": 1},
        }
        ckpts = Checkpoints(run, keep=1)
        ckpts.save(1, {"step": np.int32(1), "params": params, "ema": params}, meta)
        ckpts.close()
    if not art.exists():
        params, meta = read_checkpoint(run)
        export_policy(params, meta, art, "int8", source=str(run), gate_count=0, latency_runs=0)
    step = sorted((run / "checkpoints").iterdir())[-1]
    return {"dataset": data, "checkpoint": step, "artifact": art}


def seal_dataset(root: Path) -> None:
    """Fill the per-episode SHA-256 columns of a dataset recorded without them (what the writer does at commit)."""
    from vla_sdk.data import layout as L

    info = json.loads((root / L.INFO_PATH).read_text())
    eps = L.read_episodes(root)
    if all(e.get("sha256") for e in eps):
        return
    keys = L.video_keys(info["features"])
    for e in eps:
        files = L.episode_files(e["episode_index"], keys)
        e["sha256"] = {k: L.file_sha256(root / rel) for k, rel in files.items()}
    L.atomic_write_parquet(root / L.EPISODES_PATH, L.episodes_table(eps, info["features"]))


def fuzz(args) -> dict:
    target = args.target
    pristine = Path({"datasets": args.dataset, "checkpoints": args.checkpoint, "artifacts": args.artifact}[target])
    work = Path(tempfile.mkdtemp(prefix=f"vla-fuzz-{target}-"))
    args.cache = str(work / "cache")
    log = open(args.log, "ab") if args.log else subprocess.DEVNULL  # noqa: SIM115
    cases: queue.Queue = queue.Queue()
    for i in range(args.cases):
        cases.put(i)
    report_cases, lock = [], threading.Lock()
    t0 = time.perf_counter()

    def prepare(i: int) -> dict:
        rng = np.random.default_rng([args.seed, TARGETS.index(target), i])
        copy = work / f"case-{i:05d}" / pristine.name
        copy.parent.mkdir(parents=True)
        (shutil.copytree if pristine.is_dir() else shutil.copy2)(pristine, copy)
        what = damage(copy, target, rng)
        changed = changed_files(pristine, copy)
        return {"id": i, "path": str(copy), "damage": what, "changed": changed}

    def loop():
        runner = Runner(args, log)
        try:
            while True:
                try:
                    i = cases.get_nowait()
                except queue.Empty:
                    return
                case = prepare(i)
                results = runner.run({"id": i, "path": case["path"]})
                shutil.rmtree(Path(case["path"]).parent, ignore_errors=True)
                case["entries"] = results
                must = [f for f in case["changed"] if must_detect(target, f)]
                if target == "datasets":
                    errs = (results.get("validate", {}).get("detail") or {}).get("errors")
                    case["detected"] = None if not must else bool(errs is not None and set(must) <= set(errs))
                else:  # must: loaded policies act as the undamaged one, or the damage is refused
                    r = results.get("policy", {})
                    case["detected"] = False if "changed" in (r.get("detail") or {}) else (None if not must else True)
                with lock:
                    report_cases.append(case)
                    if args.progress:
                        print(f"\r{len(report_cases)}/{args.cases}", end="", file=sys.stderr, flush=True)
        finally:
            runner.stop()

    threads = [threading.Thread(target=loop) for _ in range(args.jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    shutil.rmtree(work, ignore_errors=True)
    report_cases.sort(key=lambda c: c["id"])
    counts = {e: dict.fromkeys(CLASSES, 0) for e in ENTRIES[target]}
    for c in report_cases:
        for e, r in c["entries"].items():
            counts.setdefault(e, dict.fromkeys(CLASSES, 0))[r["cls"]] += 1
    damaged = [c for c in report_cases if c["detected"] is not None]
    bad = [
        c
        for c in report_cases
        if c["detected"] is False or any(r["cls"] in ("traceback", "crash", "hang") for r in c["entries"].values())
    ]
    return {
        "target": target,
        "seed": args.seed,
        "cases": len(report_cases),
        "jobs": args.jobs,
        "infer": args.infer,
        "wall_s": round(wall, 1),
        "counts": counts,
        "must_detect": len(damaged),
        "detected": sum(bool(c["detected"]) for c in damaged),
        "damage_kinds": {k: sum(c["damage"].startswith(k) for c in report_cases) for k in DAMAGES[target]},
        "entry_seconds": {
            e: round(
                float(
                    np.mean(
                        [c["entries"][e]["seconds"] for c in report_cases if "seconds" in c["entries"].get(e, {})]
                        or [0]
                    )
                ),
                3,
            )
            for e in counts
        },
        "bad_cases": bad,
        "all_cases": [
            {k: c[k] for k in ("id", "damage", "changed", "detected")}
            | {"classes": {e: r["cls"] for e, r in c["entries"].items()}}
            for c in report_cases
        ],
        "ok": not bad,
    }


def summary(r: dict) -> str:
    lines = [f"{r['target']}: {r['cases']} cases, seed {r['seed']}, {r['jobs']} worker(s), {r['wall_s']} s wall"]
    lines.append(f"  {'entry':<10}" + "".join(f"{c:>11}" for c in CLASSES))
    for e, c in r["counts"].items():
        lines.append(f"  {e:<10}" + "".join(f"{c[k]:>11}" for k in CLASSES))
    what = (
        "validate named every changed data/video file"
        if r["target"] == "datasets"
        else "refused, or loaded and acted exactly as the undamaged policy"
    )
    lines.append("  mean s per case: " + ", ".join(f"{e} {t}" for e, t in r["entry_seconds"].items()))
    lines.append(f"  damage that must be detected: {r['must_detect']} cases, {what} in {r['detected']}")
    lines.append("  damage kinds: " + ", ".join(f"{k} {n}" for k, n in r["damage_kinds"].items()))
    for c in r["bad_cases"][:10]:
        worst = {e: x["cls"] for e, x in c["entries"].items() if x["cls"] not in ("ok", "clear")}
        lines.append(f"  BAD case {c['id']}: {c['damage']}  {worst or ''} detected={c['detected']}")
    lines.append("  result: " + ("PASS" if r["ok"] else f"FAIL ({len(r['bad_cases'])} bad case(s))"))
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", choices=TARGETS, default="datasets")
    p.add_argument("--cases", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per case before it counts as a hang")
    p.add_argument("--make", type=Path, help="make (or reuse) small pristine inputs in this folder")
    p.add_argument("--dataset", type=Path, help="pristine dataset (also the observations for policy cases)")
    p.add_argument("--checkpoint", type=Path, help="pristine checkpoint step folder or run")
    p.add_argument("--artifact", type=Path, help="pristine exported artifact (also the policy for replay)")
    p.add_argument(
        "--infer",
        choices=("always", "changed"),
        default="always",
        help="policy cases: run the inference always, or only when the loaded weights or meta differ from the "
        "pristine ones (bit-identical ones act the same by construction; ~3x faster)",
    )
    p.add_argument("--out", type=Path, help="write the JSON report here")
    p.add_argument("--log", type=Path, help="append the workers' stderr here")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--cache", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    os.environ.setdefault("MUJOCO_GL", "egl")
    if args.worker:
        worker_main(args)
        return 0
    if args.make:
        made = make_inputs(args.make)
        for k, v in made.items():
            setattr(args, k, getattr(args, k) or v)
    need = {"datasets": args.dataset, "checkpoints": args.checkpoint, "artifacts": args.artifact}[args.target]
    if need is None or args.dataset is None:
        p.error(f"--target {args.target} needs --dataset and the pristine input (or --make DIR)")
    report = fuzz(args)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1, default=str))
    print(("\n" if args.progress else "") + summary(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
