"""The policy runner: action chunks -> one safe action per control step. Shared by `vla eval`, `vla run` and robots.

Strategies (``execution``):
  receding  execute the first ``execute`` actions of each chunk, then replan (blocking)
  ensemble  replan every step; the action for step t is ACT's temporal ensemble: a weighted average of every
            chunk's prediction for t, weights exp(-m * i) with i = 0 for the oldest prediction
  async     the next chunk is computed on a background thread while the current one runs; a chunk computed from
            the observation at step s arrives at step s + d (d = the measured inference delay in steps), so its
            first d actions are already in the past and execution continues at its action d, which keeps
            consecutive chunks aligned in time (no jump at the boundary from the delay itself)

Safety, for every embodiment: actions are clamped to the declared limits and to a maximum change per control step;
a non-finite observation or action stops the episode with a reason instead of moving (:class:`UnsafeStop`), and so
does an exception raised by an async inference (:class:`InferenceFailed`, raised by the first ``act`` after it, so
within one control period; blocking strategies raise the policy's own exception from ``act`` at once). Both are
:class:`~vla_sdk.errors.EpisodeStop`: :func:`vla_sdk.episode.run_episode` ends the episode and reports the reason.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vla_sdk.embodiment import Embodiment
from vla_sdk.errors import EpisodeStop, InputError, RuntimeFailure, UsageError

STRATEGIES = ("receding", "ensemble", "async")


class UnsafeStop(EpisodeStop):
    """The runner refused to move: a non-finite observation or action."""


class InferenceFailed(EpisodeStop):
    """An inference on the async background thread raised; the robot stops instead of holding the last action."""


@dataclass
class RunnerConfig:
    execution: str = "receding"  # one of STRATEGIES
    execute: int | None = None  # receding/async: actions used per chunk (default: half the chunk)
    ensemble_m: float = 0.01  # ensemble: weight decay exp(-m * i)
    max_joint_step: float = 0.15  # rad per control step a joint target may move (grippers: 0.5 per step)
    delay_steps: int | None = None  # async in unpaced simulation: a chunk requested at step s becomes usable at
    # step s + delay_steps (computed at once, deterministically); None: real time, on a background thread

    def __post_init__(self):
        if self.execution not in STRATEGIES:
            raise UsageError(f"--execution must be one of {STRATEGIES}, got {self.execution!r}")
        if self.execute is not None and self.execute < 1:
            raise UsageError(f"--execute must be >= 1 (actions per chunk), got {self.execute}")


def resolve_execute(policy, execute: int | None = None) -> tuple[int | None, str]:
    """(actions used per chunk, where that comes from): ``--execute``, else the policy's own (`vla train --execute`,
    carried into checkpoints and artifacts), else half the chunk. The one place this is decided: :class:`PolicyRunner`
    calls it, eval, `vla run` and `vla export --check-task` report it. None (with "half the chunk") for a bare
    callable that declares no ``horizon``: the runner then uses half of each chunk it returns."""
    if execute is not None:
        return execute, "--execute"
    if getattr(policy, "execute", None) is not None:
        return policy.execute, "policy"
    horizon = getattr(policy, "horizon", None)
    return (max(1, horizon // 2) if horizon else None), "half the chunk"


class SafetyFilter:
    """Clamp to the declared limits and to a maximum change per step; refuse non-finite values."""

    def __init__(self, embodiment: Embodiment, max_joint_step: float):
        self.low, self.high = embodiment.low, embodiment.high
        self.max_step = np.full(embodiment.action_dim, float(max_joint_step))
        self.max_step[embodiment.gripper_indices] = 0.5
        self.names = embodiment.names
        self.last: np.ndarray | None = None

    def reset(self, state: np.ndarray) -> None:
        self.last = np.clip(np.asarray(state, np.float64), self.low, self.high)

    def __call__(self, action: np.ndarray) -> np.ndarray:
        a = np.asarray(action, np.float64)
        if not np.all(np.isfinite(a)):
            bad = [self.names[i] for i in np.flatnonzero(~np.isfinite(a))]
            raise UnsafeStop(f"the policy produced a non-finite action in {bad}; stopped instead of moving")
        a = np.clip(a, self.low, self.high)
        if self.last is not None:
            a = np.clip(a, self.last - self.max_step, self.last + self.max_step)
        self.last = a
        return a


class PolicyRunner:
    """``reset(obs)`` then ``act(obs) -> action`` once per control step. ``policy(obs) -> [T, A]`` is any callable."""

    def __init__(
        self,
        policy: Callable[[dict], np.ndarray],
        embodiment: Embodiment,
        control_hz: float,
        config: RunnerConfig | None = None,
    ):
        self.policy, self.embodiment, self.dt = policy, embodiment, 1.0 / control_hz
        self.cfg = config or RunnerConfig()
        # actions per chunk: --execute, else the policy's own (as trained), else half of each chunk
        self.execute, self.execute_from = resolve_execute(policy, self.cfg.execute)
        self.safety = SafetyFilter(embodiment, self.cfg.max_joint_step)
        self.latencies: list[float] = []
        self.blocking_inferences = 0  # inferences the control loop waited for (async: only the one in reset)
        self._thread: threading.Thread | None = None
        self._control_thread = threading.current_thread()

    def reset(self, obs: dict) -> None:
        self._check_obs(obs)
        self.safety.reset(obs["state"])
        self._control_thread = threading.current_thread()
        self.blocking_inferences = 0
        self.step = 0
        self.chunk, self.chunk_start = None, 0  # current chunk and the step its action 0 belongs to
        self.preds: list[tuple[int, np.ndarray]] = []  # ensemble: (start step, chunk)
        self._pending = None
        self._scheduled = None
        self._thread = None
        self._error: BaseException | None = None  # async: what the background inference raised
        if self.cfg.execution == "async":  # the first chunk is computed before the clock starts
            self.chunk, self.chunk_start = self._infer(obs), 0
            self.blocking_inferences = 0

    def _infer(self, obs: dict) -> np.ndarray:
        if threading.current_thread() is self._control_thread and self.cfg.delay_steps is None:
            self.blocking_inferences += 1  # the control loop waited for this one
        t = time.perf_counter()
        chunk = np.asarray(self.policy(obs), np.float64)
        self.latencies.append(time.perf_counter() - t)
        if chunk.ndim != 2 or chunk.shape[1] != self.embodiment.action_dim:
            raise InputError(f"the policy returned shape {chunk.shape}; expected [T, {self.embodiment.action_dim}]")
        return chunk

    def _check_obs(self, obs: dict) -> None:
        if not np.all(np.isfinite(obs["state"])):
            raise UnsafeStop("the robot state is non-finite; stopped instead of moving")

    def act(self, obs: dict) -> np.ndarray:
        self._check_obs(obs)
        mode = self.cfg.execution
        if mode == "ensemble":
            action = self._ensemble(obs)
        elif mode == "async":
            action = self._async(obs)
        else:
            action = self._receding(obs)
        self.step += 1
        return self.safety(action)

    def _horizon_used(self, chunk: np.ndarray) -> int:
        return min(self.execute, len(chunk)) if self.execute else max(1, len(chunk) // 2)

    def _receding(self, obs):
        if self.chunk is None or self.step - self.chunk_start >= self._horizon_used(self.chunk):
            self.chunk, self.chunk_start = self._infer(obs), self.step
        return self.chunk[self.step - self.chunk_start]

    def _ensemble(self, obs):
        chunk = self._infer(obs)
        self.preds.append((self.step, chunk))
        self.preds = [(s, c) for s, c in self.preds if self.step - s < len(c)]
        acts = np.stack([c[self.step - s] for s, c in self.preds])  # oldest first
        w = np.exp(-self.cfg.ensemble_m * np.arange(len(acts)))
        return (w[:, None] * acts).sum(0) / w.sum()

    def _async(self, obs):
        if self._error is not None:  # the background inference failed: stop now, do not hold the last action
            err, self._error = self._error, None
            raise InferenceFailed(
                f"inference failed on the async thread at step {self.step}: {_describe(err)}"
            ) from err
        used = self.step - self.chunk_start
        if self._thread is None and used >= self._horizon_used(self.chunk) - self._delay_steps():
            self._launch(obs)  # start early enough that the next chunk lands before this one runs out
        if self._scheduled is not None and self.step >= self._scheduled[0]:
            self._pending, self._scheduled = self._scheduled[1], None
        if self._pending is not None:  # a chunk has arrived: switch at its action for the current step
            start, chunk = self._pending
            self._pending, self._thread = None, None
            if self.step - start < len(chunk):
                self.chunk, self.chunk_start = chunk, start
        idx = min(self.step - self.chunk_start, len(self.chunk) - 1)
        return self.chunk[idx]

    def _delay_steps(self) -> int:
        if self.cfg.delay_steps is not None:
            return self.cfg.delay_steps
        if not self.latencies:
            return 1
        return int(np.ceil(np.median(self.latencies[-5:]) / self.dt))

    def _launch(self, obs):
        start = self.step
        if self.cfg.delay_steps is not None:  # simulated time: the chunk "arrives" delay_steps later
            try:
                chunk = self._infer(obs)
            except Exception as e:  # as on the thread: the episode stops with the reason
                raise InferenceFailed(f"inference failed at step {start}: {_describe(e)}") from e
            self._scheduled = (start + self.cfg.delay_steps, (start, chunk))
            self._thread = "scheduled"
            return

        def work():
            try:
                chunk = self._infer(obs)
            except BaseException as e:  # noqa: BLE001 - handed to the control loop, which raises it at its next act()
                self._error = e
                return
            self._pending = (start, chunk)

        self._thread = threading.Thread(target=work, daemon=True)
        self._thread.start()

    def close(self) -> None:
        if isinstance(self._thread, threading.Thread):
            self._thread.join()


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}" if not isinstance(err, RuntimeFailure | InputError) else str(err)
