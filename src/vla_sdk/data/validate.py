"""`vla dataset validate`: a deep check that reports every problem it finds, each naming its file and field.

The structural checks (``*_problems``) are shared with the reader (:mod:`vla_sdk.data.reader`), which raises the
first one as an :class:`InputError`: what validate passes, the reader reads; what the reader refuses, validate names.
No damaged file makes validate raise: unreadable parquet, undecodable video, JSON that does not parse or has the
wrong types are all reported as problems. Byte damage that still parses (a flipped bit in a float) is found by the
per-episode SHA-256 checksums (:mod:`vla_sdk.data.checksums`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vla_sdk.data import checksums
from vla_sdk.data import layout as L
from vla_sdk.errors import InputError, NotFound
from vla_sdk.video import probe_video

# feature dtypes of the LeRobot v3.0 format (datasets.Value names, plus its "video" and "image")
ALLOWED_DTYPES = frozenset(
    ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
    + ("float16", "float32", "float64", "string", "video", "image")
)
VECTORS = ("observation.state", "action", L.ENV_STATE)
MAX_COUNT = 10**9  # episodes, frames, lengths: anything larger is damage, not data
MAX_FPS = 10_000
STAT_KEYS = ("min", "max", "mean", "std", "q01", "q99")
# info.json problems after which the files cannot be located or interpreted
FATAL = (
    "must be",
    "missing field 'f",
    "missing field 'd",
    "missing field 'c",
    "codebase_version",
    "fps",
    "features",
    "data_path",
    "video_path",
)
UNCHECKED = "recorded before checksums; byte damage cannot be detected"


@dataclass
class Problem:
    severity: str  # "error" or "warning"
    file: str  # path relative to the dataset root
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.file}: {self.message}"


def one_line(e: BaseException, limit: int = 300) -> str:
    """``Type: message`` of an exception on one line (pyarrow's messages span several), cut to ``limit``."""
    text = " ".join(f"{type(e).__name__}: {e}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---- readers that never raise anything but the SDK's errors ------------------------------------------------------
def read_json(path: Path):
    """Parsed JSON of ``path``; NotFound / InputError (bad UTF-8 or JSON) naming the file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"{path}: missing") from None
    except OSError as e:
        raise InputError(f"{path}: cannot be read ({e})") from None
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InputError(f"{path}: not valid JSON ({one_line(e)})") from None


def read_parquet(path: Path) -> pa.Table:
    """The table in ``path``; NotFound / InputError (truncated, corrupt, not parquet) naming the file."""
    if not path.is_file():
        raise NotFound(f"{path}: missing")
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError, ValueError, IndexError, TypeError, KeyError, RuntimeError) as e:
        raise InputError(f"{path}: unreadable parquet, truncated or corrupt ({one_line(e)})") from None


def _is_str(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _count(x, lo: int = 0) -> bool:
    return _is_int(x) and lo <= x <= MAX_COUNT


def _template(t, **fields) -> str | None:
    """The problem with a path template, or None."""
    if not isinstance(t, str) or not t:
        return f"must be a path template string, got {t!r}"
    try:
        out = t.format(**fields)
    except (KeyError, IndexError, ValueError, AttributeError, TypeError) as e:
        return f"{t!r} is not a template of {sorted(fields)} ({type(e).__name__}: {e})"
    if out.startswith("/") or ".." in Path(out).parts:
        return f"{t!r} points outside the dataset"
    return None


# ---- structural checks (messages; the caller names the file) -----------------------------------------------------
def info_problems(info) -> list[str]:
    """Problems in the content of meta/info.json."""
    if not isinstance(info, dict):
        return [f"must be a JSON object, got {type(info).__name__}"]
    out = []
    for key in ("codebase_version", "fps", "features", "total_episodes", "total_frames", "total_tasks", "data_path"):
        if key not in info:
            out.append(f"missing field {key!r}")
    if "codebase_version" in info and info["codebase_version"] != L.CODEBASE_VERSION:
        hint = ""
        version = str(info["codebase_version"])
        if version in ("v2.0", "v2.1"):
            hint = " (convert it: vla dataset convert --from lerobot-v2.1 SRC --out DIR)"
        elif version.startswith(("v0.", "v1.")):
            hint = f" (LeRobot {version} datasets are not supported: lerobot's own converters upgrade them to v2.1)"
        else:
            hint = " (a version this vla-sdk does not know)"
        out.append(f"codebase_version is {info['codebase_version']!r}, expected {L.CODEBASE_VERSION!r}{hint}")
    if "fps" in info and not (_is_int(info["fps"]) and 0 < info["fps"] <= MAX_FPS):
        out.append(f"fps must be an integer in 1..{MAX_FPS}, got {info['fps']!r}")
    for key in ("total_episodes", "total_frames", "total_tasks"):
        if key in info and not _count(info[key]):
            out.append(f"{key} must be an integer in 0..{MAX_COUNT}, got {info[key]!r}")
    if not isinstance(info.get("robot_type"), str | None):
        out.append(f"robot_type must be a string or null, got {info['robot_type']!r}")
    if "vla" in info:
        vla = info["vla"]
        if not isinstance(vla, dict):
            out.append(f"vla must be an object, got {type(vla).__name__}")
        else:
            if not isinstance(vla.get("task"), str | None):
                out.append(f"vla.task must be a string or null, got {vla['task']!r}")
            notes = vla.get("timing_notes", [])
            if not (isinstance(notes, list) and all(isinstance(n, str) for n in notes)):
                out.append(f"vla.timing_notes must be a list of strings, got {notes!r}")
            if not isinstance(vla.get("embodiment", {}), dict | None):
                out.append(f"vla.embodiment must be an object, got {vla['embodiment']!r}")
    features = info.get("features")
    if "features" in info and not (isinstance(features, dict) and features):
        out.append(f"features must be a non-empty object, got {features!r}")
        features = None
    has_video = False
    for name, f in (features or {}).items():
        where = f"features.{name}"
        if "/" in name:
            out.append(f"{where}: feature names must not contain '/'")
        if not isinstance(f, dict):
            out.append(f"{where}: must be an object with 'dtype' and 'shape', got {f!r}")
            continue
        dtype, shape = f.get("dtype"), f.get("shape")
        if dtype not in ALLOWED_DTYPES:
            out.append(f"{where}.dtype: {dtype!r} is not a feature dtype (one of {sorted(ALLOWED_DTYPES)})")
        if not (isinstance(shape, list) and shape and all(_count(s, 1) for s in shape) and math.prod(shape) <= 1e8):
            out.append(f"{where}.shape: must be a non-empty list of positive integers, got {shape!r}")
        elif dtype in ("video", "image") and (len(shape) != 3 or shape[2] != 3):
            out.append(f"{where}.shape: a camera is [height, width, 3], got {shape!r}")
        elif name in VECTORS and len(shape) != 1:
            out.append(f"{where}.shape: a vector feature is [dims], got {shape!r}")
        names = f.get("names")
        if names is not None and not isinstance(names, list | dict):
            out.append(f"{where}.names: must be a list or null, got {names!r}")
        elif name in VECTORS and isinstance(names, list) and isinstance(shape, list) and len(names) != shape[0]:
            out.append(f"{where}.names: {len(names)} names for shape {shape}")
        if name in VECTORS and dtype not in ("float32", "float64"):
            out.append(f"{where}.dtype: must be float32 or float64, got {dtype!r}")
        has_video |= dtype == "video"
    if features:
        for name in L.DEFAULT_FEATURES:
            if name not in features:
                out.append(f"features: missing default feature {name!r}")
    if "data_path" in info and (p := _template(info["data_path"], chunk_index=0, file_index=0)):
        out.append(f"data_path {p}")
    if has_video and (p := _template(info.get("video_path"), video_key="k", chunk_index=0, file_index=0)):
        out.append(f"video_path {p}")
    return out


def tasks_problems(table: pa.Table) -> list[str]:
    """Problems in meta/tasks.parquet (task strings with a contiguous task_index)."""
    out = []
    task = L.task_column(table)  # "task", or LeRobot's pandas index column of task strings
    for col, ok in (("task_index", pa.types.is_integer), (task, _is_str)):
        if col not in table.column_names:
            why = " nor a pandas index of task strings" if col == "task" else ""
            out.append(f"no column {col!r}{why} (has {table.column_names})")
        elif not ok(table.schema.field(col).type):
            out.append(f"column {col!r} has type {table.schema.field(col).type}")
        elif table.column(col).null_count:
            out.append(f"column {col!r} has null values")
    if not out and sorted(table.column("task_index").to_pylist()) != list(range(table.num_rows)):
        out.append(f"task_index is not a permutation of 0..{table.num_rows - 1}")
    return out


def episodes_problems(table: pa.Table, vkeys: list[str]) -> list[str]:
    """Problems in the columns of meta/episodes that the reader needs (types, nulls)."""
    need = {"episode_index", "length", "dataset_from_index", "dataset_to_index", "data/chunk_index", "data/file_index"}
    for k in vkeys:
        need |= {f"videos/{k}/chunk_index", f"videos/{k}/file_index", f"videos/{k}/from_timestamp"}
    out = [] if "tasks" in table.column_names else ["no column 'tasks'"]
    for col in sorted(need):
        if col not in table.column_names:
            out.append(f"no column {col!r}")
            continue
        t = table.schema.field(col).type
        if not (pa.types.is_integer(t) or (col.endswith("timestamp") and pa.types.is_floating(t))):
            out.append(f"column {col!r} has type {t}")
        elif table.column(col).null_count:
            out.append(f"column {col!r} has null values")
    kinds = {
        "vla/seed": pa.types.is_integer,
        "vla/overruns": pa.types.is_integer,
        "vla/success": pa.types.is_boolean,
        "vla/wall_seconds": lambda t: pa.types.is_floating(t) or pa.types.is_integer(t),
    }
    for col, ok in kinds.items():
        if col in table.column_names and not (ok(t := table.schema.field(col).type) or pa.types.is_null(t)):
            out.append(f"column {col!r} has type {t}")
    for col in ("tasks", "vla/extra", *(c for c in table.column_names if c.startswith(("vla/hist/", "vla/sha256/")))):
        if col not in table.column_names:
            continue
        t = table.schema.field(col).type
        ok = {
            "tasks": lambda t: (pa.types.is_list(t) or pa.types.is_large_list(t)) and _is_str(t.value_type),
            "vla/extra": pa.types.is_string,
        }.get(col, pa.types.is_string if col.startswith("vla/sha256/") else pa.types.is_fixed_size_list)
        if not ok(t):
            out.append(f"column {col!r} has type {t}")
    if not out:
        for col in (c for c in table.column_names if c.startswith("vla/hist/")):
            if table.schema.field(col).type.list_size != 768:
                out.append(f"column {col!r}: histograms are 3 x 256 values, got {table.schema.field(col).type}")
    return out


def rows_problems(rows: list[dict], vkeys: list[str], soft: bool = False) -> list[str]:
    """Problems in the values of meta/episodes rows (after :func:`episodes_problems` passed): those that stop any
    reading (bad indices, lengths, offsets), or with ``soft`` those that do not (inconsistent frame offsets: the
    reader then names the data file that disagrees)."""
    out, expected_from = [], 0
    for i, r in enumerate(rows):
        where = f"row {i}"
        if r["episode_index"] != i:
            out.append(f"{where}: episode_index is {r['episode_index']}, expected {i} (contiguous)")
        if not _count(r["length"]):
            out.append(f"{where}: length must be in 0..{MAX_COUNT}, got {r['length']}")
            continue
        if soft and r["dataset_from_index"] != expected_from:
            out.append(f"{where}: dataset_from_index is {r['dataset_from_index']}, expected {expected_from}")
        if soft and r["dataset_to_index"] - r["dataset_from_index"] != r["length"]:
            out.append(f"{where}: dataset_to_index - dataset_from_index != length ({r['length']})")
        expected_from += r["length"]
        for col in (
            "data/chunk_index",
            "data/file_index",
            *(f"videos/{k}/{c}_index" for k in vkeys for c in ("chunk", "file")),
        ):
            if not _count(r[col]):
                out.append(f"{where}: {col} must be in 0..{MAX_COUNT}, got {r[col]}")
        for k in vkeys:
            t0 = r[f"videos/{k}/from_timestamp"]
            if not (math.isfinite(t0) and 0 <= t0 <= 1e7):
                out.append(f"{where}: videos/{k}/from_timestamp must be a time >= 0, got {t0}")
        extra = r.get("vla/extra")
        if extra is not None:
            try:
                if not isinstance(json.loads(extra), dict):
                    out.append(f"{where}: vla/extra is not a JSON object")
            except ValueError:
                out.append(f"{where}: vla/extra is not valid JSON")
        for col, v in r.items():
            if col.startswith("vla/sha256/") and v is not None:
                if not (len(v) == 64 and all(c in "0123456789abcdef" for c in v)):
                    out.append(f"{where}: {col} is not a hex SHA-256, got {v!r}")
            if col.startswith("vla/hist/") and v is not None and (None in v or min(v) < 0):
                out.append(f"{where}: {col} has null or negative counts")
    return out


def _column_problem(table: pa.Table, name: str, feature: dict) -> str | None:
    """Why column ``name`` cannot hold feature ``feature`` (dtype, shape, nulls), or None."""
    t = table.schema.field(name).type
    size = math.prod(feature["shape"])
    numeric = lambda x: pa.types.is_integer(x) or pa.types.is_floating(x) or pa.types.is_boolean(x)  # noqa: E731
    col = table.column(name)
    if feature["dtype"] == "string":
        return None if pa.types.is_string(t) or pa.types.is_large_string(t) else f"has type {t}, expected string"
    if numeric(t):
        if size != 1:
            return f"has scalar type {t}, info.json says shape {feature['shape']}"
        return f"has {col.null_count} null values" if col.null_count else None
    if pa.types.is_fixed_size_list(t) or pa.types.is_list(t) or pa.types.is_large_list(t):
        if not numeric(t.value_type):
            return f"has type {t}, expected numbers"
        col = col.combine_chunks()
        lengths = np.asarray(col.value_lengths().fill_null(-1)) if not pa.types.is_fixed_size_list(t) else None
        if pa.types.is_fixed_size_list(t) and t.list_size != size:
            return f"has {t.list_size} values per frame, info.json says shape {feature['shape']}"
        if lengths is not None and np.any(lengths != size):
            return f"has rows of {sorted(set(lengths.tolist()))} values, info.json says shape {feature['shape']}"
        if col.null_count or col.flatten().null_count:
            return "has null values"
        return None
    return f"has type {t}, expected {feature['dtype']} {feature['shape']}"


def vector(table: pa.Table, name: str) -> np.ndarray:
    """A numeric column (after :func:`_column_problem` passed) as float array [N, D]."""
    col = table.column(name).combine_chunks()
    if isinstance(col.type, pa.FixedSizeListType | pa.ListType | pa.LargeListType):
        flat = col.flatten().to_numpy(zero_copy_only=False)
        return flat.astype(np.float32).reshape(len(col), -1)
    return col.to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(col), 1)


def data_problems(table: pa.Table, features: dict, row: dict, i: int, n_tasks: int, fps, strict: bool) -> list[str]:
    """Problems of episode ``i``'s frames in its data file ``table``; ``strict``: extra columns are problems too."""
    columns = {n for n, f in features.items() if f["dtype"] not in ("video", "image")}
    have = set(table.column_names)
    out = []
    if columns - have or (strict and have - columns):
        out.append(
            f"columns differ from info.json features: missing {sorted(columns - have)}, extra {sorted(have - columns)}"
        )
    for name in sorted(columns & have):
        if p := _column_problem(table, name, features[name]):
            out.append(f"field {name!r} {p}")
    if out or "episode_index" not in have:
        return out
    t = table.filter(pc.equal(table.column("episode_index"), i))
    n = t.num_rows
    if n != row["length"]:
        return [f"episode {i} has {n} rows, meta/episodes says length {row['length']}"]
    ar = np.arange(n)
    checks = {"frame_index": ar, "index": row["dataset_from_index"] + ar}
    for col, want in checks.items():
        if not np.array_equal(vector(t, col)[:, 0].astype(np.int64), want):
            out.append(f"episode {i}: field {col!r} is not {'0..length-1' if col == 'frame_index' else 'contiguous'}")
    if fps and np.abs(vector(t, "timestamp")[:, 0] - ar / fps).max(initial=0) > 1e-4:
        out.append(f"episode {i}: field 'timestamp' differs from frame_index / fps by more than 1e-4 s")
    ti = vector(t, "task_index")[:, 0]
    if len(ti) and (ti.min() < 0 or ti.max() >= n_tasks or np.any(ti != np.round(ti))):
        out.append(f"episode {i}: field 'task_index' outside 0..{n_tasks - 1}")
    for col in VECTORS:
        if col in features and not np.all(np.isfinite(vector(t, col))):
            out.append(f"episode {i}: field {col!r} has non-finite values")
    return out


def stats_problems(stats, features: dict) -> list[str]:
    """Problems in meta/stats.json: an object per vector feature and camera, each statistic of the right shape,
    finite, min <= max and std >= 0."""
    if not isinstance(stats, dict):
        return [f"must be a JSON object, got {type(stats).__name__}"]
    out = []
    for name, f in features.items():
        if name not in VECTORS and f.get("dtype") != "video":
            continue
        s = stats.get(name)
        if s is None:
            out.append(f"no statistics for feature {name!r}")
            continue
        if not isinstance(s, dict):
            out.append(f"{name}: must be an object of statistics, got {type(s).__name__}")
            continue
        want = (3, 1, 1) if f.get("dtype") == "video" else tuple(f["shape"])
        vals = {}
        for key in STAT_KEYS:
            try:
                v = np.asarray(s.get(key, np.nan), dtype=np.float64)
            except (ValueError, TypeError):
                out.append(f"{name}.{key}: must be an array of numbers, got {s.get(key)!r:.60}")
                continue
            if v.shape != want:
                out.append(f"{name}.{key}: shape {v.shape}, expected {want}")
            elif not np.all(np.isfinite(v)):
                out.append(f"{name}.{key}: non-finite values")
            else:
                vals[key] = v
        if "min" in vals and "max" in vals and np.any(vals["min"] > vals["max"]):
            out.append(f"{name}: min > max")
        if "std" in vals and np.any(vals["std"] < 0):
            out.append(f"{name}.std: negative values")
        count = s.get("count")
        if not (isinstance(count, list) and len(count) == 1 and _count(count[0], 1)):
            out.append(f"{name}.count: must be [positive integer], got {count!r:.60}")
    return out


# ---- validate ---------------------------------------------------------------------------------------------------
def validate(root: str | Path) -> list[Problem]:
    """Every problem found in the dataset at ``root`` (empty list: valid). Never raises for damaged content."""
    root = Path(root)
    problems: list[Problem] = []

    def err(file, msg, severity="error"):
        problems.append(Problem(severity, str(file), msg))

    try:
        info = read_json(root / L.INFO_PATH)
    except NotFound:
        return [Problem("error", L.INFO_PATH, "missing: not a dataset")]
    except InputError as e:
        return [Problem("error", L.INFO_PATH, str(e).removeprefix(f"{root / L.INFO_PATH}: "))]
    for p in info_problems(info):
        err(L.INFO_PATH, p)
    if any(p.message.startswith(FATAL) for p in problems):  # the rest is read through these fields
        return problems
    features, fps = info["features"], info["fps"]
    vkeys = L.video_keys(features)

    try:
        tasks_table = read_parquet(root / L.TASKS_PATH)
        if bad := tasks_problems(tasks_table):
            tasks = []
            for p in bad:
                err(L.TASKS_PATH, p)
        else:
            tasks = L.read_tasks(root)
            if len(tasks) != info.get("total_tasks"):
                err(L.INFO_PATH, f"total_tasks is {info.get('total_tasks')}, {L.TASKS_PATH} has {len(tasks)}")
    except (NotFound, InputError) as e:
        err(L.TASKS_PATH, str(e).removeprefix(f"{root / L.TASKS_PATH}: "))
        tasks = []

    ep_files = sorted((root / "meta/episodes").glob("*/*.parquet"))
    if not ep_files:
        err("meta/episodes", "no episodes parquet file")
        return problems
    tables = []
    for f in ep_files:
        try:
            tables.append(read_parquet(f))
        except InputError as e:
            err(f.relative_to(root), str(e).removeprefix(f"{f}: "))
    if len(tables) < len(ep_files):
        return problems
    try:
        table = pa.concat_tables(tables)
    except pa.ArrowInvalid as e:
        err("meta/episodes", f"episode files have different columns ({e})")
        return problems
    bad = episodes_problems(table, vkeys)
    rows = table.to_pylist() if not bad else []
    bad = bad or rows_problems(rows, vkeys)
    for p in bad or rows_problems(rows, vkeys, soft=True):
        err("meta/episodes", p)
    if bad:
        return problems
    if len(rows) != info.get("total_episodes"):
        err(L.INFO_PATH, f"total_episodes is {info.get('total_episodes')}, meta/episodes has {len(rows)} rows")
    if sum(r["length"] for r in rows) != info.get("total_frames"):
        frames = sum(r["length"] for r in rows)
        err(L.INFO_PATH, f"total_frames is {info.get('total_frames')}, episodes sum to {frames}")

    # byte damage first: a file whose checksum fails is named even when it still parses
    episodes = L.read_episodes(root)
    for rel, why in checksums.changed_files(root, episodes):
        err(rel, why)
    unchecked = checksums.unchecked_episodes(episodes)
    if unchecked:
        some = unchecked if len(unchecked) <= 10 else [*unchecked[:10], "..."]
        if info.get("vla") is None:  # written by another tool (LeRobot): there never were checksums
            err("meta/episodes", f"episodes {some} carry no checksums (not written by this SDK)", "warning")
        else:
            err("meta/episodes", f"episodes {some} were {UNCHECKED}", "warning")

    frames = []
    for i, r in enumerate(rows):
        frames.append(_check_data(root, info, r, i, tasks, fps, err))
        for k in vkeys:
            _check_video(root, info, r, i, k, features[k], fps, err)

    if rows:  # an empty dataset (interrupted before its first episode) has no statistics yet
        try:
            stats = read_json(root / L.STATS_PATH)
        except NotFound:
            err(L.STATS_PATH, "missing (normalization statistics are needed for training)")
        except InputError as e:
            err(L.STATS_PATH, str(e).removeprefix(f"{root / L.STATS_PATH}: "))
        else:
            bad = stats_problems(stats, features)
            for p in bad:
                err(L.STATS_PATH, p)
            if not bad and info.get("vla") is not None and all(f is not None for f in frames):
                for p in _stats_match(stats, features, frames, episodes):
                    err(L.STATS_PATH, p)
    staging = root / L.STAGING
    if staging.exists() and any(staging.rglob("*")):
        err(L.STAGING, "holds uncommitted or set-aside files (not part of the data)", "warning")
    return problems


def _check_data(root, info, r, i, tasks, fps, err) -> pa.Table | None:
    """Check episode ``i``'s data file; returns its frames when they are sound."""
    rel = info["data_path"].format(chunk_index=r["data/chunk_index"], file_index=r["data/file_index"])
    try:
        table = read_parquet(root / rel)
    except NotFound:
        return err(rel, f"missing (episode {i})")
    except InputError as e:
        return err(rel, str(e).removeprefix(f"{root / rel}: "))
    bad = data_problems(table, info["features"], r, i, len(tasks), fps, strict=True)
    for p in bad:
        err(rel, p)
    if bad or not tasks:
        return None
    t = table.filter(pc.equal(table.column("episode_index"), i))
    used = sorted({tasks[int(x)] for x in vector(t, "task_index")[:, 0]})
    if r.get("tasks") is not None and used != sorted(set(r["tasks"])):
        err(rel, f"episode {i}: its task_index values name tasks {used}, meta/episodes says {sorted(set(r['tasks']))}")
    return t


def _stats_match(stats: dict, features: dict, frames: list[pa.Table], episodes: list[dict]) -> list[str]:
    """This SDK's stats.json is exact: recompute it from the frames and the stored image histograms and name every
    statistic that differs (LeRobot's own writer samples, so this runs only on datasets written by this SDK)."""
    from vla_sdk.data.stats import histogram_stats, vector_stats

    out = []
    want = {n: vector_stats(np.concatenate([vector(t, n) for t in frames])) for n in VECTORS if n in features}
    for key in L.video_keys(features):
        hists = [e["hist"].get(key) for e in episodes]
        if all(h is not None for h in hists) and sum(len(t) for t in frames):
            try:
                want[key] = histogram_stats(sum(hists), sum(len(t) for t in frames))
            except InputError as e:
                out.append(f"{key}: {e}")
    for name, w in want.items():
        if stats[name].get("count") != w["count"]:
            out.append(f"{name}.count: {stats[name].get('count')!r:.40}, the data has {w['count']}")
        for key in (k for k in w if k != "count"):
            if key not in stats[name]:
                out.append(f"{name}: no {key!r} (this SDK writes every statistic)")
                continue
            try:
                got = np.asarray(stats[name][key], np.float64)
            except (ValueError, TypeError):
                out.append(f"{name}.{key}: must be an array of numbers")
                continue
            ref = np.asarray(w[key], np.float64)
            if got.shape != ref.shape or not np.allclose(got, ref, rtol=1e-6, atol=1e-9):
                out.append(f"{name}.{key}: differs from the statistics of the data (edited or stale)")
    return out


def _check_video(root, info, r, i, key, feature, fps, err) -> None:
    rel = info["video_path"].format(
        video_key=key, chunk_index=r[f"videos/{key}/chunk_index"], file_index=r[f"videos/{key}/file_index"]
    )
    try:
        times, shape = probe_video(root / rel)
    except NotFound:
        return err(rel, f"missing (episode {i}, camera {key})")
    except InputError as e:
        return err(rel, str(e).removeprefix(f"{root / rel}: "))
    start = float(r[f"videos/{key}/from_timestamp"])
    first = int(round(start * fps))
    own_file = start == 0.0 and info.get("vla") is not None  # this SDK writes one episode per mp4
    if len(times) < first + r["length"] or (own_file and len(times) != r["length"]):
        err(rel, f"{key}: {len(times) - first} frames for episode {i}, which has {r['length']} rows")
    if shape is not None and list(shape) != list(feature["shape"]):
        err(rel, f"{key}: frames are {shape}, info.json says {tuple(feature['shape'])}")
    if times:
        ep_times = np.array(times[first : first + r["length"]]) - start
        if len(ep_times) and np.abs(ep_times - np.arange(len(ep_times)) / fps).max() > 1e-4:
            err(rel, f"{key}: frame times are not k / fps (variable frame rate?)")
