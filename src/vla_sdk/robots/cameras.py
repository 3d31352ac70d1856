"""Cameras as devices: one PyAV reader thread per camera keeps its newest frame (what a robot's ``observe()`` returns).

    cams = DeviceCameras({"cam_high": "/dev/video0", "cam_left_wrist": "/dev/video2"}, image_size=(240, 320))
    cams.start()                      # opens every device (a missing one: NotFound naming camera and path)
    images = cams()                   # {camera: uint8[240, 320, 3]}, the newest frame of each
    cams.stop()

A path under /dev/ is opened as a V4L2 device (``format="v4l2"``); any other path is opened as a video file and
played in a loop at its own frame rate (a recorded camera stream, for dry runs and tests). Frames are converted to
RGB at ``image_size`` (height, width) by PyAV's scaler.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path

import av
import numpy as np

from vla_sdk.errors import NotFound, RuntimeFailure


class _Reader:
    def __init__(self, camera: str, path: str, image_size: tuple[int, int]):
        self.camera, self.path, self.image_size = camera, path, image_size
        self.frame: np.ndarray | None = None
        self.frames = 0
        self.error: BaseException | None = None
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"camera {camera}", daemon=True)

    def _open(self):
        if self.path.startswith("/dev/"):
            return av.open(self.path, format="v4l2")
        return av.open(self.path)

    def _run(self) -> None:
        h, w = self.image_size
        try:
            while not self.stop.is_set():
                with self._open() as container:
                    stream = container.streams.video[0]
                    period = float(1 / stream.average_rate) if stream.average_rate else 0.0
                    live = self.path.startswith("/dev/")
                    t_next = time.perf_counter()
                    for frame in container.decode(stream):
                        self.frame = frame.to_ndarray(format="rgb24", width=w, height=h)
                        self.frames += 1
                        self.ready.set()
                        if self.stop.is_set():
                            return
                        if not live:  # a file plays at its own rate
                            t_next += period
                            self.stop.wait(max(0.0, t_next - time.perf_counter()))
                if self.path.startswith("/dev/"):
                    raise RuntimeFailure(f"camera {self.camera!r}: {self.path} stopped sending frames")
        except BaseException as e:  # shown by the caller (DeviceCameras.__call__)
            self.error = e
            self.ready.set()


class DeviceCameras:
    """``{camera: device or file path}`` read at ``image_size`` (height, width); calling it gives the newest frames."""

    def __init__(self, devices: Mapping[str, str], image_size: tuple[int, int], timeout_s: float = 10.0):
        self.devices, self.image_size, self.timeout_s = dict(devices), tuple(image_size), timeout_s
        self._readers: dict[str, _Reader] = {}

    def start(self) -> None:
        for cam, path in self.devices.items():
            if not Path(path).exists():
                raise NotFound(f"camera {cam!r}: {path} does not exist")
        self._readers = {cam: _Reader(cam, path, self.image_size) for cam, path in self.devices.items()}
        for r in self._readers.values():
            r.thread.start()

    def __call__(self) -> dict[str, np.ndarray]:
        if not self._readers:
            self.start()
        out = {}
        for cam, r in self._readers.items():
            if not r.ready.wait(self.timeout_s):
                raise RuntimeFailure(f"camera {cam!r}: no frame from {r.path} in {self.timeout_s:g} s")
            if r.error is not None:
                raise RuntimeFailure(f"camera {cam!r}: {r.path}: {r.error}") from r.error
            out[cam] = r.frame
        return out

    def stop(self) -> None:
        for r in self._readers.values():
            r.stop.set()
        for r in self._readers.values():
            r.thread.join(timeout=5)
        self._readers = {}
