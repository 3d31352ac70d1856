"""The one episode loop (vla_sdk.episode): step counts, success, pacing and its period statistics, late steps, stops
with a reason (EpisodeStop, Ctrl-C), and the film helper's stride, fps and tiling."""

from __future__ import annotations

import os
import signal
import time

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from vla_sdk.embodiment import load_embodiment
from vla_sdk.episode import EpisodeSource, Film, GymSource, run_episode, tile, video_stride
from vla_sdk.interrupt import StopRequest
from vla_sdk.robot import RobotSource, SimRobot
from vla_sdk.runner import PolicyRunner, UnsafeStop
from vla_sdk.sim.env import VlaEnv
from vla_sdk.video import probe_video


class Counter(gym.Env):
    """A 1-D gymnasium env: the state adds up the actions; success (termination) once it reaches ``goal``."""

    def __init__(self, goal: float | None = None):
        self.goal = goal
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.observation_space = spaces.Dict({"state": spaces.Box(-np.inf, np.inf, (1,), np.float64)})
        self.steps = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.steps = 0.0, 0
        return self._obs(), {}

    def step(self, action):
        self.x += float(action[0])
        self.steps += 1
        success = self.goal is not None and self.x >= self.goal
        return self._obs(), float(success), success, False, {"success": success}

    def _obs(self):
        return {"state": np.array([self.x]), "instruction": "count"}


ONE = np.ones(1)


def test_unpaced_runs_exactly_max_steps_or_stops_at_success():
    env = Counter()
    calls = []
    res = run_episode(GymSource(env, seed=0), lambda obs: calls.append(obs["state"][0]) or ONE, hz=50, max_steps=7)
    assert (res.steps, res.reason, res.success, env.steps) == (7, "max_steps", False, 7)
    assert calls == [0, 1, 2, 3, 4, 5, 6] and res.obs["state"][0] == 7  # act sees each step's observation
    assert res.late_steps == 0 and len(res.periods) == 6
    res = run_episode(GymSource(Counter(goal=3), seed=0), lambda obs: ONE, hz=50, max_steps=100)
    assert (res.steps, res.reason, res.success) == (3, "success", True)
    assert run_episode(GymSource(Counter(), 0), lambda obs: ONE, hz=50, max_steps=0).steps == 0
    assert isinstance(GymSource(env), EpisodeSource)


def test_success_counts_at_any_step_and_can_end_the_episode():
    """A mapped env's rule: success once is success; ``end_on_success`` ends the episode there."""
    at_two = lambda info: info["x"] == 2  # noqa: E731

    class Info(Counter):
        def step(self, action):
            obs, r, _, _, info = super().step(action)
            return obs, r, False, self.x >= 5, {**info, "x": self.x}

    res = run_episode(GymSource(Info(), 0, success=at_two), lambda obs: ONE, hz=10)
    assert (res.steps, res.reason, res.success) == (5, "success", True)  # ran on to the env's truncation at 5
    res = run_episode(GymSource(Info(), 0, success=at_two, end_on_success=True), lambda obs: ONE, hz=10)
    assert (res.steps, res.reason, res.success) == (2, "success", True)


def test_until_done_false_runs_past_termination_and_execute_changes_only_the_executed_action():
    """A replay runs every recorded action (termination does not end it, ``max_steps`` does); ``execute`` perturbs
    what the env is stepped with while ``on_frame`` sees ``act``'s clean action (DART recording)."""
    env, frames = Counter(goal=3), []
    res = run_episode(
        GymSource(env, 0, until_done=False, execute=lambda a: 2 * a),
        lambda obs: ONE,
        hz=50,
        max_steps=5,
        on_frame=lambda t, obs, action: frames.append((obs["state"][0], action[0])),
    )
    assert (res.steps, res.reason, res.success) == (5, "max_steps", True)  # succeeded at step 2, ran on to 5
    assert frames == [(0, 1), (2, 1), (4, 1), (6, 1), (8, 1)] and env.x == 10  # recorded 1, executed 2
    res = run_episode(GymSource(Counter(goal=3), 0, execute=lambda a: 2 * a), lambda obs: ONE, hz=50, max_steps=5)
    assert (res.steps, res.reason) == (2, "success")  # until_done (the default): the env's termination ends it


def test_paced_50hz_achieves_20ms_periods():
    res = run_episode(GymSource(Counter(), 0), lambda obs: ONE, hz=50, max_seconds=0.3, paced=True)
    p = res.period_ms()
    assert res.reason == "max_seconds" and 12 <= res.steps <= 16, res
    assert abs(p["p50"] - 20.0) < 3.0 and p["p99"] >= p["p50"], p  # loose: this machine is shared
    assert res.late_steps <= 2 and 0.3 <= res.seconds < 0.4
    fast = run_episode(GymSource(Counter(), 0), lambda obs: ONE, hz=50, max_seconds=0.05)  # the same unpaced
    assert fast.steps > 50 and fast.period_ms()["p50"] < 5.0


def test_paced_counts_the_steps_that_overran_their_period():
    slow = {2, 5, 6}  # act() sleeps 30 ms (> the 20 ms period) on these steps

    def act(obs):
        if round(obs["state"][0]) in slow:
            time.sleep(0.03)
        return ONE

    res = run_episode(GymSource(Counter(), 0), act, hz=50, max_steps=10, paced=True)
    assert res.steps == 10 and len(slow) <= res.late_steps <= len(slow) + 2, res.late_steps
    ms = 1000 * np.array(res.periods)
    assert np.all(ms[[2, 5]] >= 29.0), ms  # the period after each slow step is its 30 ms, not rushed back
    assert np.median(ms) == pytest.approx(20.0, abs=3.0), ms  # the others keep the rate


