"""Fixing a task's variables and its instruction (`vla eval --task-var color=blue --instruction ...`): the same seed
gives the same scene, the fixed value decides the goal and the instruction, and bad names or values are refused."""

import numpy as np
import pytest

from vla_sdk.errors import InputError, UsageError
from vla_sdk.eval_config import EvalConfig
from vla_sdk.sim.env import VlaEnv


def _cubes(env):
    return {c: env.physics.data.body(f"{c}_cube").xpos.copy() for c in ("red", "green", "blue")}


def test_a_fixed_colour_keeps_the_scene_and_changes_the_goal():
    free, fixed = (
        VlaEnv("fr3/pick_color", cameras=[]),
        VlaEnv("fr3/pick_color", cameras=[], variables={"color": "blue"}),
    )
    drawn = set()
    for seed in range(6):
        free.reset(seed=seed)
        fixed.reset(seed=seed)
        drawn.add(free.task.variables["color"])
        a, b = _cubes(free), _cubes(fixed)
        assert all(np.array_equal(a[c], b[c]) for c in a)  # the same layout
        assert fixed.task.variables["color"] == "blue" and "blue" in fixed.instruction
    assert drawn != {"blue"}  # the free env draws other colours: the fixed one changed something
    # the success predicate follows the fixed colour: the blue cube in the bin succeeds, the red one does not
    import mujoco

    for cube, want in (("blue", True), ("red", False)):
        fixed.reset(seed=0)
        goal = fixed.task.bin_goal()
        fixed.physics.set_free_body(f"{cube}_cube", [goal[0], goal[1], goal[2]], [1, 0, 0, 0])
        for _ in range(300):
            mujoco.mj_step(fixed.physics.model, fixed.physics.data)
        assert fixed.task.success() == want, cube


def test_a_fixed_instruction_is_filled_with_the_episodes_variables():
    env = VlaEnv("aloha2/pick_color", cameras=[], instruction="grab the {color} block and bin it")
    colors = set()
    for seed in range(5):
        env.reset(seed=seed)
        assert env.instruction == f"grab the {env.task.variables['color']} block and bin it"
        colors.add(env.task.variables["color"])
    assert len(colors) > 1


def test_bad_variables_and_instructions_are_refused():
    with pytest.raises(InputError, match=r"no task variable 'colour' to set \(settable: color\)"):
        VlaEnv("fr3/pick_color", cameras=[], variables={"colour": "blue"})
    with pytest.raises(InputError, match=r"'color' must be one of \['red', 'green', 'blue'\], got 'pink'"):
        VlaEnv("fr3/pick_color", cameras=[], variables={"color": "pink"})
    with pytest.raises(InputError, match=r"settable: none"):
        VlaEnv("fr3/pick_place", cameras=[], variables={"color": "red"})
    with pytest.raises(InputError, match=r"placeholders: \{color\}"):
        VlaEnv("fr3/pick_color", cameras=[], instruction="put the {colour} cube away")
    with pytest.raises(UsageError, match="give --task"):
        EvalConfig(policy="p", env_map="m.json", variables={"color": "red"})
