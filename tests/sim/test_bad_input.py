import numpy as np
import pytest

from vla_sdk.registry import UnknownNameError
from vla_sdk.sim import get_task, make


def test_wrong_action_shape_names_expected_shape():
    env = make("aloha2/transfer_cube", cameras=[])
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(14,\).*left/waist.*got shape \(8,\)"):
        env.step(np.zeros(8))


def test_nan_action_is_refused():
    env = make("fr3/pick_place", cameras=[])
    env.reset(seed=0)
    a = np.array(env.embodiment.home)
    a[2] = np.nan
    with pytest.raises(ValueError, match=r"non-finite values in \['joint3'\].*\(8,\)"):
        env.step(a)


def test_unknown_task_lists_valid_ones():
    with pytest.raises(UnknownNameError, match=r"Did you mean 'aloha2/transfer_cube'.*Valid tasks:.*fr3/pick_place"):
        get_task("aloha2/transfer_cub")


def test_unknown_camera():
    with pytest.raises(ValueError, match=r"unknown camera.*cam_top.*cam_high"):
        make("aloha2/transfer_cube", cameras=["cam_top"])


def test_actions_beyond_limits_are_clipped():
    env = make("fr3/pick_place", cameras=[])
    env.reset(seed=0)
    emb = env.embodiment
    a = np.array(emb.home)
    a[3] = 5.0  # joint4's upper limit is -0.1518
    a[7] = 3.0  # gripper opening above 1
    clipped, was = env.check_action(a)
    assert was and clipped[3] == emb.dims[3].high and clipped[7] == 1.0
    for _ in range(30):
        _, _, _, _, info = env.step(a)
    assert info["clipped"]
    state = env.physics.state()
    assert state[3] <= emb.dims[3].high + 0.01 and state[7] <= 1.02
