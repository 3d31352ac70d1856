"""`vla eval` (sim, third-party env, offline replay) and `vla run`."""

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from vla_sdk.cli import _parser, main
from vla_sdk.data.reader import Dataset
from vla_sdk.embodiment import load_embodiment
from vla_sdk.envmap import MappedEnv
from vla_sdk.evaluation import EvalConfig, evaluate, replay, wilson_interval
from vla_sdk.live import run_live
from vla_sdk.policy import Policy
from vla_sdk.runner import RunnerConfig
from vla_sdk.sim.env import VlaEnv
from vla_sdk.video import read_video

FR3 = load_embodiment("fr3")


def test_wilson_interval():
    lo, hi = wilson_interval(8, 10)
    assert 0.49 < lo < 0.5 and 0.94 < hi < 0.95  # textbook values for 8/10
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(20, 20)[1] == 1.0


def test_eval_cli_parallel_workers_match_one_worker(aloha_policy, tmp_path, capsys):
    run = str(aloha_policy / "run")
    args = ["eval", run, "--task", "aloha2/transfer_cube", "--episodes", "2", "--seed", "7", "--max-steps", "40"]
    args.append("--json")
    assert main([*args, "--workers", "2", "--video-dir", str(tmp_path / "v")]) == 0
    two = json.loads(capsys.readouterr().out)
    assert two["episodes"] == 2 and two["workers"] == 2 and [e["seed"] for e in two["per_episode"]] == [7, 8]
    assert two["successes"] == 0 and two["ci95"] == pytest.approx([0.0, 0.6576], abs=1e-4)  # Wilson, 0 of 2
    assert two["latency_ms"]["p50"] > 0 and two["latency_ms"]["p99"] >= two["latency_ms"]["p50"]
    videos = [e["video"] for e in two["per_episode"]]  # the first episodes are always filmed
    assert all(len(read_video(v)) > 10 for v in videos)
    assert main(args) == 0
    one = json.loads(capsys.readouterr().out)
    strip = lambda r: [(e["seed"], e["success"], e["steps"], e["final_state"]) for e in r["per_episode"]]  # noqa: E731
    # same seeds, same result, whatever the worker split: where each episode's actions took the arms, to 1e-6
    assert strip(one) == strip(two)
    ends = [np.array(e["final_state"]) for e in one["per_episode"]]
    assert np.abs(ends[0] - ends[1]).max() > 1e-3  # ... and the seeds do lead elsewhere: a mix-up would show
    assert [e["steps"] for e in one["per_episode"]] == [40, 40]  # --max-steps caps an episode that does not succeed


def test_eval_refuses_another_robot_before_any_episode(aloha_policy):
    with pytest.raises(ValueError, match="trained for robot 'aloha2', not 'fr3'"):
        evaluate(EvalConfig(policy=str(aloha_policy / "run"), task="fr3/pick_place", episodes=1))


