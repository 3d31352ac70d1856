"""`vla dataset convert --from lerobot-v2.1`: a LeRobot v2.1 dataset -> a v3.0 dataset in this SDK's layout.

The v2.1 layout, as lerobot 0.1-0.3's ``LeRobotDataset`` wrote it and as lerobot's own
``datasets/v30/convert_dataset_v21_to_v30.py`` reads it:

* ``meta/info.json``: ``codebase_version`` "v2.1" (or "v2.0"), ``fps``, ``features`` (as in v3.0), ``chunks_size``,
  ``data_path`` ``data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet`` and ``video_path``
  ``videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4`` (episode_chunk = episode //
  chunks_size);
* ``meta/episodes.jsonl``: one ``{"episode_index", "tasks", "length"}`` per line; ``meta/tasks.jsonl``: one
  ``{"task_index", "task"}`` per line; ``meta/episodes_stats.jsonl`` (v2.1) or ``meta/stats.json`` (v2.0):
  LeRobot's sampled statistics, not used (this SDK recomputes exact ones);
* one parquet and one mp4 per episode; frame columns as in v3.0 (vectors as ``list<float>``).

Converting rather than reading v2.1 in place keeps one reader, one validator and one trainer input path (format
upgrades live in one place, as lerobot itself does it): the output is the layout this SDK writes (one episode per
data file and per mp4, so the parquet files are rewritten and the mp4s copied byte for byte), with exact
statistics, per-episode image histograms and SHA-256 checksums. Everything is checked before the output folder
appears; errors name the file and the field.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pyarrow as pa

from vla_sdk.data import layout as L
from vla_sdk.data import validate as V
from vla_sdk.data.stats import image_histogram
from vla_sdk.data.writer import commit_meta, compute_stats
from vla_sdk.errors import AlreadyExists, InputError, NotFound
from vla_sdk.video import probe_video, read_video

VERSIONS = ("v2.0", "v2.1")


def _jsonl(path: Path, fields: dict[str, type]) -> list[dict]:
    """The objects of a .jsonl file, each checked to have ``fields`` of the given types."""
    if not path.is_file():
        raise NotFound(f"{path}: missing")
    rows = []
    for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            raise InputError(f"{path}: line {n} is not valid JSON ({V.one_line(e)})") from None
        if not isinstance(row, dict):
            raise InputError(f"{path}: line {n} must be a JSON object")
        for key, kind in fields.items():
            if key not in row:
                raise InputError(f"{path}: line {n}: missing field {key!r}")
            if not isinstance(row[key], kind) or isinstance(row[key], bool):
                raise InputError(f"{path}: line {n}: field {key!r} must be {kind.__name__}, got {row[key]!r:.60}")
        rows.append(row)
    return rows


def read_v21_meta(src: Path) -> tuple[dict, list[str], list[dict]]:
    """(info, tasks ordered by task_index, episode rows ordered by episode_index) of a v2.x dataset."""
    path = src / L.INFO_PATH
    if not path.exists():
        raise NotFound(f"{src} is not a dataset: {L.INFO_PATH} is missing")
    info = V.read_json(path)
    if not isinstance(info, dict):
        raise InputError(f"{path}: must be a JSON object")
    for key in ("codebase_version", "fps", "features", "data_path"):
        if key not in info:
            raise InputError(f"{path}: missing field {key!r}")
    if info["codebase_version"] not in VERSIONS:
        raise InputError(f"{path}: codebase_version {info['codebase_version']!r}, expected one of {list(VERSIONS)}")
    if not (isinstance(info["fps"], int) and 0 < info["fps"] <= V.MAX_FPS):
        raise InputError(f"{path}: field 'fps' must be an integer in 1..{V.MAX_FPS}, got {info['fps']!r}")
    if not isinstance(info["features"], dict) or not info["features"]:
        raise InputError(f"{path}: field 'features' must be a non-empty object")
    images = [k for k, f in info["features"].items() if isinstance(f, dict) and f.get("dtype") == "image"]
    if images:
        raise InputError(f"{path}: features {images} store images in parquet; only video features are converted")
    if L.video_keys(info["features"]) and not isinstance(info.get("video_path"), str):
        raise InputError(f"{path}: missing field 'video_path' (the dataset has video features)")

    tasks_path = src / "meta/tasks.jsonl"
    task_rows = _jsonl(tasks_path, {"task_index": int, "task": str})
    if sorted(r["task_index"] for r in task_rows) != list(range(len(task_rows))):
        raise InputError(f"{tasks_path}: task_index is not a permutation of 0..{len(task_rows) - 1}")
    tasks = [r["task"] for r in sorted(task_rows, key=lambda r: r["task_index"])]
    ep_path = src / "meta/episodes.jsonl"
    episodes = sorted(
        _jsonl(ep_path, {"episode_index": int, "tasks": list, "length": int}), key=lambda r: r["episode_index"]
    )
    for i, r in enumerate(episodes):
        if r["episode_index"] != i:
            raise InputError(f"{ep_path}: episode_index {r['episode_index']} where {i} was expected (contiguous)")
        if not 0 < r["length"] <= V.MAX_COUNT:
            raise InputError(f"{ep_path}: episode {i}: field 'length' must be positive, got {r['length']}")
        if not all(isinstance(t, str) for t in r["tasks"]):
            raise InputError(f"{ep_path}: episode {i}: field 'tasks' must be a list of strings")
    if not episodes:
        raise InputError(f"{ep_path}: no episodes")
    return info, tasks, episodes


def _template(info: dict, key: str, **fields) -> str:
    try:
        rel = info[key].format(**fields)
    except (KeyError, IndexError, ValueError, AttributeError) as e:
        raise InputError(f"meta/info.json: {key} {info[key]!r} is not a v2.1 template ({V.one_line(e)})") from None
    if rel.startswith("/") or ".." in Path(rel).parts:
        raise InputError(f"meta/info.json: {key} {info[key]!r} points outside the dataset")
    return rel


def convert_lerobot_v21(src: str | Path, out: str | Path, force: bool = False) -> dict:
    """Convert the LeRobot v2.x dataset at ``src`` into a new dataset at ``out``; returns a summary."""
    src, out = Path(src), Path(out)
    t_start = time.monotonic()
    info, tasks, episodes = read_v21_meta(src)
    if out.exists() and not force:
        raise AlreadyExists(f"{out} exists (use --force to replace it)")
    fps, chunks = info["fps"], int(info.get("chunks_size") or L.CHUNKS_SIZE)
    features = {k: dict(f) for k, f in info["features"].items()}
    vkeys = L.video_keys(features)
    vectors = [n for n in V.VECTORS if n in features]
    for n in vectors:  # rewritten as fixed_size_list<float32>, this SDK's (and LeRobot v3.0's) vector type
        features[n]["dtype"] = "float32"
    for name, f in L.DEFAULT_FEATURES.items():
        features.setdefault(name, dict(f))
    problems = V.info_problems(L.new_info(features, fps, info.get("robot_type"), {}) | {"total_tasks": len(tasks)})
    if problems:
        raise InputError(f"{src / L.INFO_PATH}: {problems[0]}")

    tmp = out.with_name(f".{out.name}.converting")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        rows, arrays, start = [], {n: [] for n in vectors}, 0
        for i, ep in enumerate(episodes):
            chunk = i // chunks
            rel = _template(info, "data_path", episode_chunk=chunk, episode_index=i)
            table = V.read_parquet(src / rel)
            row = {"length": ep["length"], "dataset_from_index": start}
            bad = V.data_problems(table, features, row, i, len(tasks), fps, strict=False)
            if bad:
                raise InputError(f"{src / rel}: {bad[0]}")
            keep = [n for n, f in features.items() if f["dtype"] not in ("video", "image")]
            cols = {n: (L.vector_column(V.vector(table, n)) if n in vectors else table.column(n)) for n in keep}
            table = pa.table(cols)
            used = sorted({tasks[int(t)] for t in V.vector(table, "task_index")[:, 0]})
            dst = tmp / L.data_path(i)
            L.atomic_write_parquet(dst, table)
            sha = {"data": L.file_sha256(dst)}
            hist = {}
            for key in vkeys:
                vrel = _template(info, "video_path", episode_chunk=chunk, video_key=key, episode_index=i)
                times, shape = probe_video(src / vrel)
                if len(times) != ep["length"]:
                    raise InputError(f"{src / vrel}: {len(times)} frames, meta/episodes.jsonl says {ep['length']}")
                if shape is not None and list(shape) != list(features[key]["shape"]):
                    raise InputError(f"{src / vrel}: frames are {shape}, info.json says {features[key]['shape']}")
                vdst = tmp / L.video_path(key, i)
                vdst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src / vrel, vdst)
                hist[key] = sum(image_histogram(f) for f in read_video(vdst))
                sha[key] = L.file_sha256(vdst)
            for n in vectors:
                arrays[n].append(V.vector(table, n))
            rows.append(
                {
                    "episode_index": i,
                    "tasks": used or list(ep["tasks"]),
                    "length": ep["length"],
                    "start": start,
                    "seed": None,
                    "success": None,
                    "wall_seconds": None,
                    "overruns": 0,
                    "hist": hist,
                    "extra": {},
                    "sha256": sha,
                }
            )
            start += ep["length"]
        vla = {
            "task": tasks[0] if len(tasks) == 1 else None,
            "source": {"format": f"lerobot-{info['codebase_version']}", "path": str(src)},
        }
        new = L.new_info(features, fps, info.get("robot_type"), vla) | L.totals(rows, tasks)
        stats = compute_stats(rows, arrays, fps)
        commit_meta(
            tmp,
            {
                L.TASKS_PATH: L.parquet_bytes(L.tasks_table(tasks)),
                L.EPISODES_PATH: L.parquet_bytes(L.episodes_table(rows, features)),
                L.STATS_PATH: L.json_bytes(stats),
                L.INFO_PATH: L.json_bytes(new),
            },
        )
        shutil.rmtree(tmp / L.STAGING, ignore_errors=True)
        if out.exists():
            shutil.rmtree(out)
        tmp.replace(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {
        "dataset": str(out),
        "source": str(src),
        "format": f"lerobot-{info['codebase_version']}",
        "episodes": len(rows),
        "frames": start,
        "tasks": tasks,
        "cameras": [k[len(L.IMAGE_PREFIX) :] for k in vkeys],
        "robot": info.get("robot_type"),
        "seconds": round(time.monotonic() - t_start, 2),
    }
