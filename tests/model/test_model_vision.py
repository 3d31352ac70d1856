"""The keypoint (spatial-softmax) encoder: where each keypoint is and what it pools."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from vla_sdk.model import get_preset
from vla_sdk.model.vision import KeypointEncoder, spatial_softmax


def test_spatial_softmax_locates_a_peak_and_pools_its_features():
    h, w = 8, 12
    logits = np.full((1, h, w, 2), -1e4, np.float32)
    logits[0, 0, 0, 0] = 0.0  # keypoint 0: top-left pixel
    logits[0, 5, 9, 1] = 0.0  # keypoint 1: row 5, column 9
    feats = np.random.default_rng(0).normal(size=(1, h, w, 3)).astype(np.float32)
    where, what = spatial_softmax(jnp.asarray(logits), jnp.asarray(feats))
    np.testing.assert_allclose(where[0, 0], [-1.0, -1.0], atol=1e-6)
    np.testing.assert_allclose(where[0, 1], [-1 + 2 * 9 / (w - 1), -1 + 2 * 5 / (h - 1)], atol=1e-6)
    np.testing.assert_allclose(what[0, 1], feats[0, 5, 9], atol=1e-6)
    # two equal peaks: the keypoint sits halfway between them (sub-pixel, not the arg-max)
    logits[0, 5, 9, 1] = logits[0, 5, 10, 1] = 0.0
    where, _ = spatial_softmax(jnp.asarray(logits), jnp.asarray(feats))
    np.testing.assert_allclose(where[0, 1, 0], -1 + 2 * 9.5 / (w - 1), atol=1e-6)


def test_keypoint_tokens_follow_the_object():
    """A red square moved across a grey image moves the keypoint tokens; a static image gives static tokens."""
    cfg = get_preset("vla-xs")
    enc = KeypointEncoder(cfg, rngs=nnx.Rngs(0))
    img = np.zeros((3, 64, 64, 3), np.float32)
    img[1, 10:16, 10:16, 0] = 1.0
    img[2, 40:46, 40:46, 0] = 1.0
    tokens = np.asarray(enc(jnp.asarray(img)))
    assert tokens.shape == (3, cfg.keypoints, cfg.d_model) and np.isfinite(tokens).all()
    assert np.abs(tokens[1] - tokens[2]).max() > 1e-3
    again = np.asarray(enc(jnp.asarray(img[:1])))
    np.testing.assert_allclose(again[0], tokens[0], atol=1e-5)
    assert jax.tree.leaves(nnx.state(enc, nnx.Param))  # trainable


def test_keypoint_sharpness_makes_tokens_follow_a_small_object():
    """The same weights at sharpness 10 change their tokens with a 3-pixel square's position far more than at 1
    (whose maps stay diffuse over the image and barely move); 1 is what every earlier checkpoint used."""
    cfg = get_preset("vla-xs").replace(image_size=96)
    img = np.full((2, 96, 96, 3), 0.5, np.float32)
    img[0, 30:33, 30:33] = [1.0, -1.0, -1.0]
    img[1, 60:63, 60:63] = [1.0, -1.0, -1.0]
    for seed in (0, 1):
        change = {}
        for sharpness in (1.0, 10.0):
            enc = KeypointEncoder(cfg.replace(keypoint_sharpness=sharpness), rngs=nnx.Rngs(seed))
            tokens = np.asarray(enc(jnp.asarray(img)))
            change[sharpness] = np.abs(tokens[0] - tokens[1]).max()
        assert change[10.0] > 4 * change[1.0]
    assert cfg.keypoint_sharpness == 1.0
    with pytest.raises(ValueError, match="keypoint_sharpness must be in"):
        cfg.replace(keypoint_sharpness=0.0)
