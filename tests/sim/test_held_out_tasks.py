"""The held-out tasks (fr3/push_to_target, aloha2/place_on_plate): marked so a base's training mix can leave them
out, compatible with their robot's other tasks, success computed from physics. Their experts also run in
test_experts.py (2 seeds each; tools/bench_experts.py measures 100)."""

import mujoco
import numpy as np
import pytest

from vla_sdk.embodiment import load_embodiment
from vla_sdk.sim import TASKS, list_tasks, make
from vla_sdk.sim.tasks.common import set_mocap, yaw_quat

HELD_OUT = ("aloha2/place_on_plate", "fr3/push_to_target")


def _settle(env, steps: int = 10):
    home = np.array(env.embodiment.home)
    for _ in range(steps):
        env.step(home)


def test_held_out_tasks_are_marked_and_queryable():
    assert list_tasks(held_out=True) == sorted(HELD_OUT)
    base = list_tasks(held_out=False)
    assert not set(base) & set(HELD_OUT) and set(base) | set(HELD_OUT) == set(list_tasks())
    assert {"aloha2/transfer_cube", "fr3/pick_place"} <= set(base)  # the shipped ones stay in a base's mix
    assert list_tasks("fr3", held_out=True) == ["fr3/push_to_target"]
    for name in HELD_OUT:
        assert TASKS[name].held_out


@pytest.mark.parametrize("task", HELD_OUT)
def test_same_cameras_and_state_as_the_robots_other_tasks(task):
    """Datasets recorded in a held-out task have the features of the robot's other tasks (cameras, sizes, state)."""
    robot = TASKS[task].robot
    sibling = next(t for t in list_tasks(robot, held_out=False))
    obs, _ = make(task).reset(seed=0)
    ref, _ = make(sibling).reset(seed=0)
    assert list(obs["images"]) == list(ref["images"]) == list(load_embodiment(robot).cameras)
    assert {c: i.shape for c, i in obs["images"].items()} == {c: i.shape for c, i in ref["images"].items()}
    assert obs["state"].shape == ref["state"].shape


@pytest.mark.parametrize("task", HELD_OUT)
def test_not_solved_at_reset_nor_by_standing_still(task):
    env = make(task, cameras=[])
    for seed in range(4):
        env.reset(seed=seed)
        assert not env.success(), f"seed {seed}: solved at reset"
        _settle(env, 30)
        assert not env.success(), f"seed {seed}: solved by holding the home pose"


@pytest.mark.parametrize("task", HELD_OUT)
def test_layout_comes_from_the_seed(task):
    env = make(task, cameras=[])
    layouts = []
    for seed in (0, 1, 0):
        env.reset(seed=seed)
        layouts.append(env.physics.object_positions())
    np.testing.assert_array_equal(layouts[0], layouts[2])
    assert np.abs(layouts[0] - layouts[1]).max() > 0.01


def test_push_target_is_a_marker_nothing_collides_with():
    env = make("fr3/push_to_target", cameras=[])
    m = env.physics.model
    target = m.geom("target").id
    assert m.geom_contype[target] == 0 and m.geom_conaffinity[target] == 0
    assert m.geom_group[target] in (0, 1, 2)  # drawn by the cameras (groups 0-2 are visible by default)
    env.reset(seed=5)
    expert = env.make_expert()
    for _ in range(env.max_steps):
        *_, term, _, _ = env.step(expert.act())
        d = env.physics.data
        assert target not in {int(g) for c in d.contact[: d.ncon] for g in (c.geom1, c.geom2)}
        if term:
            break
    assert env.success()


def test_push_marker_is_seen_by_the_external_camera():
    """The green disc shows in cam_external: hiding it under the table changes the picture."""
    env = make("fr3/push_to_target", cameras=["cam_external"])
    p = env.physics
    env.reset(seed=0)
    shown = env._obs()["images"]["cam_external"].astype(int)
    set_mocap(p, "target", p.body_pos("target") - [0.0, 0.0, 0.1])
    mujoco.mj_forward(p.model, p.data)
    hidden = env._obs()["images"]["cam_external"].astype(int)
    assert (np.abs(shown - hidden).max(axis=-1) > 50).sum() >= 10  # at least 10 pixels of 128 x 128


def test_push_success_needs_the_cube_centre_inside_the_disc():
    env = make("fr3/push_to_target", cameras=[])
    task, p = env.task, env.physics
    r = task.TARGET_RADIUS
    for offset, expected in ((0.5 * r, True), (r + 0.01, False)):
        env.reset(seed=2)
        t = p.body_pos("target")
        p.set_free_body("cube", [t[0] + offset, t[1], 0.025], yaw_quat(0.3))
        mujoco.mj_forward(p.model, p.data)
        _settle(env)
        assert env.success() is expected, offset


def test_push_expert_never_lifts_the_cube():
    """Non-prehensile: the cube slides on the table all the way (never higher than resting, 0.025 m)."""
    env = make("fr3/push_to_target", cameras=[])
    for seed in (0, 1):
        env.reset(seed=seed)
        expert, z = env.make_expert(), []
        for _ in range(env.max_steps):
            *_, term, _, _ = env.step(expert.act())
            z.append(env.physics.body_pos("cube")[2])
            if term:
                break
        assert term and max(z) < 0.03, (seed, max(z))


def test_place_success_needs_the_cube_resting_on_the_plate_and_released():
    env = make("aloha2/place_on_plate", cameras=[])
    task, p = env.task, env.physics
    env.reset(seed=3)
    plate = p.body_pos("plate")
    top = task.PLATE_TOP + task.HALF
    cases = (
        ([0.0, 0.0, top], True),  # on the plate
        ([0.0, 0.0, top + 0.10], False),  # above it, falling
        ([task.PLATE_RADIUS + 0.03, 0.0, task.HALF], False),  # on the table beside it
    )
    for offset, expected in cases:
        env.reset(seed=3)
        p.set_free_body("cube", plate + offset, yaw_quat(0.2))
        mujoco.mj_forward(p.model, p.data)
        _settle(env, 3)
        assert env.success() is expected, offset


def test_place_expert_lifts_and_lets_go():
    env = make("aloha2/place_on_plate", cameras=[])
    for seed in (0, 2):  # seed 0 puts the cube right of the middle, seed 2 left: each arm places once
        env.reset(seed=seed)
        expert, z = env.make_expert(), []
        for _ in range(env.max_steps):
            *_, term, _, info = env.step(expert.act())
            z.append(env.physics.body_pos("cube")[2])
            if term:
                break
        assert info["success"] and max(z) > 0.08, (seed, max(z))
