"""The policy runner's execution strategies and safety."""

import time

import numpy as np
import pytest

from vla_sdk.embodiment import load_embodiment
from vla_sdk.runner import InferenceFailed, PolicyRunner, RunnerConfig, UnsafeStop, resolve_execute

EMB = load_embodiment("fr3")
HZ, H = 50.0, 50  # a fast control rate makes the delay long in steps


def trajectory(step: np.ndarray) -> np.ndarray:
    """A smooth reference motion [len(step), 8] inside the joint limits (gripper slowly opening and closing)."""
    t = np.asarray(step, float)[:, None] / HZ
    centre = (EMB.low + EMB.high) / 2
    return centre + 0.3 * np.sin(0.8 * t + np.arange(8)) * np.minimum(1.0, (EMB.high - EMB.low) / 2)


class SlowPolicy:
    """Predicts the reference trajectory from the observed step, after an artificial inference delay."""

    def __init__(self, delay: float):
        self.delay = delay

    def __call__(self, obs):
        time.sleep(self.delay)
        return trajectory(obs["step"] + np.arange(H))


def obs_at(step: int) -> dict:
    return {"state": trajectory(np.array([step]))[0], "step": step}


def test_async_with_200ms_delay_never_stalls_and_joins_chunks_smoothly():
    runner = PolicyRunner(SlowPolicy(0.2), EMB, HZ, RunnerConfig(execution="async", max_joint_step=10.0))
    runner.reset(obs_at(0))
    actions, stalls = [], []
    t_next = time.perf_counter()
    for step in range(120):  # 2.4 s of control: several chunk boundaries
        t = time.perf_counter()
        actions.append(runner.act(obs_at(step)))
        stalls.append(time.perf_counter() - t)
        t_next += 1 / HZ
        time.sleep(max(0.0, t_next - time.perf_counter()))
    runner.close()
    # Never stalls: no inference ran on the control thread after reset, and no act() waited anything like the
    # 200 ms an inference takes. (No tighter wall-clock bound: a loaded 2-core CI machine can pause a thread for
    # several ms, which says nothing about the runner.)
    assert runner.blocking_inferences == 0
    assert max(stalls) < 0.2, f"act() took {max(stalls) * 1000:.1f} ms"
    actions = np.array(actions)
    steps = np.abs(np.diff(actions, axis=0)).max(axis=1)  # largest per-step change at every step
    inside = np.abs(np.diff(trajectory(np.arange(H)), axis=0)).max()  # largest single-step change inside a chunk
    assert steps.max() <= inside * 1.05 + 1e-9, (steps.max(), inside)
    assert len(runner.latencies) >= 3  # several chunks were really used


def test_receding_and_ensemble_follow_the_reference():
    for mode in ("receding", "ensemble"):
        runner = PolicyRunner(SlowPolicy(0.0), EMB, HZ, RunnerConfig(execution=mode, execute=10, max_joint_step=10))
        runner.reset(obs_at(0))
        acts = np.array([runner.act(obs_at(s)) for s in range(40)])
        np.testing.assert_allclose(acts, trajectory(np.arange(40)), atol=1e-9)
        assert len(runner.latencies) == (4 if mode == "receding" else 40)


def test_execute_longer_than_the_chunk_uses_the_whole_chunk_and_zero_is_refused():
    runner = PolicyRunner(SlowPolicy(0.0), EMB, HZ, RunnerConfig(execute=H + 5, max_joint_step=10))
    runner.reset(obs_at(0))
    acts = np.array([runner.act(obs_at(s)) for s in range(2 * H)])
    np.testing.assert_allclose(acts, trajectory(np.arange(2 * H)), atol=1e-9)
    assert len(runner.latencies) == 2  # one chunk per H steps
    with pytest.raises(ValueError, match="--execute must be >= 1"):
        RunnerConfig(execute=0)


def test_safety_clamps_limits_and_rate_and_refuses_nan():
    wild = lambda obs: np.tile(EMB.high + 5.0, (H, 1))  # noqa: E731
    runner = PolicyRunner(wild, EMB, HZ, RunnerConfig(max_joint_step=0.1))
    home = np.array(EMB.home)
    runner.reset({"state": home})
    a = runner.act({"state": home})
    assert np.all(a <= EMB.high) and np.all(np.abs(a[:7] - np.clip(home, EMB.low, EMB.high)[:7]) <= 0.1 + 1e-12)
    nan_policy = PolicyRunner(lambda obs: np.full((H, 8), np.nan), EMB, HZ)
    nan_policy.reset({"state": home})
    with pytest.raises(UnsafeStop, match="non-finite action"):
        nan_policy.act({"state": home})
    with pytest.raises(UnsafeStop, match="state is non-finite"):
        runner.act({"state": np.full(8, np.nan)})


