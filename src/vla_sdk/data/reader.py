"""Reading datasets in the LeRobot v3.0 layout (ours or LeRobot's own)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from vla_sdk.data import layout as L
from vla_sdk.data.stats import histogram_stats, image_histogram, vector_stats
from vla_sdk.errors import InputError, UsageError
from vla_sdk.video import read_video


class Dataset:
    """A dataset folder. ``episode(k)`` returns one episode's arrays; ``stats(episodes)`` exact statistics."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.info = L.read_info(self.root)
        self.info.setdefault("vla", {})
        self.features = self.info["features"]
        self.fps = int(self.info["fps"])
        self.video_keys = L.video_keys(self.features)
        self.tasks = L.read_tasks(self.root)
        self.episodes = L.read_episodes(self.root)
        self._episode_files = self._read_episode_locations()

    @property
    def num_episodes(self) -> int:
        return len(self.episodes)

    @property
    def num_frames(self) -> int:
        return int(sum(e["length"] for e in self.episodes))

    @property
    def cameras(self) -> list[str]:
        return [k[len(L.IMAGE_PREFIX) :] for k in self.video_keys]

    def _read_episode_locations(self) -> list[dict]:
        """Data/video file and time offsets per episode, as stored (LeRobot may pack several per file)."""
        rows = []
        for f in sorted((self.root / "meta/episodes").glob("*/*.parquet")):
            rows += pq.read_table(f).to_pylist()
        out = []
        for r in rows:
            loc = {"data": L.DATA_PATH.format(chunk_index=r["data/chunk_index"], file_index=r["data/file_index"])}
            for k in self.video_keys:
                loc[k] = (
                    self.info["video_path"].format(
                        video_key=k, chunk_index=r[f"videos/{k}/chunk_index"], file_index=r[f"videos/{k}/file_index"]
                    ),
                    float(r[f"videos/{k}/from_timestamp"]),
                )
            out.append(loc)
        return out

    def episode(self, k: int, decode_video: bool = True, cameras: list[str] | None = None) -> dict:
        """Episode ``k``: {"observation.state": [T, A], "action": [T, A], "timestamp": [T], "images": {cam:
        uint8[T, h, w, 3]}, "task": str, "seed", "success"}."""
        if not 0 <= k < self.num_episodes:
            raise UsageError(f"{self.root}: episode {k} out of range (0..{self.num_episodes - 1})")
        ep, loc = self.episodes[k], self._episode_files[k]
        path = self.root / loc["data"]
        table = pq.read_table(path)
        idx = table.column("episode_index").to_numpy()
        table = table.filter(idx == k) if (idx != k).any() else table
        out = {
            "observation.state": L.column_array(table, "observation.state"),
            "action": L.column_array(table, "action"),
            **({L.ENV_STATE: L.column_array(table, L.ENV_STATE)} if L.ENV_STATE in self.features else {}),
            "timestamp": table.column("timestamp").to_numpy(),
            "task": self.tasks[int(table.column("task_index")[0].as_py())],
            "seed": ep["seed"],
            "success": ep["success"],
            "length": ep["length"],
        }
        if len(out["action"]) != ep["length"]:
            raise InputError(f"{path}: episode {k} has {len(out['action'])} rows, meta/episodes says {ep['length']}")
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