def test_a_raising_act_ends_the_episode_with_its_reason():
    def act(obs):
        if obs["state"][0] >= 4:
            raise UnsafeStop("the policy produced a non-finite action in ['x']; stopped instead of moving")
        return ONE

    res = run_episode(GymSource(Counter(), 0), act, hz=50, max_steps=100)
    assert (res.steps, res.reason, res.success) == (4, "stopped", False)
    assert res.stopped.startswith("the policy produced a non-finite action") and res.obs["state"][0] == 4
    with pytest.raises(ZeroDivisionError):  # anything else is not an episode's end: it propagates
        run_episode(GymSource(Counter(), 0), lambda obs: 1 / 0, hz=50, max_steps=3)


def test_the_real_runner_stops_a_real_env_on_a_non_finite_action():
    env = VlaEnv("fr3/pick_place", cameras=[])
    emb = load_embodiment("fr3")
    runner = PolicyRunner(lambda obs: np.full((4, emb.action_dim), np.nan), emb, env.control_hz)
    res = run_episode(GymSource(env, 3), runner.act, hz=env.control_hz, max_steps=50, on_start=runner.reset)
    env.close()
    assert (res.steps, res.reason) == (0, "stopped") and "non-finite action" in res.stopped
    assert np.all(np.isfinite(res.obs["state"]))  # stopped before moving: the reset pose


def test_ctrl_c_through_the_stop_request_ends_the_episode_at_the_next_tick():
    def act(obs):
        if obs["state"][0] == 3:
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, caught by StopRequest's handler
        return ONE

    with StopRequest() as stop:
        res = run_episode(GymSource(Counter(), 0), act, hz=50, max_steps=100, should_stop=lambda: stop.requested)
    assert stop.requested and (res.steps, res.reason, res.stopped) == (4, "interrupted", None)


def test_on_frame_once_per_step_and_the_film_keeps_every_strideth_instant(tmp_path):
    env = VlaEnv("aloha2/transfer_cube", cameras=[], render_size=(24, 32))  # 50 Hz: stride 2, 25 fps
    seen = []
    film = Film(env.control_hz, lambda obs: env.render_frame())

    def on_frame(t, obs, action):
        seen.append((t, float(obs["state"][0]), env.steps))  # before the step: the env still shows obs
        film(t, obs, action)

    home = np.array(env.embodiment.home)
    res = run_episode(GymSource(env, 1), lambda obs: home, hz=env.control_hz, max_steps=9, on_frame=on_frame)
    assert [t for t, _, _ in seen] == list(range(9)) and [s for _, _, s in seen] == list(range(9))
    assert (film.stride, film.fps, len(film.frames)) == (2, 25.0, 5)  # t = 0, 2, 4, 6, 8
    assert film.frames[0].shape == (48, 64, 3)  # four cameras of 24x32, tiled 2x2
    film.last(res)  # the final instant, t = 9, is off the stride
    assert len(film.frames) == 5
    streamed = Film(env.control_hz, lambda obs: env.render_frame(), path=tmp_path / "ep.mp4")
    res = run_episode(GymSource(env, 1), lambda obs: home, hz=env.control_hz, max_steps=10, on_frame=streamed)
    streamed.last(res)  # t = 10 is on the stride
    streamed.close()
    env.close()
    times, shape = probe_video(tmp_path / "ep.mp4")
    assert streamed.written == 6 and len(times) == 6 and shape == (48, 64, 3)
    np.testing.assert_allclose(np.diff(times), 1 / 25, atol=1e-3)  # real speed: 2 control steps per frame
    assert [video_stride(hz) for hz in (10, 20, 30, 50, 100, 200)] == [1, 1, 1, 2, 4, 8]


def test_tile_pads_images_of_any_size_into_one_grid():
    a, b = np.full((4, 6, 3), 200, np.uint8), np.full((2, 3, 3), 40, np.uint8)
    two = tile([a, b])
    assert two.shape == (4, 12, 3) and two[:, :6].min() == 200 and two[:2, 6:9].min() == 40
    assert two[2:, 6:].max() == 0 and two[:, 9:].max() == 0  # the smaller image padded with black
    three = tile([a, a, a])
    assert three.shape == (8, 12, 3) and three[4:, 6:].max() == 0  # 2x2 grid, the empty cell black


def test_the_robot_interface_as_a_source():
    robot = SimRobot("fr3/pick_place", cameras=(), image_size=16, seed=2)
    source = RobotSource(robot)
    home = np.array(robot.embodiment.home)
    try:
        res = run_episode(source, lambda obs: home, hz=robot.control_hz, max_steps=5)
        assert (res.steps, res.reason, res.success) == (5, "max_steps", False) and robot.env.steps == 5
        robot.env.max_steps = 8  # the robot's own end ("done") ends the episode
        res = run_episode(source, lambda obs: home, hz=robot.control_hz, max_steps=100)
        assert (res.steps, res.reason) == (3, "done") and source.connected  # connect() ran once, not again
    finally:
        robot.disconnect()
