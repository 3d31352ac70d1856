import json

import pytest

from vla_sdk.model import PRESETS, ModelConfig, get_preset, param_count
from vla_sdk.registry import UnknownNameError


def test_json_round_trip():
    cfg = get_preset("vla-s").replace(cameras=("cam_high", "cam_left_wrist", "cam_right_wrist"), head="l1")
    back = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg and back.cameras == ("cam_high", "cam_left_wrist", "cam_right_wrist")


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(d_model=66, num_heads=4), "divisible by 4"),
        (dict(d_model=96, num_heads=5), "num_heads"),
        (dict(expert_d_model=64, expert_heads=3), "expert_heads"),
        (dict(head="diffusion"), "head must be one of"),
        (dict(dtype="float16"), "dtype must be one of"),
        (dict(image_size=36), "divisible by patch_size"),
        (dict(patch_size=6, image_size=36, stem_layers=2), "2\\*\\*stem_layers"),
        (dict(cameras=("a", "a")), "duplicate"),
        (dict(cameras=()), "at least one camera"),
        (dict(horizon=0), "horizon must be a positive int"),
        (dict(max_tokens=1), "max_tokens"),
        (dict(max_tokens=18, text_patch=4), "max_tokens \\(18\\) must be divisible by text_patch \\(4\\)"),
        (dict(text_patch=0), "text_patch must be a positive int"),
    ],
)
def test_validation(changes, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**changes)


def test_from_dict_rejects_unknown_fields():
    with pytest.raises(ValueError, match="d_modle"):
        ModelConfig.from_dict({"d_modle": 64})


def test_unknown_preset_lists_and_suggests():
    with pytest.raises(UnknownNameError) as err:
        get_preset("vla-tinny")
    assert "'vla-tiny'" in str(err.value) and "vla-s" in str(err.value)


def test_preset_parameter_counts():
    assert set(PRESETS) >= {"vla-tiny", "vla-s"}
    assert param_count(get_preset("vla-tiny")) < 1_000_000
    assert param_count(get_preset("vla-tiny").replace(head="l1")) < 1_000_000
    assert 10_000_000 < param_count(get_preset("vla-s")) <= 30_000_000  # counted abstractly (nnx.eval_shape)


def test_keypoint_vision_validation_and_tokens():
    with pytest.raises(ValueError, match="vision must be one of"):
        ModelConfig(vision="resnet")
    with pytest.raises(ValueError, match="keypoints must be a positive int"):
        ModelConfig(vision="keypoints", keypoints=0)
    cfg = get_preset("vla-xs")
    assert cfg.vision == "keypoints" and cfg.head == "l1"
    assert cfg.tokens_per_camera == cfg.keypoints == 16
    assert cfg.prefix_len == 2 * 16 + 1 + cfg.max_tokens
    assert param_count(cfg) < 1_000_000
    # resolution changes the conv maps, not the token count or the parameters
    assert param_count(cfg.replace(image_size=96)) == param_count(cfg)


@pytest.mark.parametrize("preset", ["vla-m", "vla-base"])
def test_every_phrasing_of_every_task_fits_whole(preset):
    """The base and vla-m (`vla train`'s default) read instructions whole: no phrasing of any task (every colour of
    the pick_color ones) is cut, in 20 prefix tokens (4 bytes each)."""
    from vla_sdk.model.tokenizer import ByteTokenizer
    from vla_sdk.sim import TASKS

    cfg = get_preset(preset)
    tok = ByteTokenizer(cfg.max_tokens)
    texts = [p.format(color=c) for t in TASKS.values() for p in t.instructions for c in ("red", "green", "blue")]
    assert len(texts) > 100 and max(map(len, texts)) > 60  # the long phrasings are there
    assert [t for t in texts if tok.lost_bytes(t)] == []
    assert ByteTokenizer(48).lost_bytes(max(texts, key=len)) > 0  # the check can fail: 48 bytes would cut it
    assert cfg.text_tokens == 20 and cfg.prefix_len == len(cfg.cameras) * 48 + 1 + 20
    assert param_count(get_preset("vla-base")) < 6_000_000  # float32 EMA weights well under the 25 MB it may ship
