"""Reading datasets in the LeRobot v3.0 layout (ours or LeRobot's own).

Every damaged input raises the SDK's errors naming the file (:class:`NotFound`, :class:`InputError`): the structure
checks are the ones `vla dataset validate` reports (:mod:`vla_sdk.data.validate`). Bytes changed inside a file that
still parses are found by :meth:`Dataset.verify` (the per-episode SHA-256 checksums).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vla_sdk.data import checksums
from vla_sdk.data import layout as L
from vla_sdk.data import validate as V
from vla_sdk.data.stats import histogram_stats, image_histogram, vector_stats
from vla_sdk.errors import InputError, NotFound, UsageError
from vla_sdk.video import read_video


def _refuse(path: Path, problems: list[str]) -> None:
    if problems:
        more = f" (and {len(problems) - 1} more problem(s); run `vla dataset validate`)" if len(problems) > 1 else ""
        raise InputError(f"{path}: {problems[0]}{more}")


class Dataset:
    """A dataset folder. ``episode(k)`` returns one episode's arrays; ``stats(episodes)`` exact statistics;
    ``verify()`` checks the committed files against their checksums."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        path = self.root / L.INFO_PATH
        if not path.exists():
            raise NotFound(f"{self.root} is not a dataset: {L.INFO_PATH} is missing")
        self.info = V.read_json(path)
        _refuse(path, [p for p in V.info_problems(self.info) if p.startswith(V.FATAL)])
        self.info.setdefault("vla", {})
        if not isinstance(self.info["vla"], dict):
            self.info["vla"] = {}
        self.features = self.info["features"]
        self.fps = int(self.info["fps"])
        self.video_keys = L.video_keys(self.features)
        path = self.root / L.TASKS_PATH
        _refuse(path, V.tasks_problems(V.read_parquet(path)))
        self.tasks = L.read_tasks(self.root)
        files = sorted((self.root / "meta/episodes").glob("*/*.parquet"))
        if not files:
            raise NotFound(f"{self.root}: no meta/episodes/*/*.parquet")
        tables = [V.read_parquet(f) for f in files]
        for f, t in zip(files, tables, strict=True):
            _refuse(f, V.episodes_problems(t, self.video_keys))
        try:
            rows = pa.concat_tables(tables).to_pylist()
        except pa.ArrowInvalid as e:
            raise InputError(f"{self.root / 'meta/episodes'}: episode files have different columns ({e})") from None
        _refuse(self.root / "meta/episodes", V.rows_problems(rows, self.video_keys))
        self.episodes = L.read_episodes(self.root)
        self._episode_files = self._episode_locations(rows)

    @property
    def num_episodes(self) -> int:
        return len(self.episodes)

    @property
    def num_frames(self) -> int:
        return int(sum(e["length"] for e in self.episodes))

    @property
    def cameras(self) -> list[str]:
        return [k[len(L.IMAGE_PREFIX) :] for k in self.video_keys]

    def _episode_locations(self, rows: list[dict]) -> list[dict]:
        """Data/video file and time offsets per episode, as stored (LeRobot may pack several per file)."""
        out = []
        for r in rows:
            loc = {
                "data": self.info["data_path"].format(
                    chunk_index=r["data/chunk_index"], file_index=r["data/file_index"]
                )
            }
            for k in self.video_keys:
                loc[k] = (
                    self.info["video_path"].format(
                        video_key=k, chunk_index=r[f"videos/{k}/chunk_index"], file_index=r[f"videos/{k}/file_index"]
                    ),
                    float(r[f"videos/{k}/from_timestamp"]),
                )
            loc["row"] = r
            out.append(loc)
        return out

    def verify(self, flag: str = "--ignore-checksums") -> list[int]:
        """Re-hash every committed data file and mp4 and raise :class:`InputError` naming each one whose bytes
        changed (or that is missing); ``flag`` is the option the error offers to skip the check. Returns the
        episodes that carry no checksums (recorded before checksums; byte damage in them cannot be detected)."""
        checksums.require_intact(self.root, self.episodes, flag)
        return checksums.unchecked_episodes(self.episodes)

    def episode(self, k: int, decode_video: bool = True, cameras: list[str] | None = None) -> dict:
        """Episode ``k``: {"observation.state": [T, A], "action": [T, A], "timestamp": [T], "images": {cam:
        uint8[T, h, w, 3]}, "task": str, "seed", "success"}."""
        if not 0 <= k < self.num_episodes:
            raise UsageError(f"{self.root}: episode {k} out of range (0..{self.num_episodes - 1})")
        ep, loc = self.episodes[k], self._episode_files[k]
        path = self.root / loc["data"]
        table = V.read_parquet(path)
        _refuse(path, V.data_problems(table, self.features, loc["row"], k, len(self.tasks), self.fps, strict=False))
        idx = table.column("episode_index")
        table = table.filter(pc.equal(idx, k)) if pc.any(pc.not_equal(idx, k)).as_py() else table
        out = {
            "observation.state": V.vector(table, "observation.state"),
            "action": V.vector(table, "action"),
            **({L.ENV_STATE: V.vector(table, L.ENV_STATE)} if L.ENV_STATE in self.features else {}),
            "timestamp": V.vector(table, "timestamp")[:, 0],
            "task": self.tasks[int(V.vector(table, "task_index")[0, 0])] if table.num_rows else None,
            "seed": ep["seed"],
            "success": ep["success"],
            "length": ep["length"],
        }
        if decode_video:
            want = self.cameras if cameras is None else cameras
            unknown = sorted(set(want) - set(self.cameras))
            if unknown:
                raise InputError(f"{self.root}: no camera(s) {unknown}; the dataset has {self.cameras}")
            out["images"] = {c: self._decode(k, L.camera_key(c)) for c in want}
        return out

    def _decode(self, k: int, key: str) -> np.ndarray:
        rel, t0 = self._episode_files[k][key]
        frames = read_video(self.root / rel)
        n = self.episodes[k]["length"]
        first = int(round(t0 * self.fps))
        clip = frames[first : first + n]
        if len(clip) != n:
            raise InputError(f"{self.root / rel}: {key} has {len(clip)} frames for episode {k}, expected {n}")
        want = tuple(self.features[key]["shape"])
        if clip.shape[1:] != want:
            raise InputError(f"{self.root / rel}: {key} frames are {clip.shape[1:]}, info.json says {want}")
        return clip

    def stats(self, episodes: list[int] | None = None) -> dict:
        """Exact statistics of the given episodes (e.g. a training split); images from stored histograms, or
        decoded video when a dataset carries none."""
        eps = list(range(self.num_episodes)) if episodes is None else list(episodes)
        if not eps:
            raise InputError("stats of an empty episode list")
        data = [self.episode(k, decode_video=False) for k in eps]
        vectors = [n for n in ("observation.state", "action", L.ENV_STATE) if n in data[0]]
        stats = {n: vector_stats(np.concatenate([d[n] for d in data])) for n in vectors}
        frames = sum(d["length"] for d in data)
        for key in self.video_keys:
            hist = np.zeros((3, 256), np.int64)
            for k in eps:
                h = self.episodes[k]["hist"].get(key)
                if h is None:
                    h = sum(image_histogram(f) for f in self._decode(k, key))
                hist += h
            stats[key] = histogram_stats(hist, frames)
        return stats

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file() and L.STAGING not in p.parts)
