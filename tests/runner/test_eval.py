"""`vla eval` (sim, third-party env, offline replay) and `vla run`."""

import json

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from vla_sdk.cli import main
from vla_sdk.evaluation import EvalConfig, evaluate, wilson_interval
from vla_sdk.video import read_video


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
    assert 0 <= two["ci95"][0] <= two["success_rate"] <= two["ci95"][1] <= 1
    assert two["latency_ms"]["p50"] > 0 and two["latency_ms"]["p99"] >= two["latency_ms"]["p50"]
    videos = [e["video"] for e in two["per_episode"]]  # the first episodes are always filmed
    assert all(len(read_video(v)) > 10 for v in videos)
    assert main(args) == 0
    one = json.loads(capsys.readouterr().out)
    strip = lambda r: [(e["seed"], e["success"], e["steps"]) for e in r["per_episode"]]  # noqa: E731
    assert strip(one) == strip(two)  # same seeds, same result, whatever the worker split
    assert [e["steps"] for e in one["per_episode"]] == [40, 40]  # --max-steps caps an episode that does not succeed


def test_eval_refuses_another_robot_before_any_episode(aloha_policy):
    with pytest.raises(ValueError, match="trained for robot 'aloha2'; fr3/pick_place is a 'fr3' task"):
        evaluate(EvalConfig(policy=str(aloha_policy / "run"), task="fr3/pick_place", episodes=1))


def test_offline_replay(aloha_policy, capsys):
    assert main(["eval", str(aloha_policy / "run"), "--replay", str(aloha_policy / "demos"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["chunks"] > 0 and np.isfinite(out["chunk_mse"]) and len(out["per_joint_mse"]) == 14
    phases = out["mse_by_phase"]  # where in the episode the error is: the first fifth is where a blind policy fails
    assert list(phases) == ["0-20 %", "20-40 %", "40-60 %", "60-80 %", "80-100 %"]
    assert all(np.isfinite(v) and v >= 0 for v in phases.values())
    assert main(["eval", str(aloha_policy / "run"), "--replay", str(aloha_policy / "demos")]) == 0
    assert "by where the chunk starts in its episode: 0-20 %" in capsys.readouterr().out


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
                "--json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["steps"] >= 20 and out["seconds"] >= 1.4 and out["execution"] == "async"
    assert len(read_video(video)) >= 10


def test_eval_cli_passes_delay_and_step_cap(aloha_policy, capsys):
    args = ["eval", str(aloha_policy / "run"), "--task", "aloha2/transfer_cube", "--episodes", "1", "--json"]
    assert main([*args, "--execution", "async", "--delay-steps", "3", "--max-steps", "12"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"]["delay_steps"] == 3 and out["per_episode"][0]["steps"] == 12
    assert out["execute"] == 4 and out["execute_from"] == "half the chunk"  # trained without --execute; chunk 8
    with pytest.raises(ValueError, match="--max-steps must be >= 1, got 0"):
        EvalConfig(policy="x", task="aloha2/transfer_cube", max_steps=0)
