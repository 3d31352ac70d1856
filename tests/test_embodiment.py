import json

import mujoco
import numpy as np
import pytest

from vla_sdk.embodiment import list_robots, load_embodiment, parse_embodiment
from vla_sdk.registry import UnknownNameError


def test_shipped_robots():
    assert list_robots() == ["aloha2", "fr3"]
    aloha, fr3 = load_embodiment("aloha2"), load_embodiment("fr3")
    assert aloha.action_dim == 14 and aloha.control_hz == 50
    assert aloha.cameras == ("cam_high", "cam_low", "cam_left_wrist", "cam_right_wrist")
    assert fr3.action_dim == 8 and len(fr3.cameras) == 2
    assert aloha.gripper_indices == [6, 13] and fr3.gripper_indices == [7]


@pytest.mark.parametrize("robot", ["aloha2", "fr3"])
def test_limits_match_the_model(robot):
    """The declared joint limits are the MJCF joint ranges and actuator control ranges (one source of truth)."""
    emb = load_embodiment(robot)
    m = mujoco.MjModel.from_xml_path(str(emb.model_path))
    for d in emb.dims:
        act = m.actuator(d.actuator)
        if d.kind == "joint":
            np.testing.assert_allclose(m.joint(d.joint).range, [d.low, d.high], err_msg=d.name)
            np.testing.assert_allclose(act.ctrlrange, [d.low, d.high], err_msg=d.name)
        else:
            np.testing.assert_allclose(sorted(act.ctrlrange), sorted(d.finger_range), err_msg=d.name)
    assert all(d.low <= h <= d.high for d, h in zip(emb.dims, emb.home, strict=True))


def test_unknown_robot_lists_valid_ones():
    with pytest.raises(UnknownNameError, match=r"Did you mean 'aloha2'.*Valid robots: aloha2, fr3"):
        load_embodiment("aloha")


def test_bad_spec_names_file_and_field(tmp_path):
    raw = json.loads(load_embodiment("fr3").model_path.with_name("embodiment.json").read_text())
    del raw["dims"][2]["low"]
    with pytest.raises(ValueError, match=r"embodiment.json: missing field dims\[2\].'low'"):
        parse_embodiment(raw, tmp_path / "embodiment.json")
    raw = json.loads(load_embodiment("fr3").model_path.with_name("embodiment.json").read_text())
    raw["format_version"] = 99
    with pytest.raises(ValueError, match="newer than"):
        parse_embodiment(raw, tmp_path / "embodiment.json")
