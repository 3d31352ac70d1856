"""MP4 writing with PyAV (H.264 when the encoder is present, MPEG-4 Part 2 otherwise)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vla_sdk.errors import InputError, NotFound, RuntimeFailure

PREFERRED_CODECS = ("libx264", "h264", "mpeg4")


def available_codec() -> str | None:
    """The first MP4 video encoder PyAV has, in order of preference."""
    for name in PREFERRED_CODECS:
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # noqa: BLE001 - PyAV raises several types for a missing codec
            continue
    return None


class VideoWriter:
    """Streams uint8 RGB frames [h, w, 3] into an MP4 file. Use as a context manager.

    Odd frame sizes are padded by one black pixel row/column (yuv420p needs even sizes).
    """

    def __init__(self, path: str | Path, fps: float, codec: str | None = None, crf: int = 23, gop: int | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps, self.crf, self.gop = Fraction(fps).limit_denominator(1000), crf, gop
        self.codec = codec or available_codec()
        if self.codec is None:
            raise RuntimeFailure("no MP4 video encoder found in PyAV (tried libx264, h264, mpeg4); run `vla doctor`")
        self._container = None
        self._stream = None
        self.frames = 0

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def write(self, frame: np.ndarray) -> None:
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise InputError(f"video frames must be uint8 [h, w, 3], got {frame.dtype} {frame.shape}")
        h, w = frame.shape[:2]
        if h % 2 or w % 2:
            frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)))
        if self._container is None:
            self._open(frame.shape[1], frame.shape[0])
        elif (frame.shape[1], frame.shape[0]) != (self._stream.width, self._stream.height):
            raise InputError(
                f"frame size {frame.shape[:2]} differs from the first frame's "
                f"{(self._stream.height, self._stream.width)}"
            )
        vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
        vf.pts, vf.time_base = self.frames, 1 / self.fps  # frame k shown at exactly k / fps
        for packet in self._stream.encode(vf):
            self._container.mux(packet)
        self.frames += 1

    def _open(self, width: int, height: int) -> None:
        self._container = av.open(str(self.path), mode="w")
        self._stream = self._container.add_stream(self.codec, rate=self.fps)
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = "yuv420p"
        self._stream.time_base = 1 / self.fps
        options = {"crf": str(self.crf), "preset": "veryfast"} if self.codec in ("libx264", "h264") else {}
        if self.gop:
            options["g"] = str(self.gop)
        self._stream.options = options

    def close(self) -> None:
        if self._container is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._container = None


# What PyAV raises on a damaged or truncated file: its FFmpeg errors (av.error.*: EOFError, InvalidDataError, ...)
# and, on a file with no usable video stream, plain Python errors while probing it.
_DECODE_ERRORS = (av.error.FFmpegError, OSError, EOFError, ValueError, IndexError, KeyError, TypeError)


def _one_line(e: BaseException) -> str:
    text = " ".join(f"{type(e).__name__}: {e}".split())
    return text if len(text) <= 300 else text[:297] + "..."


def _decode(path: Path):
    """Every frame of the file's first video stream, in decode order. :class:`NotFound` for a missing file,
    :class:`InputError` naming the file for one that does not decode."""
    if not path.is_file():
        raise NotFound(f"{path}: video file missing")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path}: no video stream")
            yield from container.decode(video=0)
    except _DECODE_ERRORS as e:
        raise InputError(f"{path}: unreadable video, truncated or corrupt ({_one_line(e)})") from None


def read_video(path: str | Path) -> np.ndarray:
    """Decode every frame of a video into uint8 [T, h, w, 3].

    Raises :class:`NotFound` for a missing file and :class:`InputError` naming the file for one that does not decode
    (truncated, corrupt, no video stream, no frames, frames of changing size)."""
    path = Path(path)
    frames = [f.to_ndarray(format="rgb24") for f in _decode(path)]
    if not frames:
        raise InputError(f"{path}: the video holds no frames")
    if len({f.shape for f in frames}) > 1:
        raise InputError(f"{path}: frame sizes change within the video ({sorted({f.shape for f in frames})})")
    return np.stack(frames)


def probe_video(path: str | Path) -> tuple[list[float], tuple[int, int, int] | None]:
    """(presentation time in s of every frame in decode order, frame shape [h, w, 3] or None); errors as
    :func:`read_video`."""
    path = Path(path)
    times, shapes = [], set()
    for f in _decode(path):
        if f.time is None:
            raise InputError(f"{path}: frame {len(times)} has no presentation time")
        times.append(float(f.time))
        shapes.add((f.height, f.width, 3))
    if len(shapes) > 1:
        raise InputError(f"{path}: frame sizes change within the video ({sorted(shapes)})")
    return times, (shapes.pop() if shapes else None)