def test_offline_replay(aloha_policy, capsys):
    assert main(["eval", str(aloha_policy / "run"), "--replay", str(aloha_policy / "demos"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["chunks"] > 0 and np.isfinite(out["chunk_mse"]) and len(out["per_joint_mse"]) == 14
    phases = out["mse_by_phase"]  # where in the episode the error is: the first fifth is where a blind policy fails
    assert list(phases) == ["0-20 %", "20-40 %", "40-60 %", "60-80 %", "80-100 %"]
    assert all(np.isfinite(v) and v >= 0 for v in phases.values())
    assert main(["eval", str(aloha_policy / "run"), "--replay", str(aloha_policy / "demos"), "--episodes", "1"]) == 0
    assert "by where the chunk starts in its episode: 0-20 %" in capsys.readouterr().out


class Wrapped:
    """A real loaded policy (cameras, transform, config, ...) whose ``__call__`` the test replaces."""

    def __init__(self, policy):
        self._policy = policy

    def __getattr__(self, name):
        return getattr(self._policy, name)


class RecordedChunks(Wrapped):
    """Returns the dataset's recorded actions as its chunks: replay must score it 0. Checks that every frame it is
    shown is the recorded one of the episode its ``reset(seed_base + k)`` announced, in replay's order (stride 10)."""

    def __init__(self, policy, dataset, seed_base=0):
        super().__init__(policy)
        self.ds, self.seed_base, self.seeds = Dataset(dataset), seed_base, []

    def reset(self, seed):
        self.seeds.append(seed)
        self.ep, self.t = self.ds.episode(seed - self.seed_base, cameras=list(self.cameras)), 0

    def __call__(self, obs):
        ep, t = self.ep, self.t
        np.testing.assert_array_equal(obs["state"], ep["observation.state"][t])
        np.testing.assert_array_equal(obs["images"][self.cameras[0]], ep["images"][self.cameras[0]][t])
        self.t += 10
        chunk = ep["action"][t : t + self.horizon]
        return np.concatenate([chunk, np.repeat(chunk[-1:], self.horizon - len(chunk), 0)])


def test_replay_of_the_recorded_chunks_scores_zero_and_replay_options_mean_something(aloha_policy, capsys):
    demos, run = str(aloha_policy / "demos"), str(aloha_policy / "run")
    policy = RecordedChunks(Policy.load(run), demos, seed_base=5)
    out = replay(policy, demos, episodes=[0], seed=5)
    assert out["chunk_mse"] == 0.0 and set(out["per_joint_mse"].values()) == {0.0}
    assert set(out["mse_by_phase"].values()) == {0.0} and out["chunks"] == -(
        -Dataset(demos).episodes[0]["length"] // 10
    )
    assert policy.seeds == [5] and out["episodes"] == 1 and out["seed"] == 5  # --seed: the noise of episode k: seed + k
    # --episodes N: the first N episodes (the sample set has two); what replay cannot use is refused, never ignored
    assert main(["eval", run, "--replay", demos, "--episodes", "1", "--seed", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["episodes"] == 1 and out["seed"] == 3 and out["chunks"] > 0
    assert main(["eval", run, "--replay", demos, "--episodes", "3"]) == 2
    assert "demos: episode(s) [2] do not exist; it has 2 (0-based)" in capsys.readouterr().err
    assert main(["eval", run, "--replay", demos, "--workers", "2", "--max-steps", "5"]) == 2
    assert "--workers, --max-steps: not used by --replay" in capsys.readouterr().err


class ToyReach(gym.Env):
    """A third-party env (not one of ours): drive 8 joints to a target; cameras under other names."""

    def __init__(self):
        self.observation_space = spaces.Dict(
            {
                "front": spaces.Box(0, 255, (24, 24, 3), np.uint8),
                "wrist": spaces.Box(0, 255, (24, 24, 3), np.uint8),
                "joints": spaces.Box(-5, 5, (8,), np.float64),
            }
        )
        self.action_space = spaces.Box(-5, 5, (8,), np.float32)

    def _obs(self):
        img = np.full((24, 24, 3), int(40 * (1 + np.tanh(self.q.sum()))), np.uint8)
        return {"front": img, "wrist": img[::-1].copy(), "joints": self.q.copy()}

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.q = np.array([0.0, -0.3, 0.0, -2.2, 0.0, 1.9, 0.78, 1.0]) + self.np_random.normal(0, 0.01, 8)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.q = 0.5 * self.q + 0.5 * np.asarray(action, np.float64)
        self.t += 1
        done = self.t >= 15
        return self._obs(), 0.0, done, False, {"is_success": bool(done and abs(self.q[0]) < 0.5)}


class ToyReachDegreesReversed(gym.Env):
    """A third-party env whose joints are the FR3's in reverse order and in degrees (state and action alike). It
    reports success only at step 5 (LeRobot-style: success at any step counts) and logs the actions it receives,
    converted back to the FR3's order and radians, in ``received``."""

    received: list = []

    def __init__(self):
        self.observation_space = spaces.Dict(
            {
                "front": spaces.Box(0, 255, (24, 24, 3), np.uint8),
                "wrist": spaces.Box(0, 255, (16, 24, 3), np.uint8),
                "joints_deg": spaces.Box(-500, 500, (8,), np.float64),
            }
        )
        self.action_space = spaces.Box(-500, 500, (8,), np.float32)

    def _obs(self):
        return {
            "front": np.full((24, 24, 3), 200, np.uint8),
            "wrist": np.full((16, 24, 3), 40, np.uint8),  # another size: tiled with black padding
            "joints_deg": np.degrees(self.q[::-1]),
        }

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.q = np.array(FR3.home, np.float64) + self.np_random.normal(0, 0.01, 8)  # FR3 order, radians
        self.q0, self.t = self.q.copy(), 0
        return self._obs(), {}

    def step(self, action):
        a = np.radians(np.asarray(action, np.float64))[::-1]
        ToyReachDegreesReversed.received.append(a)
        self.q, self.t = a, self.t + 1
        return self._obs(), 0.0, self.t >= 15, False, {"is_success": self.t == 5}


def test_third_party_env_with_reordered_rescaled_joints_success_at_any_step_and_video(fr3_policy, tmp_path):
    gym.register("ToyReachDegreesReversed-v0", entry_point=ToyReachDegreesReversed)
    mapping = {
        "env_id": "ToyReachDegreesReversed-v0",
        "cameras": {"front": "cam_external", "wrist": "cam_wrist"},
        "state": "joints_deg",
        "action_dim": 8,
        "state_index": list(range(7, -1, -1)),  # policy state[i] = env joints_deg[7 - i] in rad
        "state_scale": float(np.pi / 180),
        "action_index": list(range(7, -1, -1)),  # env action[j] = policy action[7 - j] in degrees
        "action_scale": [float(180 / np.pi)] * 8,
    }
    env = MappedEnv(mapping)
    obs, _ = env.reset(seed=3)
    np.testing.assert_allclose(obs["state"], env.env.unwrapped.q, atol=1e-12)  # the policy sees FR3 order, radians
    ToyReachDegreesReversed.received.clear()
    cfg = EvalConfig(policy=str(fr3_policy / "run"), env_map=mapping, episodes=2, video_dir=str(tmp_path / "v"))
    out = evaluate(cfg)
    # success at step 5 counts though the env runs on to 15 and says False at the end
    assert [(e["success"], e["steps"]) for e in out["per_episode"]] == [(True, 15), (True, 15)]
    assert out["successes"] == 2 and out["ci95"] == pytest.approx([0.3424, 1.0], abs=1e-4)  # Wilson, 2 of 2
    # the actions arrived in the env's order and units: back in FR3 order and radians, each is within the runner's
    # rate limit of the previous one, starting from the episode's initial pose (a wrong map lands far away)
    acts = np.array(ToyReachDegreesReversed.received[:15])
    assert len(ToyReachDegreesReversed.received) == 30
    limit = np.full(8, RunnerConfig().max_joint_step + 1e-5)
    limit[FR3.gripper_indices] = 0.5 + 1e-5  # the runner's gripper rate
    start = np.clip(np.array(FR3.home), FR3.low, FR3.high)
    assert np.all(np.abs(acts[0] - start) <= limit + 0.05) and np.all(np.abs(np.diff(acts, axis=0)) <= limit)
    assert np.all((acts >= FR3.low - 1e-5) & (acts <= FR3.high + 1e-5))
    # the mapped env's cameras are filmed (the first episodes), tiled side by side: front 200, wrist 40 + padding
    frames = read_video(out["per_episode"][0]["video"])
    assert len(frames) == 15 and frames[0].shape[:2] == (24, 48)
    assert abs(frames[0][:, :24].mean() - 200) < 8 and abs(frames[0][:16, 24:].mean() - 40) < 8
    assert frames[0][20:, 30:].mean() < 8  # the shorter wrist image is padded with black
    # "end_on_success": the episode ends at its first successful step
    out = evaluate(EvalConfig(policy=str(fr3_policy / "run"), env_map={**mapping, "end_on_success": True}, episodes=1))
    assert [(e["success"], e["steps"]) for e in out["per_episode"]] == [(True, 5)]
    # bad fields are named (the policy loaded once: the mapping is checked against it before any episode)
    loaded = Policy.load(str(fr3_policy / "run"))
    for bad, message in [
        (
            {"state_index": [7, 6, 5]},
            r"through 'state_index' \[7, 6, 5\] gives shape \(3,\); the policy expects \(8,\)",
        ),
        ({"state_scale": [1.0] * 3}, "'state_scale' has 3 values; it needs one number or 8"),
        ({"action_index": [0, 1]}, "'action_index' has 2 entries; it needs one per env action dimension"),
        ({"action_scale": [1.0, 0.0] * 4}, "'action_scale' must not contain 0"),
        ({"state_index": [9, 8, 7, 6, 5, 4, 3, 2], "state_scale": 1.0}, "'state_index' .* refers to index 9"),
        ({"action_index": [8, 7, 6, 5, 4, 3, 2, 1]}, "'action_index' .* refers to index 8; the policy produces 8-D"),
        ({"end_on_succes": True}, r"unknown field\(s\) \['end_on_succes'\]"),
    ]:
        with pytest.raises(ValueError, match=message):
            evaluate(EvalConfig(policy=str(fr3_policy / "run"), env_map={**mapping, **bad}, episodes=1), loaded)


def test_third_party_env_through_a_mapping(fr3_policy, tmp_path, capsys):
    gym.register("ToyReach-v0", entry_point=ToyReach)
    mapping = {
        "env_id": "ToyReach-v0",
        "cameras": {"front": "cam_external", "wrist": "cam_wrist"},
        "state": "joints",
        "action_dim": 8,
        "instruction": "reach",
    }
    path = tmp_path / "map.json"
    path.write_text(json.dumps(mapping))
    assert main(["eval", str(fr3_policy / "run"), "--env-map", str(path), "--episodes", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["task"] == "ToyReach-v0" and out["episodes"] == 2
    assert all(e["steps"] == 15 for e in out["per_episode"])
    # the run was trained with --execute 3: 15 steps take chunks at 0, 3, 6, 9, 12 (half the chunk of 8 would be 4)
    assert out["execute"] == 3 and out["execute_from"] == "policy"
    assert [e["inferences"] for e in out["per_episode"]] == [5, 5]
    args = ["eval", str(fr3_policy / "run"), "--env-map", str(path), "--execute", "5", "--episodes", "1", "--json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)  # --execute wins: chunks at 0, 5, 10
    assert out["execute_from"] == "--execute" and out["per_episode"][0]["inferences"] == 3
    bad = {**mapping, "cameras": {"front": "cam_external"}}
    with pytest.raises(ValueError, match=r"needs camera\(s\) \['cam_wrist'\]; the mapping provides"):
        evaluate(EvalConfig(policy=str(fr3_policy / "run"), env_map=bad, episodes=1))
    with pytest.raises(ValueError, match="action_dim 7; the env's action space has shape"):
        evaluate(EvalConfig(policy=str(fr3_policy / "run"), env_map={**mapping, "action_dim": 7}, episodes=1))


def test_vla_run_paced_with_video(aloha_policy, tmp_path, capsys):
    video = tmp_path / "run.mp4"
    assert (
        main(
            [
                "run",
                str(aloha_policy / "run"),
                "--task",
                "aloha2/transfer_cube",
                "--max-seconds",
                "1.5",
                "--video",
                str(video),
                "--execute",
                "5",
                "--json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["steps"] >= 20 and out["seconds"] >= 1.4 and out["stopped"] is None
    assert out["execution"] == "receding" and (out["execute"], out["execute_from"]) == (5, "--execute")
    assert len(read_video(video)) >= 10


def test_vla_run_executes_as_vla_eval_measures():
    run = _parser().parse_args(["run", "p", "--task", "aloha2/transfer_cube"])
    ev = _parser().parse_args(["eval", "p", "--task", "aloha2/transfer_cube"])
    assert run.execution == RunnerConfig.execution == EvalConfig.execution == "receding" and ev.execution is None
    assert run.execute is None and ev.execute is None  # both: as trained, else half the chunk (resolve_execute)


class FailsAfter(Wrapped):
    """The real policy, until its inference raises from call ``calls + 1`` on (a camera unplugged mid-episode)."""

    def __init__(self, policy, calls):
        super().__init__(policy)
        self.n, self.calls = 0, calls

    def __call__(self, obs):
        self.n += 1
        if self.n > self.calls:
            raise RuntimeError("camera unplugged")
        return self._policy(obs)


def test_vla_run_async_stops_with_the_reason_when_inference_fails(aloha_policy):
    policy = FailsAfter(Policy.load(str(aloha_policy / "run")), calls=2)  # compile; the first chunk, in reset
    out = run_live(policy, "aloha2/transfer_cube", execution="async", max_seconds=1.5, log=lambda m: None)
    # the background inference for the second chunk failed: the robot stopped then (it used to repeat the first
    # chunk's last action for the remaining 1.5 s, about 75 steps, and report nothing)
    assert (
        "inference failed on the async thread" in out["stopped"] and "RuntimeError: camera unplugged" in out["stopped"]
    )
    assert out["steps"] < 20 and out["seconds"] < 1.0, out


class ScriptedExpert:
    """The task's scripted expert behind the Policy interface (no cameras, chunks of one action). The expert reads
    privileged simulator state, so the policy drives a twin VlaEnv of the same task and seed in lockstep with the
    evaluated one, and checks every observation against the twin (a runner that altered the expert's actions, or
    fed another episode's observation, breaks the lockstep loudly). On the seeds in ``give_up`` it holds home."""

    cameras, image_size, robot, horizon, execute = (), 32, "fr3", 1, None

    def __init__(self, task, give_up=()):
        self.twin, self.give_up, self.expert = VlaEnv(task, cameras=[]), set(give_up), None

    def reset(self, seed):
        self.twin.reset(seed=seed)
        self.expert, self.hold = self.twin.make_expert(), seed in self.give_up

    def __call__(self, obs):
        home = np.array(self.twin.embodiment.home)
        if self.expert is None:  # called once before any episode (compilation, for a real policy)
            return home[None]
        np.testing.assert_allclose(obs["state"], self.twin.physics.state(), atol=1e-5, err_msg="out of lockstep")
        action = home if self.hold else np.asarray(self.expert.act(), np.float64)
        self.twin.step(action)
        return action[None]


def test_evaluate_the_scripted_expert_successes_failures_videos_and_interval(tmp_path, capsys):
    cfg = EvalConfig(
        policy="scripted",
        task="fr3/pick_place",
        episodes=3,
        seed=100,
        video_dir=str(tmp_path / "v"),
        video_first=1,
        max_steps=110,
    )
    out = evaluate(cfg, policy=ScriptedExpert("fr3/pick_place", give_up={101}))
    eps = out["per_episode"]
    assert [(e["seed"], e["success"]) for e in eps] == [(100, True), (101, False), (102, True)]
    assert eps[0]["steps"] < 110 and eps[1]["steps"] == 110 and eps[1]["stopped"] is None  # success ends an episode
    assert out["successes"] == 2 and out["success_rate"] == pytest.approx(2 / 3)
    assert out["ci95"] == pytest.approx([0.2077, 0.9385], abs=1e-4)  # Wilson score interval of 2 of 3
    # videos: the first episode (a success) and the failure; not the later success
    assert [Path(e["video"]).name if "video" in e else None for e in eps] == [
        "seed100_ok.mp4",
        "seed101_fail.mp4",
        None,
    ]
    assert len(read_video(eps[0]["video"])) == eps[0]["steps"] and len(read_video(eps[1]["video"])) == 110
    assert sorted(p.name for p in (tmp_path / "v").iterdir()) == ["seed100_ok.mp4", "seed101_fail.mp4"]


class HomeThenFails:
    """A policy that holds FR3's home pose in chunks of 8 and whose 3rd inference raises."""

    cameras, image_size, robot, horizon, execute = (), 32, "fr3", 8, None

    def __init__(self):
        self.n = 0

    def reset(self, seed):
        self.n = 0

    def __call__(self, obs):
        self.n += 1
        if self.n == 3:
            raise RuntimeError("camera unplugged")
        return np.tile(np.array(FR3.home), (8, 1))


def test_eval_async_inference_failure_ends_the_episode_with_the_reason(capsys):
    cfg = EvalConfig(policy="home", task="fr3/pick_place", episodes=1, execution="async", delay_steps=2)
    ep = evaluate(cfg, policy=HomeThenFails())["per_episode"][0]
    # chunks at 0 (reset), 2 (used from step 4), 5: the one started at step 5 raised, and the episode stopped there
    assert ep["stopped"] == "inference failed at step 5: RuntimeError: camera unplugged" and ep["steps"] == 5
    with pytest.raises(ValueError, match="--delay-steps 2: a simulated inference delay .* needs --execution async"):
        EvalConfig(policy="x", task="fr3/pick_place", delay_steps=2)


def test_eval_cli_passes_delay_and_step_cap(aloha_policy, capsys):
    args = ["eval", str(aloha_policy / "run"), "--task", "aloha2/transfer_cube", "--episodes", "1", "--json"]
    assert main([*args, "--execution", "async", "--delay-steps", "3", "--max-steps", "12"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"]["delay_steps"] == 3 and out["per_episode"][0]["steps"] == 12
    assert out["execute"] == 8 and out["execute_from"] == "policy"  # from scratch without --execute: whole chunks
    with pytest.raises(ValueError, match="--max-steps must be >= 1, got 0"):
        EvalConfig(policy="x", task="aloha2/transfer_cube", max_steps=0)
