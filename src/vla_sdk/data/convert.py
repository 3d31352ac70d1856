"""`vla dataset convert --from aloha-hdf5`: ALOHA / ACT per-episode HDF5 files -> a dataset in this SDK's layout.

The format, as the public recording and loading code writes and reads it (read for this module, none copied):
tonyzhaozh/act and MarkFzp/act-plus-plus ``record_sim_episodes.py`` and ``utils.py`` (``EpisodicDataset``),
Interbotix/aloha ``scripts/record_episodes.py`` and ``aloha/robot_utils.py``, MarkFzp/mobile-aloha
``aloha_scripts/record_episodes.py`` and ``real_env.py``, act-plus-plus ``compress_data.py``, and the converters
huggingface/lerobot ``push_dataset_to_hub/aloha_hdf5_format.py`` and Physical-Intelligence/openpi
``examples/aloha_real/convert_aloha_data_to_lerobot.py``:

* one file per episode, ``episode_<k>.hdf5`` (k from 0, written at 50 Hz: ``DT = 0.02``); other names in the
  folder (e.g. act-plus-plus's ``*mirror*`` files) are not read;
* ``/observations/qpos`` [T, 14] and ``/action`` [T, 14], created without a dtype, hence float32: per arm (left
  first) six absolute joint angles in rad (waist, shoulder, elbow, forearm_roll, wrist_angle, wrist_rotate), then
  the gripper as a normalized opening, 0 closed and 1 open (qpos: ``PUPPET_GRIPPER_POSITION_NORMALIZE_FN`` of the
  finger position; action: the leader gripper joint normalized the same way). That is this SDK's aloha2 layout and
  gripper convention, so values are copied unchanged; the normalization is a linear calibration, so real data can
  stray outside [0, 1] (values beyond it by more than GRIPPER_SLACK are counted in the summary, never clipped);
* frame t pairs the observation before step t with the action sent at step t (as this SDK records);
* optional ``/observations/qvel``, ``/observations/effort`` [T, 14] and Mobile ALOHA's ``/base_action`` [T, 2]:
  not converted (this layout stores state, action and images), listed in the summary under "ignored";
* ``/observations/images/<cam>`` (real: cam_high, cam_low, cam_left_wrist, cam_right_wrist; ACT simulator: top,
  left_wrist, right_wrist; names are kept): uint8 [T, H, W, 3] RGB (simulation, uncompressed real data) or, with
  the root attribute ``compress`` = True, uint8 [T, padded_len]: each frame ``cv2.imencode('.jpg', rgb_array)``
  (quality 50), zero-padded to the longest frame. cv2 takes the RGB array for BGR, so the JPEG holds red and blue
  swapped and ``cv2.imdecode`` (which ACT's loader and LeRobot's converter use as is) returns the original array;
  a standard decoder (PyAV here) returns it swapped, so we swap back (``jpeg_rgb=True`` for files whose JPEGs hold
  true RGB, as openpi's converter assumes). Camera datasets whose name contains "depth" are skipped by default;
* ``/compress_len`` [num_cams, T] (float32) holds the byte lengths, but its rows follow the recording script's
  camera list, not the file's (alphabetical) key order, so it is not used: a frame ends at its JPEG end-of-image
  marker (0xFFD9), after which there is only padding;
* root attribute ``sim`` (bool; absent in old files) is kept in info["vla"]["source"].

Every file is checked before anything is written; errors name the file and the field.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from vla_sdk.data import layout as L
from vla_sdk.data.writer import DatasetWriter
from vla_sdk.embodiment import load_embodiment
from vla_sdk.errors import AlreadyExists, InputError, NotFound, RuntimeFailure, UsageError

FORMATS = ("aloha-hdf5",)
QPOS, ACTION, IMAGES = "/observations/qpos", "/action", "/observations/images"
DIM = 14
GRIPPER_SLACK = 0.02  # gripper values beyond [-slack, 1 + slack] are counted in the summary (calibration check)
EOI = b"\xff\xd9"  # JPEG end-of-image marker
_EPISODE_FILE = re.compile(r"^episode_(\d+)\.hdf5$")


def _h5py():
    try:
        import h5py
    except ImportError:
        raise RuntimeFailure("reading ALOHA HDF5 files needs h5py: pip install h5py") from None
    return h5py


@dataclass
class _Source:
    path: Path
    length: int
    cameras: dict[str, str]  # camera -> "raw" | "jpeg"
    sizes: dict[str, tuple[int, int]]  # camera -> (h, w) as stored
    sim: bool | None
    ignored: list[str]
    gripper_out_of_range: int


def find_episode_files(src: str | Path) -> list[Path]:
    """``episode_<k>.hdf5`` files in ``src``, sorted by k."""
    src = Path(src)
    if not src.is_dir():
        raise NotFound(f"{src}: no such folder (expected a folder of episode_<k>.hdf5 files)")
    files = [(int(m.group(1)), p) for p in src.iterdir() if (m := _EPISODE_FILE.match(p.name))]
    if not files:
        raise NotFound(f"{src}: no episode_<k>.hdf5 files")
    return [p for _, p in sorted(files)]


def _inspect(path: Path, cameras: list[str] | None, gripper_idx: list[int]) -> _Source:
    h5py = _h5py()
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise InputError(f"{path}: not a readable HDF5 file ({e})") from None
    with f:
        vectors = {}
        for name in (QPOS, ACTION):
            if name not in f or not isinstance(f[name], h5py.Dataset):
                raise InputError(f"{path}: missing dataset {name!r}")
            x = f[name][()]
            if x.ndim != 2 or x.shape[1] != DIM:
                raise InputError(f"{path}: field {name!r} has shape {x.shape}, expected (T, {DIM}) (ALOHA's layout)")
            if not np.issubdtype(x.dtype, np.number):
                raise InputError(f"{path}: field {name!r} has dtype {x.dtype}, expected numbers")
            bad = np.argwhere(~np.isfinite(x))
            if len(bad):
                raise InputError(f"{path}: field {name!r} has non-finite values (first at frame {bad[0][0]})")
            vectors[name] = x
        lengths = {n: len(x) for n, x in vectors.items()}
        if IMAGES not in f:
            raise InputError(f"{path}: missing group {IMAGES!r}")
        have = sorted(k for k in f[IMAGES] if "depth" not in k)
        want = have if cameras is None else list(cameras)
        missing = [c for c in want if c not in f[IMAGES]]
        if missing:
            raise InputError(f"{path}: missing camera dataset(s) {[f'{IMAGES}/{c}' for c in missing]}; it has {have}")
        if not want:
            raise InputError(f"{path}: no camera datasets under {IMAGES!r}")
        kinds, sizes = {}, {}
        for cam in want:
            ds, field = f[IMAGES][cam], f"{IMAGES}/{cam}"
            lengths[field] = ds.shape[0] if ds.ndim else 0
            if ds.dtype != np.uint8 or ds.ndim not in (2, 4) or (ds.ndim == 4 and ds.shape[3] != 3):
                raise InputError(
                    f"{path}: field {field!r} is {ds.dtype} {ds.shape}; expected uint8 [T, H, W, 3] images "
                    f"or uint8 [T, bytes] JPEG frames"
                )
            kinds[cam] = "raw" if ds.ndim == 4 else "jpeg"
            if kinds[cam] == "raw":
                sizes[cam] = (int(ds.shape[1]), int(ds.shape[2]))
            elif ds.shape[0]:
                sizes[cam] = _decode_jpeg(av.CodecContext.create("mjpeg", "r"), ds[0], path, field, 0).shape[:2]
        if len(set(lengths.values())) != 1:
            listed = ", ".join(f"{k!r} {n}" for k, n in lengths.items())
            raise InputError(f"{path}: fields have different lengths: {listed}")
        if lengths[QPOS] == 0:
            raise InputError(f"{path}: field {QPOS!r} has no frames")
        used = {QPOS, ACTION} | {f"{IMAGES}/{c}" for c in want}
        ignored: list[str] = []

        def collect(name, obj):
            if isinstance(obj, h5py.Dataset) and "/" + name not in used:
                ignored.append("/" + name)

        f.visititems(collect)
        grip = np.concatenate([x[:, gripper_idx] for x in vectors.values()])
        sim = f.attrs.get("sim")
        return _Source(
            path=path,
            length=lengths[QPOS],
            cameras=kinds,
            sizes=sizes,
            sim=None if sim is None else bool(sim),
            ignored=ignored,
            gripper_out_of_range=int(np.sum((grip < -GRIPPER_SLACK) | (grip > 1 + GRIPPER_SLACK))),
        )


def _decode_jpeg(decoder, row: np.ndarray, path: Path, field: str, t: int, size=None, swap=False, sws=None):
    buf = np.asarray(row, np.uint8).tobytes()
    end = buf.rfind(EOI)
    if not buf.startswith(b"\xff\xd8") or end < 0:
        raise InputError(f"{path}: field {field!r} frame {t} is not a JPEG image (no start/end-of-image marker)")
    try:
        frames = decoder.decode(av.Packet(buf[: end + 2]))
    except av.FFmpegError as e:
        raise InputError(f"{path}: field {field!r} frame {t}: JPEG decoding failed ({e})") from None
    if not frames:
        raise InputError(f"{path}: field {field!r} frame {t}: the JPEG decoder returned no image")
    h, w = size or (frames[0].height, frames[0].width)
    sws = sws or VideoReformatter()
    img = sws.reformat(frames[0], width=w, height=h, format="rgb24", interpolation="AREA").to_ndarray()
    return np.ascontiguousarray(img[..., ::-1]) if swap else img


def _camera_frames(f, src: _Source, cam: str, size: tuple[int, int], swap_rb: bool, block: int = 32):
    """Frames of one camera as uint8 [h, w, 3] at ``size``, read ``block`` frames at a time."""
    ds, field = f[IMAGES][cam], f"{IMAGES}/{cam}"
    decoder = av.CodecContext.create("mjpeg", "r") if src.cameras[cam] == "jpeg" else None
    sws = VideoReformatter()  # one per stream: it caches the scaler between frames
    h, w = size
    for start in range(0, src.length, block):
        for i, row in enumerate(ds[start : start + block]):
            if decoder is not None:
                yield _decode_jpeg(decoder, row, src.path, field, start + i, size, swap_rb, sws)
            elif row.shape[:2] == (h, w):
                yield row
            else:
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(row), format="rgb24")
                yield sws.reformat(frame, width=w, height=h, interpolation="AREA").to_ndarray()


def _order(cameras: list[str], preferred: tuple[str, ...]) -> list[str]:
    return [c for c in preferred if c in cameras] + sorted(c for c in cameras if c not in preferred)


def convert_aloha_hdf5(
    src: str | Path,
    out: str | Path,
    *,
    task_instruction: str,
    fps: int = 50,
    image_size: tuple[int, int] | None = None,
    cameras: list[str] | None = None,
    jpeg_rgb: bool = False,
    force: bool = False,
    progress: bool = False,
) -> dict:
    """Convert a folder of ALOHA HDF5 episodes into a new dataset at ``out`` (robot aloha2); returns a summary.

    ``cameras``: which to convert (default: all non-depth cameras of the first file; every file must have them).
    ``image_size`` (h, w): resize every camera to it (aspect ratio not kept); default the stored size, which must
    then be the same for all cameras. ``jpeg_rgb``: the JPEG frames hold true RGB (see the module doc). ``force``:
    delete an existing dataset or folder at ``out`` first.
    """
    from tqdm import tqdm

    t0 = time.perf_counter()
    if not task_instruction or not task_instruction.strip():
        raise UsageError("--task-instruction is required: ALOHA files hold no language instruction")
    emb = load_embodiment("aloha2")
    if emb.action_dim != DIM:
        raise RuntimeError(f"aloha2 embodiment has {emb.action_dim} dimensions, ALOHA files have {DIM}")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not force:
        raise AlreadyExists(f"{out} exists and is not empty; choose a new --out folder (or --force to replace it)")
    files = find_episode_files(src)
    sources = [_inspect(files[0], cameras, emb.gripper_indices)]
    cams = _order(list(sources[0].cameras), emb.cameras) if cameras is None else list(cameras)
    sources += [_inspect(p, cams, emb.gripper_indices) for p in files[1:]]
    if image_size is None:
        sizes = {(s.path.name, c): hw for s in sources for c, hw in s.sizes.items()}
        if len(set(sizes.values())) > 1:
            seen = {}
            for (name, cam), hw in sizes.items():
                seen.setdefault(hw, f"{name}: {IMAGES}/{cam}")
            raise InputError(
                f"{src}: image sizes differ ({'; '.join(f'{v} is {k[0]}x{k[1]}' for k, v in seen.items())}); "
                f"pass --image-size H W to resize all cameras to one size"
            )
        image_size = next(iter(sizes.values()))
    image_size = (int(image_size[0]), int(image_size[1]))
    if min(image_size) <= 0:
        raise UsageError(f"--image-size must be positive, got {image_size}")

    features = L.make_features(emb.names, emb.names, cams, image_size, int(fps))
    sims = {s.sim for s in sources}
    vla = {
        "task": None,
        "robot": emb.name,
        "embodiment": emb.to_json(),
        "teleop": "converted",
        "source": {
            "format": "aloha-hdf5",
            "path": str(Path(src).resolve()),
            "sim": sims.pop() if len(sims) == 1 else None,
            "jpeg_rgb": jpeg_rgb,
        },
    }
    writer = DatasetWriter.create(out, features, fps, emb.name, vla, force=force)
    h5py = _h5py()
    for s in tqdm(sources, desc="convert aloha-hdf5", unit="ep", disable=not progress):
        with h5py.File(s.path, "r") as f:
            qpos, action = f[QPOS][()].astype(np.float32), f[ACTION][()].astype(np.float32)
            ep = writer.begin_episode(task_instruction, seed=None, extra={"source_file": s.path.name})
            try:
                streams = {c: _camera_frames(f, s, c, image_size, not jpeg_rgb) for c in cams}
                for t in range(s.length):
                    ep.add({c: next(it) for c, it in streams.items()}, qpos[t], action[t])
                ep.commit(success=None)
            except BaseException:
                ep.discard()
                raise
    return {
        "dataset": str(out),
        "format": "aloha-hdf5",
        "source": str(src),
        "episodes": len(sources),
        "frames": int(sum(s.length for s in sources)),
        "fps": int(fps),
        "cameras": cams,
        "image_size": list(image_size),
        "jpeg_episodes": sum(any(k == "jpeg" for k in s.cameras.values()) for s in sources),
        "sim": vla["source"]["sim"],
        "ignored": sorted({n for s in sources for n in s.ignored}),
        "gripper_values_outside_0_1": sum(s.gripper_out_of_range for s in sources),
        "seconds": round(time.perf_counter() - t0, 3),
    }
