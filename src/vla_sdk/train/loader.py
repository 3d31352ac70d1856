"""Training batches: every frame of the training episodes decoded once into a cache, then sampled per step.

The first use of a dataset decodes its videos (at the model's image size) into uint8 ``.npy`` files under the cache
folder (default ``~/.cache/vla-sdk/frames``, keyed by the dataset's content); later runs and resumed runs memory-map
them, so the accelerator never waits on video decoding. Batch ``step`` is drawn from ``default_rng([seed, step])``,
so a resumed run sees exactly the batches the interrupted one would have. A background thread prepares the next
batches while the current one trains.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vla_sdk.data import layout as L
from vla_sdk.data.reader import Dataset
from vla_sdk.errors import InputError
from vla_sdk.model.config import image_hw
from vla_sdk.transforms import PolicyTransform, resize_images, state_offset

DEFAULT_CACHE = Path(os.environ.get("VLA_CACHE", Path.home() / ".cache" / "vla-sdk")) / "frames"


class FrameStore:
    """States, actions, instructions and decoded camera frames of chosen episodes, concatenated along frames."""

    def __init__(
        self,
        datasets: list[Dataset],
        episodes: list[tuple[int, int]],
        cameras: tuple[str, ...],
        image_size: tuple[int, int] | int,  # (height, width); an int is a square
        cache_dir: Path | None = None,
        progress: bool = True,
    ):
        if not episodes:
            raise InputError("no episodes to train on (is the dataset empty, or are all episodes held out?)")
        self.episodes = list(episodes)
        self.cameras = tuple(cameras)
        for d in {i for i, _ in episodes}:
            missing = sorted(set(cameras) - set(datasets[d].cameras))
            if missing:
                raise InputError(
                    f"{datasets[d].root}: the policy needs camera(s) {missing}; the dataset has {datasets[d].cameras}"
                )
        states, actions, tasks, lengths, env_states = [], [], [], [], []
        for d, k in episodes:
            ep = datasets[d].episode(k, decode_video=False)
            env_states.append(ep.get(L.ENV_STATE))
            states.append(ep["observation.state"])
            actions.append(ep["action"])
            tasks.append(ep["task"])
            lengths.append(ep["length"])
        self.states, self.actions = np.concatenate(states), np.concatenate(actions)  # [N, A_robot]
        # object positions [N, E] when every episode recorded them (observation.environment_state) alike, else None:
        # tasks of one robot record different objects (--env-state-weight refuses such a mix, train.loop)
        same = all(e is not None for e in env_states) and len({e.shape[1:] for e in env_states}) == 1
        self.env_states = np.concatenate(env_states) if same else None
        self.lengths = np.array(lengths)
        self.starts = np.concatenate([[0], np.cumsum(self.lengths)[:-1]])
        self.frame_episode = np.repeat(np.arange(len(episodes)), self.lengths)  # [N]
        self.tasks = tasks
        self.images = self._images(datasets, image_hw(image_size), Path(cache_dir or DEFAULT_CACHE), progress)

    def __len__(self) -> int:
        return len(self.states)

    def _images(self, datasets, size, cache_dir, progress) -> dict[str, np.ndarray]:
        key = hashlib.sha256(
            json.dumps(
                [
                    [str(datasets[d].root.resolve()), (datasets[d].root / L.INFO_PATH).read_text(), k]
                    for d, k in self.episodes
                ]
                + [list(self.cameras), list(size)]
            ).encode()
        ).hexdigest()[:16]
        folder = cache_dir / key
        paths = {c: folder / f"{c}.npy" for c in self.cameras}
        if not all(p.exists() for p in paths.values()):
            folder.mkdir(parents=True, exist_ok=True)
            n = len(self)
            for cam, path in paths.items():
                tmp = path.with_suffix(".tmp.npy")
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, *size, 3))
                for i, (d, k) in enumerate(
                    tqdm(self.episodes, desc=f"decode {cam}", disable=not progress, leave=False)
                ):
                    frames = datasets[d].episode(k, cameras=[cam])["images"][cam]
                    out[self.starts[i] : self.starts[i] + self.lengths[i]] = resize_images(frames, size)
                out.flush()
                del out
                tmp.replace(path)  # complete files only: a killed build is redone, never half-read
        return {c: np.load(p, mmap_mode="r") for c, p in paths.items()}

    def batch(
        self,
        transform: PolicyTransform,
        batch_size: int,
        horizon: int,
        rng: np.random.Generator,
        part: tuple[int, int] = (0, 1),
    ) -> dict:
        """A training batch (numpy): model input fields plus ``actions`` [B, T, A] and ``action_is_pad`` [B, T].
        ``part`` (i, n): rows [i * B/n, (i + 1) * B/n) of the batch of ``batch_size`` rows that ``rng`` draws, so n
        processes (multi-host) each building their part make up exactly the batch one process would."""
        i, n = part
        if batch_size % n:
            raise InputError(f"batch size {batch_size} does not split into {n} parts")
        b = batch_size // n
        idx = np.sort(rng.integers(len(self), size=batch_size))[i * b : (i + 1) * b]  # sorted: friendlier reads
        return self.rows(transform, idx, horizon)

    def rows(self, transform: PolicyTransform, idx: np.ndarray, horizon: int) -> dict:
        """The training samples starting at frames ``idx`` (sorted), as :meth:`batch` describes."""
        ep = self.frame_episode[idx]
        rows, is_pad = self.chunk_rows(idx, horizon)
        obs = transform.observation(
            {c: self.images[c][idx] for c in self.cameras}, self.states[idx], [self.tasks[e] for e in ep]
        )
        obs["actions"] = transform.actions(self.actions[rows], self.states[idx])
        obs["action_is_pad"] = is_pad
        if transform.env_norm is not None and self.env_states is not None:
            obs["env_state"] = transform.env_state(self.env_states[idx])
        return obs

    def frame_datasets(self) -> np.ndarray:
        """The dataset index (into the ``datasets`` given) of every frame, [N]."""
        return np.array([d for d, _ in self.episodes])[self.frame_episode]

    def chunk_rows(self, idx: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows [B, T] of the action chunks starting at frames ``idx`` (past an episode's end: its last action,
        flagged in ``is_pad`` [B, T])."""
        ep = self.frame_episode[idx]
        steps = idx[:, None] - self.starts[ep][:, None] + np.arange(horizon)[None]
        is_pad = steps >= self.lengths[ep][:, None]
        return self.starts[ep][:, None] + np.minimum(steps, self.lengths[ep][:, None] - 1), is_pad

    def delta_chunks(self, horizon: int, delta_mask: np.ndarray) -> np.ndarray:
        """Every frame's action chunk relative to its state in the masked dims, [N * T, A_robot] without padded
        steps: what a delta-action model predicts, for its normalization statistics."""
        idx = np.arange(len(self))
        rows, is_pad = self.chunk_rows(idx, horizon)
        return (self.actions[rows] - state_offset(self.states[idx], delta_mask))[~is_pad]


def batches(
    source,
    batch_size: int,
    horizon: int,
    seed: int,
    start_step: int,
    prefetch: int = 3,
    part: tuple[int, int] = (0, 1),
) -> Iterator[dict]:
    """Batches for steps start_step, start_step + 1, ... (deterministic per step), prepared on a thread. ``source``
    draws them (``source.batch(batch_size, horizon, rng, part)``: a :class:`vla_sdk.train.mixture.Mixture`);
    ``part``: this process's rows of each global batch of ``batch_size`` (see :meth:`FrameStore.batch`)."""
    q: queue.Queue = queue.Queue(maxsize=prefetch)
    stop = threading.Event()

    def work():
        step = start_step
        try:
            while not stop.is_set():
                q.put(source.batch(batch_size, horizon, np.random.default_rng([seed, step]), part))
                step += 1
        except BaseException as e:  # noqa: BLE001 - surfaced on the consumer side
            q.put(e)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while not q.empty():
            q.get_nowait()
