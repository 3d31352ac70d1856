"""Crash-safe dataset writing: episodes are staged, then committed atomically.

An episode is recorded into ``.staging/ep-NNNNNN/`` (video frames are encoded by one background thread per camera
while the episode runs, so committing an episode does not stall the next one). ``commit()`` renames the finished
data file and mp4s into place, then atomically rewrites meta/episodes, meta/tasks, meta/stats.json and finally
meta/info.json. A process killed at any moment (SIGINT or SIGKILL) leaves every episode committed before the kill
readable, with contiguous indices; ``DatasetWriter.open`` (``--resume``) repairs what a kill between two renames
left behind (uncommitted files are moved aside to ``.staging/``, never deleted).
"""

from __future__ import annotations

import queue
import shutil
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vla_sdk.data import layout as L
from vla_sdk.data.stats import histogram_stats, image_histogram, vector_stats
from vla_sdk.errors import AlreadyExists, InputError, NotFound, RuntimeFailure
from vla_sdk.video import VideoWriter


class _VideoStream:
    """Encodes frames on a background thread; ``close()`` waits for the queue to drain."""

    def __init__(self, path: Path, fps: int):
        self.writer = VideoWriter(path, fps=fps, gop=2)
        self.queue: queue.Queue = queue.Queue(maxsize=256)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while (frame := self.queue.get()) is not None:
                self.writer.write(frame)
        except BaseException as e:  # noqa: BLE001 - re-raised on the recording thread at close()
            self.error = e
            while self.queue.get() is not None:  # keep draining so put() never blocks forever
                pass
        finally:
            self.writer.close()

    def put(self, frame: np.ndarray) -> None:
        self.queue.put(frame)

    def close(self) -> int:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise RuntimeFailure(f"video encoding failed for {self.writer.path}: {self.error}") from self.error
        return self.writer.frames


class EpisodeWriter:
    """One episode being recorded. ``add()`` per frame, then ``commit()`` or ``discard()``."""

    def __init__(self, dataset: DatasetWriter, index: int, task: str, seed: int | None, extra: dict):
        self.dataset, self.index, self.task, self.seed, self.extra = dataset, index, task, seed, extra
        self.staging = dataset.root / L.STAGING / f"ep-{index:06d}"
        if self.staging.exists():
            dataset._set_aside(self.staging, "aborted")
        self.staging.mkdir(parents=True)
        self.states: list[np.ndarray] = []
        self.actions: list[np.ndarray] = []
        self.env_states: list[np.ndarray] = []
        self.wall: list[float] = []
        self.hist = {k: np.zeros((3, 256), np.int64) for k in dataset.video_keys}
        self.streams = {k: _VideoStream(self.staging / f"{k}.mp4", dataset.fps) for k in dataset.video_keys}
        self.t0 = time.perf_counter()
        self.closed = False

    def __len__(self) -> int:
        return len(self.states)

    def add(
        self, images: dict[str, np.ndarray], state: np.ndarray, action: np.ndarray, env_state: np.ndarray | None = None
    ) -> None:
        """Append one frame: camera images {camera: uint8[h, w, 3]}, state [A], the action taken [A] and, in a
        dataset with ``observation.environment_state``, the object positions [E]."""
        ds = self.dataset
        cams = {L.camera_key(c): img for c, img in images.items()}
        if set(cams) != set(ds.video_keys):
            raise InputError(
                f"frame {len(self)}: cameras {sorted(images)} given, dataset {ds.root} expects "
                f"{sorted(k[len(L.IMAGE_PREFIX) :] for k in ds.video_keys)}"
            )
        for key, img in cams.items():
            want = tuple(ds.features[key]["shape"])
            if img.shape != want or img.dtype != np.uint8:
                raise InputError(f"frame {len(self)}: {key} must be uint8 {want}, got {img.dtype} {img.shape}")
        vectors = {"observation.state": state, "action": action}
        if L.ENV_STATE in ds.features or env_state is not None:
            vectors[L.ENV_STATE] = env_state
        for name, v in vectors.items():
            if name not in ds.features:
                raise InputError(f"frame {len(self)}: dataset {ds.root} has no {name} feature to hold env_state")
            if v is None:
                raise InputError(f"frame {len(self)}: dataset {ds.root} records {name}; env_state was not given")
            want = tuple(ds.features[name]["shape"])
            if np.shape(v) != want or not np.all(np.isfinite(v)):
                raise InputError(f"frame {len(self)}: {name} must be finite with shape {want}, got {np.shape(v)}")
        self.wall.append(time.perf_counter() - self.t0)
        self.states.append(np.asarray(state, np.float32))
        self.actions.append(np.asarray(action, np.float32))
        if env_state is not None:
            self.env_states.append(np.asarray(env_state, np.float32))
        for key, img in cams.items():
            self.hist[key] += image_histogram(img)
            self.streams[key].put(np.ascontiguousarray(img))

    def commit(self, success: bool | None = None) -> int:
        """Make the episode part of the dataset; returns its episode index."""
        if self.closed:
            raise RuntimeError(f"episode {self.index} was already committed or discarded")
        if not self.states:
            raise InputError(f"episode {self.index} has no frames; discard it instead")
        self.closed = True
        for key, stream in self.streams.items():
            n = stream.close()
            if n != len(self):
                raise RuntimeError(f"episode {self.index}: {key} video has {n} frames, expected {len(self)}")
        return self.dataset._commit(self, success)

    def discard(self) -> None:
        """Drop the episode (its staging folder is removed: nothing of it was ever part of the dataset)."""
        if self.closed:
            return
        self.closed = True
        for stream in self.streams.values():
            try:
                stream.close()
            except RuntimeError:
                pass
        shutil.rmtree(self.staging, ignore_errors=True)


