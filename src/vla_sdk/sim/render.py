"""Offscreen rendering of named cameras (tiling them into one video frame: :func:`vla_sdk.episode.tile`)."""

from __future__ import annotations

import mujoco
import numpy as np

from vla_sdk.errors import InputError


class CameraRenderer:
    """Renders named cameras of one model at one size: ``render(data) -> {camera: uint8[h, w, 3]}``.

    Only the cameras asked for are rendered; rendering, not physics, dominates simulation cost.
    """

    def __init__(self, model: mujoco.MjModel, cameras: tuple[str, ...], size: tuple[int, int]):
        self.cameras, self.size = tuple(cameras), (int(size[0]), int(size[1]))
        missing = [c for c in self.cameras if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, c) < 0]
        if missing:
            have = [model.camera(i).name for i in range(model.ncam)]
            raise InputError(f"unknown camera(s) {missing}; this scene has {have}")
        h, w = self.size
        if h > model.vis.global_.offheight or w > model.vis.global_.offwidth:
            model.vis.global_.offheight = max(h, model.vis.global_.offheight)
            model.vis.global_.offwidth = max(w, model.vis.global_.offwidth)
        self._renderer = mujoco.Renderer(model, height=h, width=w) if self.cameras else None

    def render(self, data: mujoco.MjData, lock=None) -> dict[str, np.ndarray]:
        """Every camera's image of ``data``. ``lock`` (a context manager, e.g. a ``threading.Lock``): held while the
        scene is read from ``data`` only, so another thread may step ``data`` while the pixels are drawn."""
        out = {}
        for cam in self.cameras:
            if lock is None:
                self._renderer.update_scene(data, camera=cam)
            else:
                with lock:
                    self._renderer.update_scene(data, camera=cam)
            out[cam] = self._renderer.render().copy()
        return out

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
