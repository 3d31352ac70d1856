"""tools/grasp_offsets.py: where a gripper first closes relative to the object, measured in real MuJoCo episodes."""

import importlib.util
import json
from pathlib import Path

import pytest

from vla_sdk.sim.env import VlaEnv

_tool = Path(__file__).parents[1] / "tools" / "grasp_offsets.py"
_spec = importlib.util.spec_from_file_location("grasp_offsets", _tool)
grasp_offsets = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(grasp_offsets)


def test_the_scripted_expert_closes_on_the_cube_and_holding_never_closes():
    env = VlaEnv("fr3/pick_place", cameras=[])
    dim = grasp_offsets.gripper_dim(env.embodiment, None)

    def expert_episode(seed):
        expert = []  # made after the reset, as `vla record` makes it
        act, start = lambda obs: expert[0].act(), lambda obs: expert.append(env.make_expert())
        return grasp_offsets.first_close(env, act, start, seed, dim, "tcp", "cube")

    rows = [expert_episode(seed) for seed in (3, 4)]
    env.close()
    for row in rows:  # the expert aims its grasp: the cube's centre lies between the fingers, within a few mm
        assert row["success"] and row["close_step"] > 0 and row["distance_mm"] < 15, row


def test_a_held_gripper_is_reported_as_never_closing():
    env = VlaEnv("fr3/pick_place", cameras=[])
    env.max_steps = 5
    home = list(env.embodiment.home)
    row = grasp_offsets.first_close(env, lambda obs: home, None, 0, 7, "tcp", "cube")
    env.close()
    assert row["close_step"] is None and row["distance_mm"] is None and not row["success"]
    assert grasp_offsets.summary([row])["closed"] == 0


def test_a_trained_policy_on_seen_and_unseen_seeds(fr3_policy, capsys):
    out = grasp_offsets.main(
        [str(fr3_policy / "run"), "--task", "fr3/pick_place", "--data", str(fr3_policy / "demos"),
         "--seen", "1", "--unseen", "1", "--json"]
    )  # fmt: skip
    printed = json.loads(capsys.readouterr().out)
    assert printed == out and out["site"] == "tcp"
    assert [r["seed"] for r in out["seen"]["episodes"]] == [0]  # the sample's first recorded seed
    assert [r["seed"] for r in out["unseen"]["episodes"]] == [1000]


def test_bad_arguments_name_what_exists(fr3_policy):
    with pytest.raises(SystemExit, match="no body named 'ball'"):
        grasp_offsets.main([str(fr3_policy / "run"), "--task", "fr3/pick_place", "--body", "ball"])
    env = VlaEnv("aloha2/transfer_cube", cameras=[])
    with pytest.raises(SystemExit, match=r"has grippers \['left/gripper', 'right/gripper'\]"):
        grasp_offsets.gripper_dim(env.embodiment, None)
    env.close()
