"""Gripper polarity: action 1 opens the fingers over the full declared range, action 0 closes them."""

import numpy as np
import pytest

from vla_sdk.embodiment import load_embodiment
from vla_sdk.sim import make

TASK = {"aloha2": "aloha2/transfer_cube", "fr3": "fr3/pick_place"}


@pytest.mark.parametrize("robot", ["aloha2", "fr3"])
def test_open_command_opens_over_full_range(robot):
    emb = load_embodiment(robot)
    env = make(TASK[robot], cameras=[])
    env.reset(seed=0)
    home = np.array(emb.home)
    data, model = env.physics.data, env.physics.model

    def settle(opening):
        a = home.copy()
        a[emb.gripper_indices] = opening
        for _ in range(int(emb.control_hz)):  # one second
            env.step(a)
        return {
            i: (data.joint(emb.dims[i].joint).qpos[0], data.joint(emb.dims[i].mirror_joint).qpos[0])
            for i in emb.gripper_indices
        }

    closed, opened = settle(0.0), settle(1.0)
    for i in emb.gripper_indices:
        d = emb.dims[i]
        lo, hi = d.finger_range  # finger position (m from the centre line) at action 0 and action 1
        assert hi > lo, f"{d.name}: 'open' must mean fingers further apart"
        for finger in range(2):  # both fingers move, symmetrically
            assert abs(closed[i][finger] - lo) < 1.5e-3, (d.name, closed[i])
            assert abs(opened[i][finger] - hi) < 1.5e-3, (d.name, opened[i])
        gap_open = np.linalg.norm(_pad_centre(model, data, d, 0) - _pad_centre(model, data, d, 1))
        assert gap_open > 2 * hi  # the pads really are apart by at least the full opening
        assert env.physics.state()[i] == pytest.approx(1.0, abs=0.05)


def _pad_centre(model, data, dim, which):
    joint = dim.joint if which == 0 else dim.mirror_joint
    return (
        data.xpos[model.joint(joint).bodyid[0]]
        + data.xmat[model.joint(joint).bodyid[0]].reshape(3, 3)
        @ model.geom_pos[np.flatnonzero(model.geom_bodyid == model.joint(joint).bodyid[0])[0]]
    )
