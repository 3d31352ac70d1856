"""The one episode loop: a source (a simulated env or a robot), an ``act(obs) -> action`` callable, paced in real time
or not, with a per-step frame callback; and the one film helper (video stride and fps, camera tiling).

`vla sim run`, `vla eval`, `vla run` and `vla record` (scripted, replay, keyboard) all run their episodes through
:func:`run_episode`:

    source = GymSource(env, seed)                       # or robot.RobotSource(robot)
    film = Film(env.control_hz, lambda obs: env.render_frame(), path="ep.mp4")
    result = run_episode(source, runner.act, hz=env.control_hz, max_steps=400, on_start=runner.reset, on_frame=film)
    film.last(result)                                   # the final instant too (optional)
    film.close()

Why an episode ends comes back in ``result.reason`` (``REASONS``), never as an exception: the source's own end
(``"success"`` or ``"done"``: an env's termination or time limit), ``max_steps``, ``max_seconds``, a stop request
(Ctrl-C through :class:`vla_sdk.interrupt.StopRequest`: ``should_stop=lambda: stop.requested``), or an
:class:`~vla_sdk.errors.EpisodeStop` raised by ``act``/the source (the runner's ``UnsafeStop``, ``InferenceFailed``),
whose message is ``result.stopped``. Anything else raised is not an episode's end and propagates.

Core layer: numpy only (no mujoco, no gymnasium import); the adapters for what lives above (the Robot interface)
live with it (:class:`vla_sdk.robot.RobotSource`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from vla_sdk.errors import EpisodeStop, InputError, UsageError

MAX_VIDEO_FPS = 25.0  # videos play at real speed, at most this many frames per second
REASONS = ("success", "done", "max_steps", "max_seconds", "interrupted", "stopped")


@runtime_checkable
class EpisodeSource(Protocol):
    """What an episode runs on. ``reset()`` starts an episode (a simulator resets to its seed; a robot connects);
    ``observe()`` -> the latest ``{"images": {camera: uint8[h, w, 3]}, "state": float[A], "instruction": str}``;
    ``step(action)`` applies one control step's action [A] (the simulator advances one control period, a robot
    returns at once); ``done``: the source ended the episode itself (termination, its own time limit);
    ``success``: the task's verdict so far (None where unknown, e.g. on hardware)."""

    def reset(self) -> None: ...

    def observe(self) -> dict: ...

    def step(self, action: np.ndarray) -> None: ...

    @property
    def done(self) -> bool: ...

    @property
    def success(self) -> bool | None: ...


class GymSource:
    """A gymnasium-style env (``reset(seed=) -> (obs, info)``, ``step(a) -> (obs, reward, terminated, truncated,
    info)``; :class:`vla_sdk.sim.env.VlaEnv`, :class:`vla_sdk.envmap.MappedEnv`, any ``gymnasium.Env``) as a source
    for one episode from ``seed``. Success counts at any step (as LeRobot counts ``is_success``): ``success(info)``
    (default ``info["success"]``, else ``info["is_success"]``); the episode is done when the env terminates or
    truncates (never with ``until_done=False``: a replay runs all its recorded actions, ``max_steps`` ends it), or at
    the first success with ``end_on_success``. ``execute(action)``: the action the env is stepped with (DART noise
    on a recorder's executed action), while ``act``'s own action is the one ``on_frame`` sees and records."""

    def __init__(
        self,
        env,
        seed: int | None = None,
        success: Callable[[dict], bool] | None = None,
        end_on_success: bool = False,
        until_done: bool = True,
        execute: Callable[[np.ndarray], np.ndarray] | None = None,
    ):
        self.env, self.seed, self.end_on_success = env, seed, end_on_success
        self.until_done, self.execute = until_done, execute
        self._success_of = success or (lambda info: bool(info.get("success", info.get("is_success", False))))
        self.obs: dict | None = None
        self.info: dict = {}
        self.success, self.done = False, False

    def reset(self) -> None:
        self.obs, self.info = self.env.reset(seed=self.seed)
        self.success, self.done = False, False

    def observe(self) -> dict:
        if self.obs is None:
            raise UsageError("GymSource.observe() before reset()")
        return self.obs

    def step(self, action: np.ndarray) -> None:
        if self.execute is not None:
            action = self.execute(action)
        self.obs, _, terminated, truncated, self.info = self.env.step(action)
        self.success = self.success or bool(self._success_of(self.info))
        ended = self.until_done and (terminated or truncated)
        self.done = bool(ended or (self.success and self.end_on_success))


@dataclass
class EpisodeResult:
    steps: int  # control steps sent
    success: bool | None  # the source's verdict at the end (None: unknown, e.g. hardware)
    reason: str  # why it ended: one of REASONS
    stopped: str | None = None  # reason "stopped": the EpisodeStop's message (UnsafeStop, InferenceFailed)
    obs: dict | None = None  # the last observation (after the last step)
    seconds: float = 0.0  # from the first step (after on_start) to the end
    late_steps: int = 0  # paced: steps whose work overran their period (the loop then does not rush to catch up)
    periods: list[float] = field(default_factory=list, repr=False)  # s between the starts of consecutive steps

    def period_ms(self) -> dict[str, float]:
        """p50/p99 of the achieved control period in ms ({} with fewer than two steps)."""
        if not self.periods:
            return {}
        ms = 1000 * np.asarray(self.periods)
        return {"p50": round(float(np.percentile(ms, 50)), 3), "p99": round(float(np.percentile(ms, 99)), 3)}