def test_async_with_simulated_delay_is_deterministic_and_aligned():
    runs = []
    for _ in range(2):
        runner = PolicyRunner(
            SlowPolicy(0.0), EMB, HZ, RunnerConfig(execution="async", delay_steps=7, max_joint_step=10.0)
        )
        runner.reset(obs_at(0))
        runs.append(np.array([runner.act(obs_at(s)) for s in range(100)]))
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_allclose(runs[0], trajectory(np.arange(100)), atol=1e-9)  # chunks join in time exactly


class FailingPolicy(SlowPolicy):
    """Inference raises from its ``fail_on``-th call on (call 1 is the one in reset); records when it failed."""

    def __init__(self, delay: float, fail_on: int):
        super().__init__(delay)
        self.calls, self.fail_on, self.failed_at = 0, fail_on, None

    def __call__(self, obs):
        self.calls += 1
        if self.calls >= self.fail_on:
            time.sleep(self.delay)
            self.failed_at = time.perf_counter()
            raise RuntimeError("encoder exploded")
        return super().__call__(obs)


def test_async_inference_failure_stops_the_loop_within_one_control_period():
    policy = FailingPolicy(0.03, fail_on=2)
    runner = PolicyRunner(policy, EMB, HZ, RunnerConfig(execution="async", max_joint_step=10.0))
    runner.reset(obs_at(0))
    after = 0  # actions returned once the background inference had failed: what the robot did after the failure
    t_next = time.perf_counter()
    with pytest.raises(InferenceFailed, match="RuntimeError: encoder exploded") as caught:
        for step in range(3 * H):  # far past the end of the first chunk: holding its last action would not raise
            runner.act(obs_at(step))
            after += policy.failed_at is not None
            t_next += 1 / HZ
            time.sleep(max(0.0, t_next - time.perf_counter()))
    runner.close()
    assert policy.calls == 2 and after <= 1, after  # the next act() after the failure raised (one period at most)
    assert isinstance(caught.value.__cause__, RuntimeError)  # the original exception travels with it
    assert step < H  # stopped while the first chunk was still running, not at its end
    # simulated delay (eval): the failed inference stops the episode at the step that started it
    runner = PolicyRunner(FailingPolicy(0.0, 2), EMB, HZ, RunnerConfig(execution="async", delay_steps=3))
    runner.reset(obs_at(0))
    with pytest.raises(InferenceFailed, match="inference failed at step 22: RuntimeError: encoder exploded"):
        for step in range(3 * H):
            runner.act(obs_at(step))
    assert step == H // 2 - 3  # launched at half the chunk minus the delay, as every async chunk is


def test_ensemble_weights_chunks_oldest_first():
    m, h = 0.7, 4

    def policy(obs):  # chunk made at step s predicts c + 0.01 s + 0.001 i for its action i (step s + i)
        return EMB.low[None] + 0.5 + 0.01 * obs["step"] + 0.001 * np.arange(h)[:, None]

    runner = PolicyRunner(policy, EMB, HZ, RunnerConfig(execution="ensemble", ensemble_m=m, max_joint_step=10))
    runner.reset(obs_at(0))
    for t in range(8):
        a = runner.act(obs_at(t))[0]
        starts = np.arange(max(0, t - h + 1), t + 1)  # chunks that still predict step t, oldest first
        preds = EMB.low[0] + 0.5 + 0.01 * starts + 0.001 * (t - starts)
        w = np.exp(-m * np.arange(len(starts)))  # ACT: w_i = exp(-m i), i = 0 the oldest prediction
        assert a == pytest.approx(float((w * preds).sum() / w.sum()), abs=1e-12)
        if len(starts) > 1:  # the oldest prediction weighs most: the action lies below the plain mean
            assert preds.min() < a < preds.mean()


def test_runner_takes_the_execution_horizon_from_resolve_execute():
    class Trained(SlowPolicy):
        horizon, execute = H, 7

    runner = PolicyRunner(Trained(0.0), EMB, HZ, RunnerConfig(max_joint_step=10))
    assert (runner.execute, runner.execute_from) == resolve_execute(Trained(0.0)) == (7, "policy")
    runner.reset(obs_at(0))
    for s in range(21):
        runner.act(obs_at(s))
    assert len(runner.latencies) == 3  # chunks at 0, 7, 14
    assert resolve_execute(SlowPolicy(0.0)) == (None, "half the chunk")  # a bare callable: half of each chunk
    assert resolve_execute(Trained(0.0), 3) == (3, "--execute")
