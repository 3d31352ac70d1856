"""Train configuration parsing: --model FIELD=VALUE and its errors."""

import pytest

from vla_sdk.model import get_preset
from vla_sdk.train.config import TrainConfig, parse_model_fields
from vla_sdk.train.loop import _model_config
from vla_sdk.train.mixture import RobotData


def _robot(*cameras) -> list[RobotData]:
    return [RobotData(name="r", dataset_ids=[0], embodiment={"name": "r"}, action_names=[], cameras=tuple(cameras))]


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
    mcfg = _model_config(cfg, _robot("cam_high", "cam_right_wrist"), None)
    assert (mcfg.image_size, mcfg.horizon) == ((96, 96), 40)
    assert mcfg.replace(image_size=64, horizon=20, cameras=get_preset("vla-xs").cameras) == get_preset("vla-xs")
    with pytest.raises(ValueError, match="unknown ModelConfig field.*horizn"):
        _model_config(cfg.replace(model={"horizn": 40}), _robot("a", "b"), None)
    with pytest.raises(ValueError, match="vision must be one of"):
        _model_config(cfg.replace(model={"vision": "resnet"}), _robot("a", "b"), None)
    # on a base checkpoint the fields change its config; the data's cameras replace the base's names
    base_meta = {"model_config": get_preset("vla-xs").to_dict()}
    on_base = TrainConfig(data=("d",), out="r", preset=None, base="ckpt", model={"image_size": 96}, dtype="float32")
    mcfg = _model_config(on_base, _robot("cam_high", "cam_right_wrist"), base_meta)
    assert (mcfg.image_size, mcfg.cameras) == ((96, 96), ("cam_high", "cam_right_wrist"))
    assert mcfg.replace(image_size=64, cameras=get_preset("vla-xs").cameras) == get_preset("vla-xs")
    with pytest.raises(ValueError, match="image_size .* must be divisible by patch_size"):
        _model_config(on_base.replace(model={"image_size": 100}), _robot("a", "b"), base_meta)


def test_base_weights_are_all_kept_for_the_same_robot():
    """Restored checkpoints key list items by string ("0"): every weight of a same-robot base must still be found."""
    import jax
    import numpy as np
    from flax import nnx

    from vla_sdk.model import VLA
    from vla_sdk.train.loop import _load_base

    cfg = get_preset("vla-tiny")
    base = nnx.to_pure_dict(nnx.state(VLA(cfg, rngs=nnx.Rngs(1)), nnx.Param))

    def as_restored(tree):  # what orbax gives back: string keys, numpy leaves
        return {str(k): as_restored(v) for k, v in tree.items()} if isinstance(tree, dict) else np.asarray(tree)

    logs = []
    params = _load_base(
        VLA(cfg, rngs=nnx.Rngs(2)), as_restored(base), {"embodiment": {"name": "fr3"}}, ["fr3"], logs.append
    )
    n = len(jax.tree.leaves(base))
    assert f"kept {n} weight arrays, re-initialised 0" in logs[0]
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(base), strict=True):
        np.testing.assert_array_equal(a, b)


def test_execute_must_be_a_positive_count():
    with pytest.raises(ValueError, match="--execute must be >= 1 .actions per chunk., got 0"):
        TrainConfig(data=("d",), out="r", execute=0)
    assert TrainConfig(data=("d",), out="r", execute=40).execute == 40
