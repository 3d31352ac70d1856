"""Crash-safe dataset writing: episodes are staged, then committed atomically.

An episode is recorded into ``.staging/ep-NNNNNN/`` (video frames are encoded by one background thread per camera
while the episode runs, so committing an episode does not stall the next one). ``commit()`` hashes (SHA-256) and
fsyncs the finished data file and mp4s, renames them into place, then commits meta/ in one step: the complete new
meta/ is written (and fsynced) into ``.staging/meta-new-XXXX/`` and swapped with meta/ by one
``renameat2(RENAME_EXCHANGE)`` (Linux; ``renamex_np(RENAME_SWAP)`` on macOS). That swap is the commit point: before
it, meta/ is the old one and the episode's files are unreferenced orphans; after it, meta/ names them with their
checksums. A process killed at any instant (SIGINT or SIGKILL) therefore leaves a dataset that validates, holding
every episode committed before the kill with contiguous indices. ``DatasetWriter.open`` (``--resume``) repairs what a
kill left behind: orphans and aborted episodes are moved aside to ``.staging/``, never deleted; leftover meta folders
under ``.staging/`` (never read as data) are removed; committed files whose bytes changed are refused.

Fallback where no atomic swap exists (other OSes, or a filesystem answering EINVAL/ENOSYS/ENOTSUP): meta/ is renamed
to ``.staging/meta-old-XXXX`` and the new folder renamed to meta/. A kill between those two renames leaves no
meta/ (the dataset reads as missing) until :func:`repair_meta` (called by ``open``/``--resume``) renames the old one
back; no committed episode is lost.
"""

from __future__ import annotations

import ctypes
import errno
import os
import queue
import secrets
import shutil
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vla_sdk.data import checksums
from vla_sdk.data import layout as L
from vla_sdk.data.stats import histogram_stats, image_histogram, vector_stats
from vla_sdk.errors import AlreadyExists, InputError, NotFound, RuntimeFailure
from vla_sdk.video import VideoWriter

META = "meta"
META_NEW, META_OLD = "meta-new-", "meta-old-"  # folder name prefixes under .staging/ (never read as data)


def _no_crash(step: str) -> None:
    pass


# Called with the name of each step of a commit ("staged", "moved data", "meta:wrote meta/info.json",
# "meta:swapped", ...). Tests replace it to kill the process at exactly that point; it does nothing otherwise.
crash_point: Callable[[str], None] = _no_crash