class DatasetWriter:
    """Appends episodes to a dataset folder. Create with :meth:`create`, continue with :meth:`open`."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.info = L.read_info(self.root)
        self.features = self.info["features"]
        self.fps = int(self.info["fps"])
        self.video_keys = L.video_keys(self.features)
        self.tasks = L.read_tasks(self.root)
        self.episodes = L.read_episodes(self.root)
        names = ("observation.state", "action", L.ENV_STATE)
        self._vectors: dict[str, list[np.ndarray]] = {k: [] for k in names if k in self.features}
        for ep in self.episodes:
            table = pq.read_table(self.root / L.data_path(ep["episode_index"]), columns=list(self._vectors))
            for name in self._vectors:
                self._vectors[name].append(L.column_array(table, name))

    @classmethod
    def create(
        cls, root: str | Path, features: dict, fps: int, robot_type: str | None, vla: dict, force: bool = False
    ) -> DatasetWriter:
        """Start an empty dataset at ``root``. An existing dataset or non-empty folder there is an error, unless
        ``force`` (then it is deleted first: the only place this SDK deletes recorded data)."""
        root = Path(root)
        if root.exists() and any(root.iterdir()):
            if not force:
                what = (
                    "already holds a dataset; use --resume to add episodes to it"
                    if (root / L.INFO_PATH).exists()
                    else "exists and is not empty; choose a new --out folder"
                )
                raise AlreadyExists(f"{root} {what} (or --force to delete it and start over)")
            shutil.rmtree(root)
        if int(fps) != fps or fps <= 0:
            raise InputError(f"fps must be a positive integer (LeRobot stores it as int), got {fps}")
        info = L.new_info(features, int(fps), robot_type, vla)
        L.atomic_write_parquet(root / L.TASKS_PATH, L.tasks_table([]))
        L.atomic_write_parquet(root / L.EPISODES_PATH, L.episodes_table([], features))
        L.atomic_write_json(root / L.STATS_PATH, {})  # no frames yet
        L.atomic_write_json(root / L.INFO_PATH, info)
        return cls(root)

    @classmethod
    def open(cls, root: str | Path) -> DatasetWriter:
        """Reopen a dataset to add episodes, repairing what an interrupted recording left (see module doc)."""
        root = Path(root)
        if not (root / L.INFO_PATH).exists():
            raise NotFound(f"{root} holds no dataset (missing {L.INFO_PATH}); drop --resume to create one")
        writer = cls(root)
        writer._recover()
        return writer

    def begin_episode(self, task: str, seed: int | None = None, extra: dict | None = None) -> EpisodeWriter:
        if not task.strip():
            raise InputError("an episode needs a non-empty task instruction")
        return EpisodeWriter(self, len(self.episodes), task, seed, extra or {})

    @property
    def num_episodes(self) -> int:
        return len(self.episodes)

    # ---- commit ------------------------------------------------------------------------------------------------
    def _commit(self, ep: EpisodeWriter, success: bool | None) -> int:
        idx = len(self.episodes)
        if ep.index != idx:
            raise RuntimeError(f"episode {ep.index} cannot be committed as episode {idx} (episodes out of order)")
        if ep.task not in self.tasks:
            self.tasks.append(ep.task)
        n, start = len(ep), sum(e["length"] for e in self.episodes)
        vectors = {"observation.state": np.stack(ep.states), "action": np.stack(ep.actions)}
        if L.ENV_STATE in self._vectors:
            vectors[L.ENV_STATE] = np.stack(ep.env_states)
        frame = np.arange(n)
        table = pa.table(
            {
                **{name: L.vector_column(v) for name, v in vectors.items()},
                "timestamp": pa.array((frame / self.fps).astype(np.float32)),
                "timestamp_wall": pa.array(np.array(ep.wall, np.float64)),
                "frame_index": pa.array(frame, pa.int64()),
                "episode_index": pa.array(np.full(n, idx), pa.int64()),
                "index": pa.array(start + frame, pa.int64()),
                "task_index": pa.array(np.full(n, self.tasks.index(ep.task)), pa.int64()),
            }
        )
        staged = ep.staging / "data.parquet"
        pq.write_table(table, staged, compression="snappy")
        # Rename the finished files into place; until meta/ says so, they are not part of the dataset.
        moves = [(staged, self.root / L.data_path(idx))]
        moves += [(ep.staging / f"{k}.mp4", self.root / L.video_path(k, idx)) for k in self.video_keys]
        for src, dst in moves:
            dst.parent.mkdir(parents=True, exist_ok=True)
            src.replace(dst)
        overruns = int(np.sum(np.diff(ep.wall) > 1.5 / self.fps)) if ep.extra.get("paced") else 0
        row = {
            "episode_index": idx,
            "tasks": [ep.task],
            "length": n,
            "start": start,
            "seed": ep.seed,
            "success": success,
            "wall_seconds": float(ep.wall[-1]),
            "overruns": overruns,
            "hist": {k: ep.hist[k] for k in self.video_keys},
            "extra": {k: v for k, v in ep.extra.items()},
        }
        self.episodes.append(row)
        for name, v in vectors.items():
            self._vectors[name].append(v)
        if overruns:
            msg = (
                f"episode {idx}: the loop ran slower than {self.fps} fps on {overruns} of {n} frames "
                f"(timestamp_wall holds the measured times)"
            )
            warnings.warn(msg, stacklevel=2)
            self.info["vla"].setdefault("timing_notes", []).append(msg)
        self._write_meta()
        shutil.rmtree(ep.staging, ignore_errors=True)
        return idx

    def _write_meta(self) -> None:
        L.atomic_write_parquet(self.root / L.TASKS_PATH, L.tasks_table(self.tasks))
        L.atomic_write_parquet(self.root / L.EPISODES_PATH, L.episodes_table(self.episodes, self.features))
        L.atomic_write_json(self.root / L.STATS_PATH, self.stats())
        self.info.update(L.totals(self.episodes, self.tasks))
        L.atomic_write_json(self.root / L.INFO_PATH, self.info)  # the commit point

    def stats(self, episodes: list[int] | None = None) -> dict:
        """Exact statistics over ``episodes`` (default: all); see :mod:`vla_sdk.data.stats`."""
        eps = range(len(self.episodes)) if episodes is None else episodes
        return compute_stats(
            [self.episodes[i] for i in eps], {k: [v[i] for i in eps] for k, v in self._vectors.items()}, self.fps
        )

    # ---- recovery ----------------------------------------------------------------------------------------------
    def _recover(self) -> None:
        """Bring files and meta/ back in agreement after a kill; uncommitted files are moved aside, not deleted."""
        n = len(self.episodes)
        staging = self.root / L.STAGING
        for d in sorted(staging.glob("ep-*")) if staging.exists() else []:
            self._set_aside(d, "aborted")
        committed = {L.data_path(i) for i in range(n)} | {L.video_path(k, i) for k in self.video_keys for i in range(n)}
        for pattern in ("data/*/*.parquet", "videos/*/*/*.mp4"):
            for f in sorted(self.root.glob(pattern)):
                if str(f.relative_to(self.root)) not in committed:
                    self._set_aside(f, "orphaned")
        if self.info.get("total_episodes") != n or not (self.root / L.STATS_PATH).exists():
            self._write_meta()  # a kill between meta/episodes and meta/info.json

    def _set_aside(self, path: Path, why: str) -> None:
        dest = self.root / L.STAGING / why / f"{time.strftime('%Y%m%d-%H%M%S')}-{path.relative_to(self.root)}"
        dest = dest.with_name(dest.name.replace("/", "_"))
        dest.parent.mkdir(parents=True, exist_ok=True)
        path.replace(dest)
        warnings.warn(f"moved uncommitted {path} to {dest} (not part of the dataset)", stacklevel=2)


def compute_stats(episodes: list[dict], vectors: dict[str, list[np.ndarray]], fps: int) -> dict:
    """meta/stats.json content for the given episode rows (exact; images from their stored histograms)."""
    if not episodes:
        return {}
    stats = {name: vector_stats(np.concatenate(arrs)) for name, arrs in vectors.items()}
    lengths = [e["length"] for e in episodes]
    frame = np.concatenate([np.arange(n) for n in lengths])
    stats["timestamp"] = vector_stats(frame / fps)
    stats["frame_index"] = vector_stats(frame)
    stats["episode_index"] = vector_stats(np.concatenate([np.full(e["length"], e["episode_index"]) for e in episodes]))
    stats["index"] = vector_stats(np.concatenate([e["start"] + np.arange(e["length"]) for e in episodes]))
    for key in episodes[0]["hist"]:
        stats[key] = histogram_stats(sum(e["hist"][key] for e in episodes), sum(lengths))
    return stats
