"""Test helper: write ALOHA / ACT-style per-episode HDF5 files (see vla_sdk.data.convert for the format).

JPEG frames are encoded the way ALOHA's recorder does it with ``cv2.imencode`` on an RGB array (which cv2 takes for
BGR): the JPEG holds the channels reversed. PyAV's mjpeg encoder stands in for cv2.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import h5py
import numpy as np
from av.video.reformatter import VideoReformatter

from vla_sdk.data.reader import Dataset


def encode_jpeg(frames: np.ndarray, cv2_order: bool = True) -> list[bytes]:
    """uint8 RGB frames [T, h, w, 3] as JPEG images; ``cv2_order``: as cv2.imencode writes an RGB array."""
    h, w = frames.shape[1:3]
    enc = av.CodecContext.create("mjpeg", "w")
    enc.width, enc.height, enc.pix_fmt, enc.time_base = w, h, "yuvj420p", Fraction(1, 50)
    enc.thread_count = 1
    enc.open()
    sws, out = VideoReformatter(), []
    for img in frames:
        src = np.ascontiguousarray(img[..., ::-1] if cv2_order else img)
        frame = sws.reformat(av.VideoFrame.from_ndarray(src, format="rgb24"), format="yuvj420p")
        packets = enc.encode(frame)
        assert len(packets) == 1  # mjpeg: one packet (one JPEG file) per frame, no delay
        out.append(bytes(packets[0]))
    return out


def write_episode(
    path: Path,
    qpos: np.ndarray,
    action: np.ndarray,
    images: dict[str, np.ndarray],
    compress: bool,
    sim: bool = True,
    cv2_order: bool = True,
) -> Path:
    """One ``episode_<k>.hdf5`` file laid out like ALOHA's record_episodes.py (raw or COMPRESS mode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as root:
        root.attrs["sim"] = sim
        root.attrs["compress"] = compress
        obs = root.create_group("observations")
        obs.create_dataset("qpos", data=np.asarray(qpos, np.float32))
        obs.create_dataset("qvel", data=np.zeros_like(qpos, np.float32))
        root.create_dataset("action", data=np.asarray(action, np.float32))
        group = obs.create_group("images")
        if not compress:
            for cam, frames in images.items():
                group.create_dataset(cam, data=frames, chunks=(1, *frames.shape[1:]))
            return path
        encoded = {cam: encode_jpeg(frames, cv2_order) for cam, frames in images.items()}
        lens = np.array([[len(b) for b in enc] for enc in encoded.values()], np.float32)
        padded = int(lens.max())
        for cam, enc in encoded.items():
            data = np.zeros((len(enc), padded), np.uint8)
            for t, b in enumerate(enc):
                data[t, : len(b)] = np.frombuffer(b, np.uint8)
            group.create_dataset(cam, data=data, chunks=(1, padded))
        root.create_dataset("compress_len", data=lens)
    return path


def write_aloha_hdf5(
    dataset_dir: str | Path, out_dir: str | Path, compress: bool, episodes: list[dict] | None = None
) -> list[Path]:
    """Each episode of one of our datasets as ``out_dir/episode_<k>.hdf5`` (``episodes``: already decoded ones)."""
    if episodes is None:
        ds = Dataset(dataset_dir)
        episodes = [ds.episode(k) for k in range(ds.num_episodes)]
    paths = []
    for k, ep in enumerate(episodes):
        path = Path(out_dir) / f"episode_{k}.hdf5"
        paths.append(write_episode(path, ep["observation.state"], ep["action"], ep["images"], compress))
    return paths


def write_synthetic(
    path: Path, length: int = 6, cameras=("cam_high",), size=(16, 16), compress=False, cv2_order=True
) -> Path:
    """A small episode file with random vectors and smooth images whose red and blue channels differ."""
    rng = np.random.default_rng(0)
    qpos = rng.uniform(0, 1, (length, 14)).astype(np.float32)
    action = rng.uniform(0, 1, (length, 14)).astype(np.float32)
    y, x = np.mgrid[0 : size[0], 0 : size[1]]
    ramp = np.stack([200 * x / size[1], 100 + 0 * x, 200 * y / size[0]], -1)
    frames = np.stack([ramp + 5 * t for t in range(length)]).astype(np.uint8)
    return write_episode(path, qpos, action, {c: frames for c in cameras}, compress, cv2_order=cv2_order)