def _fsync(path: Path) -> None:
    """Flush a file's or a folder's (its entries') changes to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_AT_FDCWD, _RENAME_EXCHANGE, _RENAME_SWAP = -100, 2, 2
_NO_SWAP = {errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP}


def exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step; False where this OS or filesystem cannot (the caller falls back).

    Linux: ``renameat2(RENAME_EXCHANGE)`` (glibc >= 2.28, kernel >= 3.15; ext4, xfs, btrfs, tmpfs, ...);
    macOS: ``renamex_np(RENAME_SWAP)`` (APFS)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if sys.platform.startswith("linux") and hasattr(libc, "renameat2"):
            fn = libc.renameat2
            fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
        elif sys.platform == "darwin" and hasattr(libc, "renamex_np"):
            fn = libc.renamex_np
            fn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint]
            rc = fn(os.fsencode(a), os.fsencode(b), _RENAME_SWAP)
        else:
            return False
    except OSError:  # no loadable C library (unusual platforms)
        return False
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in _NO_SWAP:
        return False
    raise OSError(err, f"cannot swap {a} and {b}: {os.strerror(err)}")


def commit_meta(root: Path, files: dict[str, bytes]) -> None:
    """Replace ``root/meta`` by a folder holding exactly ``files`` ({path relative to root, under meta/: bytes})
    plus any other files of the old meta/ outside meta/episodes/, in one atomic step (see the module doc)."""
    staging = root / L.STAGING
    staging.mkdir(parents=True, exist_ok=True)
    tmp = staging / f"{META_NEW}{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()  # not mkdtemp: its 0700 mode would become meta/'s
    meta = root / META
    for f in meta.rglob("*") if meta.is_dir() else []:  # files this writer does not manage travel with meta/
        rel = f.relative_to(root).as_posix()
        if f.is_file() and rel not in files and not rel.startswith("meta/episodes/"):
            files = {**files, rel: f.read_bytes()}
    dirs = {tmp}
    for rel, data in files.items():
        path = tmp / Path(rel).relative_to(META)
        path.parent.mkdir(parents=True, exist_ok=True)
        dirs |= {d for d in path.parents if tmp in d.parents or d == tmp}
        with open(path, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        crash_point(f"meta:wrote {rel}")
    for d in sorted(dirs, key=lambda d: -len(d.parts)):
        _fsync(d)
    crash_point("meta:synced")
    if not meta.exists():  # a new dataset
        os.rename(tmp, meta)
    elif exchange(tmp, meta):
        crash_point("meta:swapped")  # tmp now holds the old meta/
    else:
        old = tmp.with_name(META_OLD + tmp.name[len(META_NEW) :])
        os.rename(meta, old)
        crash_point("meta:aside")  # no meta/ until the next rename (or repair_meta)
        os.rename(tmp, meta)
        tmp = old
    _fsync(root)
    crash_point("meta:committed")
    shutil.rmtree(tmp, ignore_errors=True)
    crash_point("meta:cleaned")


def repair_meta(root: str | Path) -> None:
    """Undo what a kill inside :func:`commit_meta` left: restore meta/ if the fallback (no atomic swap) was killed
    between its two renames, then remove the leftover ``.staging/meta-*`` folders (an unfinished new meta/ or an
    old one already replaced; neither is ever read as data)."""
    root = Path(root)
    staging = root / L.STAGING
    if not staging.is_dir():
        return
    if not (root / META).exists():
        olds = sorted(staging.glob(META_OLD + "*"), key=lambda d: d.stat().st_mtime)
        if olds:
            os.rename(olds[-1], root / META)
            warnings.warn(f"restored {root / META} from {olds[-1]} (a commit was interrupted)", stacklevel=2)
    if (root / META).exists():
        for d in [*staging.glob(META_NEW + "*"), *staging.glob(META_OLD + "*")]:
            shutil.rmtree(d)


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
            path = self.root / L.data_path(ep["episode_index"])
            try:
                table = pq.read_table(path, columns=list(self._vectors))
            except FileNotFoundError:
                raise InputError(f"{path}: missing (meta/episodes lists episode {ep['episode_index']})") from None
            except (pa.ArrowException, OSError) as e:
                raise InputError(f"{path}: unreadable parquet, truncated or corrupt ({e})") from None
            for name in self._vectors:
                self._vectors[name].append(L.column_array(table, name))

    @classmethod
    def create(
        cls, root: str | Path, features: dict, fps: int, robot_type: str | None, vla: dict, force: bool = False
    ) -> DatasetWriter:
        """Start an empty dataset at ``root``. An existing dataset or non-empty folder there is an error, unless
        ``force`` (then it is deleted first: the only place this SDK deletes recorded data)."""
        root = Path(root)
        repair_meta(root)
        if root.exists() and any(p.name != L.STAGING for p in root.iterdir()):
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
        for d in (root / L.STAGING).glob("meta-*"):  # what a create killed before its commit left
            shutil.rmtree(d)
        commit_meta(root, _meta_files(info, [], [], features, {}))  # no frames yet: empty stats
        return cls(root)

    @classmethod
    def open(cls, root: str | Path, ignore_checksums: bool = False) -> DatasetWriter:
        """Reopen a dataset to add episodes, repairing what an interrupted recording left (see module doc).

        Refuses (:class:`InputError` naming each file) a dataset whose committed files fail their SHA-256 checksums,
        unless ``ignore_checksums``; episodes recorded before checksums existed are not checked."""
        root = Path(root)
        repair_meta(root)
        if not (root / L.INFO_PATH).exists():
            raise NotFound(f"{root} holds no dataset (missing {L.INFO_PATH}); drop --resume to create one")
        if not ignore_checksums:
            checksums.require_intact(root, L.read_episodes(root))
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
        staged = {"data": ep.staging / "data.parquet", **{k: ep.staging / f"{k}.mp4" for k in self.video_keys}}
        pq.write_table(table, staged["data"], compression="snappy")
        sha256 = {}
        for key, path in staged.items():  # the video streams are closed: these are the final bytes
            sha256[key] = L.file_sha256(path)
            _fsync(path)
        crash_point("staged")
        # Rename the finished files into place; until meta/ says so, they are not part of the dataset.
        for key, rel in L.episode_files(idx, self.video_keys).items():
            dst = self.root / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            staged[key].replace(dst)
            _fsync(dst.parent)
            crash_point(f"moved {key}")
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
            "sha256": sha256,
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
        self._write_meta()  # the commit point
        shutil.rmtree(ep.staging, ignore_errors=True)
        crash_point("done")
        return idx

    def _write_meta(self) -> None:
        self.info.update(L.totals(self.episodes, self.tasks))
        commit_meta(self.root, _meta_files(self.info, self.tasks, self.episodes, self.features, self.stats()))

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
            if any(d.iterdir()):
                self._set_aside(d, "aborted")
            else:  # the empty folder of an episode killed after its files were renamed into place
                d.rmdir()
        committed = {L.data_path(i) for i in range(n)} | {L.video_path(k, i) for k in self.video_keys for i in range(n)}
        for pattern in ("data/*/*.parquet", "videos/*/*/*.mp4"):
            for f in sorted(self.root.glob(pattern)):
                if str(f.relative_to(self.root)) not in committed:
                    self._set_aside(f, "orphaned")
        if self.info.get("total_episodes") != n or not (self.root / L.STATS_PATH).exists():
            self._write_meta()  # meta/ of an older SDK version killed between its per-file writes

    def _set_aside(self, path: Path, why: str) -> None:
        folder = self.root / L.STAGING / why
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{path.relative_to(self.root).as_posix().replace('/', '_')}"
        dest, n = folder / name, 1
        while dest.exists():  # two set aside within the same second (a recorder killed again at once)
            dest, n = folder / f"{name}-{n}", n + 1
        path.replace(dest)
        warnings.warn(f"moved uncommitted {path} to {dest} (not part of the dataset)", stacklevel=2)


def _meta_files(info: dict, tasks: list[str], episodes: list[dict], features: dict, stats: dict) -> dict[str, bytes]:
    """The content of every file of meta/ ({path relative to the root: bytes})."""
    return {
        L.TASKS_PATH: L.parquet_bytes(L.tasks_table(tasks)),
        L.EPISODES_PATH: L.parquet_bytes(L.episodes_table(episodes, features)),
        L.STATS_PATH: L.json_bytes(stats),
        L.INFO_PATH: L.json_bytes(info),
    }


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
