"""Training-time augmentation: state noise (real dims only, at the asked-for scale), state dropout, and image
shift/jitter."""

import dataclasses

import jax
import numpy as np
import pytest
from flax import nnx

from vla_sdk.model import VLA, fake_batch, get_preset
from vla_sdk.train.augment import augment_images, drop_state, noisy_state
from vla_sdk.train.config import TrainConfig


def test_state_noise_only_on_real_dims_with_the_given_std():
    b = fake_batch(get_preset("vla-tiny"), 256, rng=0, state_dims=8)
    out = np.asarray(noisy_state(jax.random.key(1), b.state, b.state_mask, 0.2))
    mask = np.asarray(b.state_mask)
    assert np.array_equal(out[~mask], np.asarray(b.state)[~mask])  # padded dims: still exactly zero
    delta = (out - np.asarray(b.state))[mask]
    assert abs(delta.std() - 0.2) < 0.02 and abs(delta.mean()) < 0.02
    again = np.asarray(noisy_state(jax.random.key(1), b.state, b.state_mask, 0.2))
    assert np.array_equal(out, again)  # a key in, the same noise out


def test_state_dropout_hides_whole_states_from_the_model():
    """A dropped sample's mask is cleared in every dim, about ``rate`` of the batch is dropped, and the model's
    input (the prefix its action head reads) for a dropped sample no longer depends on its state values."""
    cfg = get_preset("vla-tiny")
    b = fake_batch(cfg, 512, rng=0, state_dims=8)
    mask = np.asarray(drop_state(jax.random.key(2), b.state_mask, 0.3))
    kept = mask.any(axis=1)
    assert np.array_equal(mask[kept], np.asarray(b.state_mask)[kept])  # kept rows: untouched, padding still off
    assert abs((~kept).mean() - 0.3) < 0.06
    assert np.array_equal(np.asarray(drop_state(jax.random.key(2), b.state_mask, 0.0)), np.asarray(b.state_mask))

    graphdef, params = nnx.split(VLA(cfg, rngs=nnx.Rngs(0)))
    encode = jax.jit(lambda p, obs: nnx.merge(graphdef, p).encode_prefix(obs)[0])  # one compile, not op by op
    small = fake_batch(cfg, 2, rng=1, state_dims=8)
    other = small.state + 1.0
    prefix = {}
    for name, m in (("kept", small.state_mask), ("dropped", np.zeros_like(small.state_mask))):
        for which, state in (("a", small.state), ("b", other)):
            obs = dataclasses.replace(small, state=state, state_mask=m)
            prefix[name, which] = np.asarray(encode(params, obs))
    assert np.array_equal(prefix["dropped", "a"], prefix["dropped", "b"])
    assert not np.allclose(prefix["kept", "a"], prefix["kept", "b"])  # with the mask on, the state reaches it
    with pytest.raises(ValueError, match="--state-dropout must be in"):
        TrainConfig(data=("d",), out="r", state_dropout=1.0)


def test_image_augmentation_takes_uint8_and_returns_model_range():
    rng = np.random.default_rng(0)
    imgs = {"cam_a": rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)}
    out = np.asarray(augment_images(jax.random.key(0), imgs)["cam_a"])
    assert out.shape == (4, 32, 32, 3) and out.dtype == np.float32
    assert out.min() >= -1.0 and out.max() <= 1.0
    plain = imgs["cam_a"].astype(np.float32) / 127.5 - 1.0
    assert np.abs(out - plain).mean() > 0.05  # shifted and jittered, not passed through
    again = np.asarray(augment_images(jax.random.key(0), imgs)["cam_a"])
    assert np.array_equal(out, again)


def test_state_noise_is_checked():
    with pytest.raises(ValueError, match="--state-noise must be in"):
        TrainConfig(data=("d",), out="r", state_noise=-0.1)


def test_max_shift_zero_keeps_every_pixel_in_place():
    """--max-shift 0: colour jitter only; brightness/contrast/saturation are monotone per image, so the ranking
    of pixel intensities (where things are) is unchanged for a grey image."""
    rng = np.random.default_rng(1)
    grey = np.repeat(rng.integers(0, 256, (2, 16, 16, 1), dtype=np.uint8), 3, axis=-1)
    out = np.asarray(augment_images(jax.random.key(3), {"cam": grey}, max_shift=0)["cam"])[..., 0]
    shifted = np.asarray(augment_images(jax.random.key(3), {"cam": grey}, max_shift=4)["cam"])[..., 0]
    src = grey[..., 0].astype(np.float64)
    for b in range(2):
        assert np.corrcoef(out[b].ravel(), src[b].ravel())[0, 1] > 0.99
    assert min(np.corrcoef(shifted[b].ravel(), src[b].ravel())[0, 1] for b in range(2)) < 0.9
    with pytest.raises(ValueError, match="--max-shift must be >= 0"):
        TrainConfig(data=("d",), out="r", max_shift=-1)


def test_colour_jitter_is_brightness_then_contrast_then_saturation():
    """The fused jitter equals the three steps done one after the other (numpy reference, factors drawn from the
    same keys), on a colourful image where each step changes the result and the clip is reached."""
    from vla_sdk.train.augment import _factors

    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, (3, 8, 12, 3), dtype=np.uint8)
    img[0, :2] = 255  # saturated pixels: brightness > 1 clips them
    key = jax.random.key(5)
    out = np.asarray(augment_images(key, {"cam": img}, max_shift=0)["cam"])
    keys = jax.random.split(jax.random.fold_in(key, 0), 3)
    for i in range(3):
        b, c, s = (np.float64(v) for v in _factors(keys[i])[1:])
        x = img[i].astype(np.float64) / 255.0 * b
        x = (x - x.mean()) * c + x.mean()
        gray = x.mean(-1, keepdims=True)
        x = np.clip((x - gray) * s + gray, 0.0, 1.0)
        np.testing.assert_allclose(out[i], x * 2 - 1, atol=1e-5)
        assert not np.allclose(out[i], img[i] / 127.5 - 1, atol=0.02)  # the factors did something
