"""The LeRobot dataset v3.0 layout, as this SDK writes it, and atomic file helpers.

    meta/info.json                               codebase_version "v3.0", features, totals, path templates
    meta/stats.json                              per-feature min/max/mean/std/count/q01..q99 (images per channel)
    meta/tasks.parquet                           task strings (the pandas index) -> task_index
    meta/episodes/chunk-000/file-000.parquet     one row per episode, row i = episode i
    data/chunk-CCC/file-FFF.parquet              frames: observation.state, action, timestamp, indices
    videos/observation.images.<cam>/chunk-CCC/file-FFF.mp4

This writer stores each episode in its own data file and its own mp4 per camera (file FFF = episode % 1000, chunk
CCC = episode // 1000): a valid v3.0 layout (the loader follows the indices in meta/episodes) that lets an episode be
committed by renaming finished files into place. SDK-specific metadata lives under info["vla"] and in extra
``vla/...`` columns of the episodes table, which LeRobot ignores.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vla_sdk.errors import InputError, NotFound
from vla_sdk.schema import ENV_STATE, IMAGE_PREFIX  # noqa: F401 - re-exported

CODEBASE_VERSION = "v3.0"
VLA_FORMAT_VERSION = 1  # version of the info["vla"] block and the vla/* episode columns
CHUNKS_SIZE = 1000
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
INFO_PATH, STATS_PATH, TASKS_PATH = "meta/info.json", "meta/stats.json", "meta/tasks.parquet"
STAGING = ".staging"  # uncommitted episodes; never read as data
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
DEFAULT_FEATURES = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}


def chunk_file(episode: int) -> tuple[int, int]:
    return divmod(episode, CHUNKS_SIZE)


def data_path(episode: int) -> str:
    c, f = chunk_file(episode)
    return DATA_PATH.format(chunk_index=c, file_index=f)


def video_path(key: str, episode: int) -> str:
    c, f = chunk_file(episode)
    return VIDEO_PATH.format(video_key=key, chunk_index=c, file_index=f)


def camera_key(camera: str) -> str:
    return IMAGE_PREFIX + camera


def video_keys(features: dict) -> list[str]:
    return [k for k, f in features.items() if f["dtype"] == "video"]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a partial one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def json_bytes(obj) -> bytes:
    return (json.dumps(obj, indent=2) + "\n").encode()


def parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="snappy")
    return sink.getvalue().to_pybytes()


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, json_bytes(obj))


def atomic_write_parquet(path: Path, table: pa.Table) -> None:
    atomic_write_bytes(path, parquet_bytes(table))


def tasks_table(tasks: list[str]) -> pa.Table:
    """meta/tasks.parquet as LeRobot reads it: task strings are the pandas index, ordered by task_index."""
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()), "task": pa.array(tasks, pa.string())})
    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [],
        "columns": [
            {
                "name": "task_index",
                "field_name": "task_index",
                "pandas_type": "int64",
                "numpy_type": "int64",
                "metadata": None,
            },
            {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object", "metadata": None},
        ],
    }
    return table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})


# ---- features and meta tables -----------------------------------------------------------------------------------
def make_features(
    state_names: list[str],
    action_names: list[str],
    cameras: list[str],
    image_size: tuple[int, int],
    fps: int,
    codec: str = "h264",
    env_names: list[str] | None = None,
) -> dict:
    """The info.json ``features`` for a robot's state/action vectors and its cameras (stored as mp4 video), plus
    ``observation.environment_state`` when ``env_names`` names its entries."""
    h, w = image_size
    feats = {
        "observation.state": {"dtype": "float32", "shape": [len(state_names)], "names": list(state_names)},
        "action": {"dtype": "float32", "shape": [len(action_names)], "names": list(action_names)},
    }
    if env_names:
        feats[ENV_STATE] = {"dtype": "float32", "shape": [len(env_names)], "names": list(env_names)}
    for cam in cameras:
        feats[camera_key(cam)] = {
            "dtype": "video",
            "shape": [h, w, 3],
            "names": ["height", "width", "channels"],
            "info": {
                "video.height": h,
                "video.width": w,
                "video.codec": codec,
                "video.pix_fmt": "yuv420p",
                "video.is_depth_map": False,
                "video.fps": fps,
                "video.channels": 3,
                "has_audio": False,
            },
        }
    feats["timestamp_wall"] = {"dtype": "float64", "shape": [1], "names": None}  # measured s since episode start
    return feats | DEFAULT_FEATURES


def new_info(features: dict, fps: int, robot_type: str | None, vla: dict) -> dict:
    return {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": robot_type,
        "total_episodes": 0,
        "total_frames": 0,
        "total_tasks": 0,
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 200,
        "fps": int(fps),
        "splits": {"train": "0:0"},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if video_keys(features) else None,
        "features": features,
        "vla": {"format_version": VLA_FORMAT_VERSION, **vla},
    }


def totals(episodes: list[dict], tasks: list[str]) -> dict:
    n = len(episodes)
    return {
        "total_episodes": n,
        "total_frames": int(sum(e["length"] for e in episodes)),
        "total_tasks": len(tasks),
        "splits": {"train": f"0:{n}"},
    }


def read_info(root: Path) -> dict:
    path = root / INFO_PATH
    if not path.exists():
        raise NotFound(f"{root} is not a dataset: {INFO_PATH} is missing")
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not valid JSON ({e})") from None
    for key in ("codebase_version", "fps", "features", "total_episodes", "total_frames"):
        if key not in info:
            raise InputError(f"{path}: missing field {key!r}")
    if info["codebase_version"] != CODEBASE_VERSION:
        raise InputError(f"{path}: codebase_version {info['codebase_version']!r}, this SDK reads {CODEBASE_VERSION!r}")
    return info


def task_column(table: pa.Table) -> str:
    """The column of meta/tasks.parquet that holds the task strings: ``task`` (this SDK names its pandas index),
    else the pandas index column (LeRobot's ``pd.DataFrame({"task_index": ...}, index=tasks).to_parquet()`` stores an
    unnamed index as ``__index_level_0__``). ``"task"`` when there is neither, for the error to name."""
    if "task" in table.column_names:
        return "task"
    try:
        index = json.loads((table.schema.metadata or {}).get(b"pandas", b"{}")).get("index_columns", [])
    except (ValueError, AttributeError):
        index = []
    for name in [*(c for c in index if isinstance(c, str)), "__index_level_0__"]:
        if name in table.column_names:
            return name
    return "task"


def read_tasks(root: Path) -> list[str]:
    table = pq.read_table(root / TASKS_PATH)
    order = np.argsort(table.column("task_index").to_numpy())
    tasks = table.column(task_column(table)).to_pylist()
    return [tasks[i] for i in order]


def _episode_columns(features: dict) -> dict[str, pa.DataType]:
    cols = {
        "episode_index": pa.int64(),
        "tasks": pa.list_(pa.string()),
        "length": pa.int64(),
        "data/chunk_index": pa.int64(),
        "data/file_index": pa.int64(),
        "dataset_from_index": pa.int64(),
        "dataset_to_index": pa.int64(),
    }
    for k in video_keys(features):
        cols |= {
            f"videos/{k}/chunk_index": pa.int64(),
            f"videos/{k}/file_index": pa.int64(),
            f"videos/{k}/from_timestamp": pa.float64(),
            f"videos/{k}/to_timestamp": pa.float64(),
        }
    cols |= {
        "meta/episodes/chunk_index": pa.int64(),
        "meta/episodes/file_index": pa.int64(),
        "vla/seed": pa.int64(),
        "vla/success": pa.bool_(),
        "vla/wall_seconds": pa.float64(),
        "vla/overruns": pa.int64(),
        "vla/extra": pa.string(),
    }
    for k in video_keys(features):
        cols[f"vla/hist/{k}"] = pa.list_(pa.int64(), 768)  # per-channel uint8 histogram, [3, 256] flattened
    for k in ("data", *video_keys(features)):
        cols[f"vla/sha256/{k}"] = pa.string()  # hex SHA-256 of the episode's file, null in older datasets
    return cols


def episodes_table(episodes: list[dict], features: dict) -> pa.Table:
    """meta/episodes parquet from in-memory episode rows (see DatasetWriter._commit for the row keys)."""
    cols = _episode_columns(features)
    data: dict[str, list] = {c: [] for c in cols}
    for e in episodes:
        i, n = e["episode_index"], e["length"]
        c, f = chunk_file(i)
        data["episode_index"].append(i)
        data["tasks"].append(e["tasks"])
        data["length"].append(n)
        data["data/chunk_index"].append(c)
        data["data/file_index"].append(f)
        data["dataset_from_index"].append(e["start"])
        data["dataset_to_index"].append(e["start"] + n)
        for k in video_keys(features):
            vfps = features[k]["info"]["video.fps"]
            data[f"videos/{k}/chunk_index"].append(c)
            data[f"videos/{k}/file_index"].append(f)
            data[f"videos/{k}/from_timestamp"].append(0.0)  # one episode per mp4
            data[f"videos/{k}/to_timestamp"].append(n / vfps)
            data[f"vla/hist/{k}"].append(np.asarray(e["hist"][k]).reshape(-1).tolist())
        data["meta/episodes/chunk_index"].append(0)
        data["meta/episodes/file_index"].append(0)
        data["vla/seed"].append(e.get("seed"))
        data["vla/success"].append(e.get("success"))
        data["vla/wall_seconds"].append(e.get("wall_seconds"))
        data["vla/overruns"].append(e.get("overruns", 0))
        data["vla/extra"].append(json.dumps(e.get("extra", {})))
        hashes = e.get("sha256") or {}
        for k in ("data", *video_keys(features)):
            data[f"vla/sha256/{k}"].append(hashes.get(k))
    return pa.table({c: pa.array(v, t) for (c, t), v in zip(cols.items(), data.values(), strict=True)})


def read_episodes(root: Path) -> list[dict]:
    """Episode rows (as DatasetWriter keeps them) from meta/episodes."""
    files = sorted((root / "meta/episodes").glob("*/*.parquet"))
    if not files:
        raise NotFound(f"{root}: no meta/episodes/*/*.parquet")
    rows = pa.concat_tables([pq.read_table(f) for f in files]).to_pylist()
    out = []
    for r in rows:
        hist = {
            k[len("vla/hist/") :]: np.asarray(v, np.int64).reshape(3, 256)
            for k, v in r.items()
            if k.startswith("vla/hist/") and v is not None
        }
        out.append(
            {
                "episode_index": r["episode_index"],
                "tasks": r["tasks"],
                "length": r["length"],
                "start": r["dataset_from_index"],
                "seed": r.get("vla/seed"),
                "success": r.get("vla/success"),
                "wall_seconds": r.get("vla/wall_seconds"),
                "overruns": r.get("vla/overruns") or 0,
                "hist": hist,
                "extra": json.loads(r.get("vla/extra") or "{}"),
                # {"data" or video key: hex SHA-256 of its file}; None for episodes recorded before checksums
                "sha256": {k[len("vla/sha256/") :]: v for k, v in r.items() if k.startswith("vla/sha256/") and v}
                or None,
            }
        )
    return out


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (the content checksum stored per episode file in meta/episodes)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def episode_files(episode: int, keys: list[str]) -> dict[str, str]:
    """{"data" or video key: path relative to the root} of one episode's files, as this SDK writes them."""
    return {"data": data_path(episode), **{k: video_path(k, episode) for k in keys}}


def vector_column(x: np.ndarray) -> pa.FixedSizeListArray:
    """[N, D] float array -> fixed_size_list<float32>[D] (LeRobot's type for vector features)."""
    x = np.asarray(x, np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1])


def column_array(table: pa.Table, name: str) -> np.ndarray:
    """A vector column back to a float32 array [N, D]."""
    col = table.column(name).combine_chunks()
    if isinstance(col.type, pa.FixedSizeListType):
        return col.values.to_numpy(zero_copy_only=False).reshape(len(col), col.type.list_size).astype(np.float32)
    return np.array(col.to_pylist(), dtype=np.float32)
