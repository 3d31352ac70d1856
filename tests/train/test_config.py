"""Train configuration parsing: --model FIELD=VALUE and its errors."""

import pytest

from vla_sdk.model import get_preset
from vla_sdk.train.config import TrainConfig, parse_model_fields
from vla_sdk.train.loop import _model_config


def test_model_fields_parse_json_values_and_strings():
    assert parse_model_fields(["image_size=96", "vision=keypoints", "mlp_ratio=2.5"]) == {
        "image_size": 96,
        "vision": "keypoints",
        "mlp_ratio": 2.5,
    }
    with pytest.raises(ValueError, match="FIELD=VALUE.*'image_size'"):
        parse_model_fields(["image_size"])


def test_model_fields_change_the_preset_and_are_checked():
    cfg = TrainConfig(data=("d",), out="r", preset="vla-xs", model={"image_size": 96, "horizon": 40}, dtype="float32")
    mcfg = _model_config(cfg, ["cam_high", "cam_right_wrist"], None)
    assert (mcfg.image_size, mcfg.horizon) == (96, 40)
    assert mcfg.replace(image_size=64, horizon=20, cameras=get_preset("vla-xs").cameras) == get_preset("vla-xs")
    with pytest.raises(ValueError, match="unknown ModelConfig field.*horizn"):
        _model_config(cfg.replace(model={"horizn": 40}), ["a", "b"], None)
    with pytest.raises(ValueError, match="vision must be one of"):
        _model_config(cfg.replace(model={"vision": "resnet"}), ["a", "b"], None)
    with pytest.raises(ValueError, match="--model changes a preset"):
        TrainConfig(data=("d",), out="r", preset=None, base="ckpt", model={"horizon": 40})
