"""`vla doctor`: check the install piece by piece, with a clear message and fix for each problem."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def cpu_name() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what platform knows: for benchmark and model-card records."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _check(name: str, fn: Callable[[], str], fix: str) -> Check:
    try:
        return Check(name, True, fn())
    except Exception as e:  # noqa: BLE001 - every failure becomes a readable line
        return Check(name, False, f"{type(e).__name__}: {e}", fix)


def _jax() -> str:
    import jax
    import jax.numpy as jnp

    devices = jax.devices()
    value = float(jnp.sum(jnp.arange(4.0)))
    if value != 6.0:
        raise RuntimeError(f"jnp.sum(arange(4)) gave {value}, expected 6.0")
    return f"jax {jax.__version__}; devices: {', '.join(f'{d.platform}:{d.id}' for d in devices)}"


def _mujoco() -> str:
    import mujoco

    from vla_sdk.embodiment import list_robots, load_embodiment

    robots = list_robots()
    for r in robots:
        mujoco.MjModel.from_xml_path(str(load_embodiment(r).model_path))
    return f"mujoco {mujoco.__version__}; robot models load: {', '.join(robots)}"


def _rendering() -> str:
    import numpy as np

    from vla_sdk.sim import make

    env = make("aloha2/transfer_cube", cameras=["cam_high"], image_size=(64, 64))
    try:
        img = env.reset(seed=0)[0]["images"]["cam_high"]
    finally:
        env.close()
    if img.shape != (64, 64, 3) or np.ptp(img) == 0:
        raise RuntimeError(f"rendered image is blank or malformed: shape {img.shape}, value range {np.ptp(img)}")
    return f"MUJOCO_GL={os.environ.get('MUJOCO_GL')}; rendered a 64x64 camera image"


def _video() -> str:
    import tempfile

    import numpy as np

    from vla_sdk.video import VideoWriter, available_codec, read_video

    codec = available_codec()
    if codec is None:
        raise RuntimeError("PyAV has no libx264, h264 or mpeg4 encoder")
    with tempfile.TemporaryDirectory() as d:
        with VideoWriter(f"{d}/t.mp4", fps=10) as w:
            for i in range(4):
                w.write(np.full((32, 32, 3), 60 * i, np.uint8))
        n = len(read_video(f"{d}/t.mp4"))
    if n != 4:
        raise RuntimeError(f"wrote 4 frames, read back {n}")
    return f"PyAV encoder {codec}: wrote and read back a 4-frame mp4"


def run_checks() -> list[Check]:
    os.environ.setdefault("MUJOCO_GL", "egl")  # before the mujoco check imports mujoco
    from vla_sdk import __version__
    from vla_sdk.assets import assets_root

    checks = [Check("python", True, f"{platform.python_version()} on {platform.machine()}; vla-sdk {__version__}")]
    checks.append(
        _check(
            "assets",
            lambda: f"robots/ and sim/ at {assets_root()}",
            "reinstall vla-sdk, or set VLA_ASSETS to a folder holding robots/ and sim/",
        )
    )
    checks.append(_check("jax", _jax, "pip install -U jax  (GPU: pip install -U 'jax[cuda12]')"))
    checks.append(_check("mujoco", _mujoco, "pip install -U mujoco"))
    checks.append(
        _check(
            "rendering",
            _rendering,
            "headless rendering needs EGL: set MUJOCO_GL=egl and install libegl1 and libgl1-mesa-dri "
            "(Debian/Ubuntu); or MUJOCO_GL=osmesa with libosmesa6",
        )
    )
    checks.append(_check("video", _video, "pip install -U av  (its wheels bundle FFmpeg with libx264)"))
    return checks