def run_episode(
    source: EpisodeSource,
    act: Callable[[dict], np.ndarray],
    *,
    hz: float,
    max_steps: int | None = None,
    max_seconds: float | None = None,
    paced: bool = False,
    on_start: Callable[[dict], None] | None = None,
    on_frame: Callable[[int, dict, np.ndarray], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> EpisodeResult:
    """One episode: ``source.reset()``, ``on_start(first obs)`` (before the clock starts: a runner's reset, an
    async first chunk), then per control step ``obs = source.observe(); action = act(obs); on_frame(t, obs,
    action); source.step(action)`` until the source is done, ``max_steps`` steps (None: no cap), ``max_seconds`` of
    wall time, ``should_stop()`` turns True (polled before every step) or an :class:`EpisodeStop` is raised.

    ``on_frame(t, obs, action)`` runs once per step t = 0, 1, ... before the action is sent, so the source still
    shows the instant ``obs`` was taken (what a recorder stores, a film renders). ``paced``: one step per period
    ``1 / hz`` against a deadline; a step whose work overran its period counts as late and the next deadline starts
    from now (no burst to catch up)."""
    if hz <= 0:
        raise UsageError(f"run_episode: hz must be > 0, got {hz}")
    if max_steps is not None and max_steps < 0:
        raise UsageError(f"run_episode: max_steps must be >= 0 or None, got {max_steps}")
    period = 1.0 / hz
    steps, late, periods, reason, stopped = 0, 0, [], None, None
    source.reset()
    t0 = time.perf_counter()
    try:
        if on_start is not None:
            on_start(source.observe())
        t0 = next_tick = time.perf_counter()
        last = None
        while True:
            if should_stop is not None and should_stop():
                reason = "interrupted"
                break
            if max_steps is not None and steps >= max_steps:
                reason = "max_steps"
                break
            now = time.perf_counter()
            if max_seconds is not None and now - t0 >= max_seconds:
                reason = "max_seconds"
                break
            if last is not None:
                periods.append(now - last)
            last = now
            obs = source.observe()
            action = act(obs)
            if on_frame is not None:
                on_frame(steps, obs, action)
            source.step(action)
            steps += 1
            if source.done:
                reason = "success" if source.success else "done"
                break
            if paced:
                next_tick += period
                wait = next_tick - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                else:
                    late += 1
                    next_tick = time.perf_counter()
    except EpisodeStop as e:
        reason, stopped = "stopped", str(e)
    seconds = time.perf_counter() - t0
    return EpisodeResult(
        steps=steps,
        success=source.success,
        reason=reason,
        stopped=stopped,
        obs=source.observe(),
        seconds=seconds,
        late_steps=late,
        periods=periods,
    )


# ---- the film helper ----------------------------------------------------------------------------------------------


def video_stride(hz: float) -> int:
    """Control steps per video frame: videos play at real speed, at most 25 fps (fps = hz / stride)."""
    return max(1, round(hz / MAX_VIDEO_FPS))


def tile(images: list[np.ndarray], cols: int | None = None) -> np.ndarray:
    """Camera images uint8 [h, w, 3] of any sizes tiled into one frame, row-major (default: side by side for two,
    else a near-square grid); each padded with black to the largest image and the empty cells left black."""
    if not images:
        raise InputError("tile() needs at least one image")
    n = len(images)
    cols = cols or (n if n <= 2 else int(np.ceil(np.sqrt(n))))
    rows = int(np.ceil(n / cols))
    h, w = max(i.shape[0] for i in images), max(i.shape[1] for i in images)
    grid = np.zeros((rows * h, cols * w, images[0].shape[2]), dtype=np.uint8)
    for i, img in enumerate(images):
        r, k = divmod(i, cols)
        grid[r * h : r * h + img.shape[0], k * w : k * w + img.shape[1]] = img
    return grid


class Film:
    """An episode's video at real speed and <= 25 fps: pass it as ``on_frame``; it keeps the instants t = 0,
    stride, 2 * stride, ... (``stride = video_stride(hz)``, ``fps = hz / stride``) as ``grab(obs)`` frames,
    streamed into ``path`` or (no path) kept in ``frames`` for :meth:`save`. :meth:`last` adds the final instant
    (after the last step) when it falls on the stride."""

    def __init__(self, hz: float, grab: Callable[[dict], np.ndarray], path: str | Path | None = None):
        self.stride = video_stride(hz)
        self.fps = hz / self.stride
        self.grab, self.path = grab, path
        self.frames: list[np.ndarray] = []
        self.written = 0  # frames taken (streamed or kept)
        self._writer = None

    def __call__(self, t: int, obs: dict, action=None) -> None:
        if t % self.stride == 0:
            self._take(self.grab(obs))

    def last(self, result: EpisodeResult) -> None:
        """Film the instant after the episode's last step (when it falls on the stride)."""
        if result.obs is not None and result.steps % self.stride == 0:
            self._take(self.grab(result.obs))

    def _take(self, frame: np.ndarray) -> None:
        self.written += 1
        if self.path is None:
            self.frames.append(frame)
            return
        if self._writer is None:
            from vla_sdk.video import VideoWriter

            self._writer = VideoWriter(self.path, fps=self.fps)
        self._writer.write(frame)

    def save(self, path: str | Path) -> None:
        """Write the kept frames to ``path`` and forget them."""
        from vla_sdk.video import VideoWriter

        with VideoWriter(path, fps=self.fps) as w:
            for f in self.frames:
                w.write(f)
        self.frames = []

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> Film:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
