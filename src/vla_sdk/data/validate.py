"""`vla dataset validate`: a deep check that reports every problem it finds, each naming its file and field."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vla_sdk.data import layout as L


@dataclass
class Problem:
    severity: str  # "error" or "warning"
    file: str  # path relative to the dataset root
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.file}: {self.message}"


def validate(root: str | Path) -> list[Problem]:
    """Every problem found in the dataset at ``root`` (empty list: valid)."""
    root = Path(root)
    problems: list[Problem] = []

    def err(file, msg):
        problems.append(Problem("error", str(file), msg))

    info_path = root / L.INFO_PATH
    try:
        info = json.loads(info_path.read_text())
    except FileNotFoundError:
        return [Problem("error", L.INFO_PATH, "missing: not a dataset")]
    except json.JSONDecodeError as e:
        return [Problem("error", L.INFO_PATH, f"not valid JSON: {e}")]
    for key in (
        "codebase_version",
        "robot_type",
        "fps",
        "features",
        "total_episodes",
        "total_frames",
        "total_tasks",
        "data_path",
    ):
        if key not in info:
            err(L.INFO_PATH, f"missing field {key!r}")
    if info.get("codebase_version") != L.CODEBASE_VERSION:
        err(L.INFO_PATH, f"codebase_version is {info.get('codebase_version')!r}, expected {L.CODEBASE_VERSION!r}")
    features, fps = info.get("features", {}), info.get("fps")
    if not isinstance(fps, int) or fps <= 0:
        err(L.INFO_PATH, f"fps must be a positive integer, got {fps!r}")
        fps = None
    for name, f in features.items():
        if "dtype" not in f or "shape" not in f:
            err(L.INFO_PATH, f"features.{name}: needs 'dtype' and 'shape'")
        if "/" in name:
            err(L.INFO_PATH, f"features.{name}: feature names must not contain '/'")
    for name in L.DEFAULT_FEATURES:
        if name not in features:
            err(L.INFO_PATH, f"features: missing default feature {name!r}")
    vkeys = L.video_keys(features)
    columns = {n for n, f in features.items() if f.get("dtype") != "video"}

    try:
        tasks = L.read_tasks(root)
        if len(tasks) != info.get("total_tasks"):
            err(L.INFO_PATH, f"total_tasks is {info.get('total_tasks')}, {L.TASKS_PATH} has {len(tasks)}")
    except Exception as e:  # noqa: BLE001
        err(L.TASKS_PATH, f"unreadable: {e}")
        tasks = []

    ep_files = sorted((root / "meta/episodes").glob("*/*.parquet"))
    if not ep_files:
        err("meta/episodes", "no episodes parquet file")
        return problems
    try:
        rows = pa.concat_tables([pq.read_table(f) for f in ep_files]).to_pylist()
    except Exception as e:  # noqa: BLE001
        err(ep_files[0].relative_to(root), f"unreadable parquet: {e}")
        return problems
    if len(rows) != info.get("total_episodes"):
        err(L.INFO_PATH, f"total_episodes is {info.get('total_episodes')}, meta/episodes has {len(rows)} rows")
    if sum(r["length"] for r in rows) != info.get("total_frames"):
        err(
            L.INFO_PATH, f"total_frames is {info.get('total_frames')}, episodes sum to {sum(r['length'] for r in rows)}"
        )
    expected_from = 0
    for i, r in enumerate(rows):
        where = f"meta/episodes row {i}"
        if r["episode_index"] != i:
            err("meta/episodes", f"{where}: episode_index is {r['episode_index']}, expected {i} (contiguous)")
        if r["dataset_from_index"] != expected_from:
            err("meta/episodes", f"{where}: dataset_from_index is {r['dataset_from_index']}, expected {expected_from}")
        if r["dataset_to_index"] - r["dataset_from_index"] != r["length"]:
            err("meta/episodes", f"{where}: dataset_to_index - dataset_from_index != length ({r['length']})")
        expected_from = r["dataset_from_index"] + r["length"]
        _check_data(root, info, r, i, columns, len(tasks), fps, err)
        for k in vkeys:
            _check_video(root, info, r, i, k, features[k], fps, err)

    if rows:  # an empty dataset (interrupted before its first episode) has no statistics yet
        _check_stats(root, features, err)
    staging = root / L.STAGING
    if staging.exists() and any(staging.rglob("*")):
        problems.append(Problem("warning", L.STAGING, "holds uncommitted or set-aside files (not part of the data)"))
    return problems


def _check_data(root, info, r, i, columns, n_tasks, fps, err) -> None:
    rel = info.get("data_path", L.DATA_PATH).format(chunk_index=r["data/chunk_index"], file_index=r["data/file_index"])
    path = root / rel
    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        return err(rel, f"missing (episode {i})")
    except Exception as e:  # noqa: BLE001 - truncated/corrupt parquet
        return err(rel, f"unreadable parquet (truncated or corrupt?): {e}")
    have = set(table.column_names)
    if have != columns:
        err(
            rel,
            f"columns differ from info.json features: missing {sorted(columns - have)}, extra {sorted(have - columns)}",
        )
    if "episode_index" not in have:
        return
    mask = table.column("episode_index").to_numpy() == i
    t = table.filter(mask)
    n = t.num_rows
    if n != r["length"]:
        return err(rel, f"episode {i} has {n} rows, meta/episodes says length {r['length']}")
    ar = np.arange(n)
    checks = {"frame_index": ar, "index": r["dataset_from_index"] + ar}
    for col, want in checks.items():
        if col in have and not np.array_equal(t.column(col).to_numpy(), want):
            err(rel, f"episode {i}: field {col!r} is not {'0..length-1' if col == 'frame_index' else 'contiguous'}")
    if "timestamp" in have and fps and np.abs(t.column("timestamp").to_numpy() - ar / fps).max(initial=0) > 1e-4:
        err(rel, f"episode {i}: field 'timestamp' differs from frame_index / fps by more than 1e-4 s")
    if "task_index" in have:
        ti = t.column("task_index").to_numpy()
        if len(ti) and (ti.min() < 0 or ti.max() >= n_tasks):
            err(rel, f"episode {i}: field 'task_index' outside 0..{n_tasks - 1}")
    for col in ("observation.state", "action", L.ENV_STATE):
        if col in have and col in info["features"]:
            x = L.column_array(t, col)
            want = tuple(info["features"][col]["shape"])
            if x.shape[1:] != want:
                err(rel, f"episode {i}: field {col!r} has shape {x.shape[1:]}, info.json says {want}")
            if not np.all(np.isfinite(x)):
                err(rel, f"episode {i}: field {col!r} has non-finite values")


def _check_video(root, info, r, i, key, feature, fps, err) -> None:
    rel = info["video_path"].format(
        video_key=key, chunk_index=r[f"videos/{key}/chunk_index"], file_index=r[f"videos/{key}/file_index"]
    )
    path = root / rel
    if not path.exists():
        return err(rel, f"missing (episode {i}, camera {key})")
    try:
        with av.open(str(path)) as c:
            times, shape = [], None
            for f in c.decode(video=0):
                times.append(float(f.time))
                shape = (f.height, f.width, 3)
    except Exception as e:  # noqa: BLE001 - truncated/corrupt mp4
        return err(rel, f"unreadable video (truncated or corrupt?): {e}")
    start = float(r[f"videos/{key}/from_timestamp"])
    first = int(round(start * fps)) if fps else 0
    own_file = start == 0.0 and info.get("vla") is not None  # this SDK writes one episode per mp4
    if len(times) < first + r["length"] or (own_file and len(times) != r["length"]):
        err(rel, f"{key}: {len(times) - first} frames for episode {i}, which has {r['length']} rows")
    if shape is not None and list(shape) != list(feature["shape"]):
        err(rel, f"{key}: frames are {shape}, info.json says {tuple(feature['shape'])}")
    if fps and times:
        ep_times = np.array(times[first : first + r["length"]]) - start
        if len(ep_times) and np.abs(ep_times - np.arange(len(ep_times)) / fps).max() > 1e-4:
            err(rel, f"{key}: frame times are not k / fps (variable frame rate?)")


def _check_stats(root, features, err) -> None:
    path = root / L.STATS_PATH
    if not path.exists():
        return err(L.STATS_PATH, "missing (normalization statistics are needed for training)")
    try:
        stats = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        return err(L.STATS_PATH, f"not valid JSON: {e}")
    for name, f in features.items():
        if name not in ("observation.state", "action", L.ENV_STATE) and f.get("dtype") != "video":
            continue
        if name not in stats:
            err(L.STATS_PATH, f"no statistics for feature {name!r}")
            continue
        want = (3, 1, 1) if f.get("dtype") == "video" else tuple(f["shape"])
        for key in ("min", "max", "mean", "std", "q01", "q99"):
            v = np.asarray(stats[name].get(key, np.nan), dtype=np.float64)
            if v.shape != want:
                err(L.STATS_PATH, f"{name}.{key}: shape {v.shape}, expected {want}")
            elif not np.all(np.isfinite(v)):
                err(L.STATS_PATH, f"{name}.{key}: non-finite values")
