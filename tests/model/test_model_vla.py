import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from vla_sdk.errors import InputError
from vla_sdk.model import (
    VLA,
    Batch,
    ModelConfig,
    Observation,
    as_batch,
    as_observation,
    fake_batch,
    fake_obs,
    get_preset,
    param_count,
)

CFG = get_preset("vla-tiny")  # 2 cameras, horizon 8, 32-wide state/action; fake data has 14 real dims
KEY = jax.random.key(0)


def replace_image(obs, cam, sample, value):
    images = dict(obs.images)
    images[cam] = images[cam].at[sample].set(value)
    return dataclasses.replace(obs, images=images)


def test_sample_shapes_and_padded_dims(head, sample_fn):
    obs = fake_obs(CFG, 2, 1, action_dims=7)
    actions = sample_fn(head)(obs, KEY)
    assert actions.shape == (2, CFG.horizon, CFG.action_dim) and actions.dtype == jnp.float32
    assert np.all(np.asarray(actions[..., 7:]) == 0.0)
    assert np.all(np.isfinite(actions)) and np.abs(actions[..., :7]).min() > 0


def test_loss_ignores_padded_dims_and_pad_steps(head, loss_fn):
    batch = fake_batch(CFG, 2, 2, pad_steps=3)
    base = loss_fn(head)(batch, KEY)
    assert np.isfinite(base) and base > 0
    junk = batch.actions.at[:, :, 14:].set(1e3).at[:, -3:, :].set(jnp.nan)  # padded dims, then pad steps
    assert loss_fn(head)(dataclasses.replace(batch, actions=junk), KEY) == base
    # Controls: a real dim of a real step counts, and so do pad steps once they are not flagged.
    assert loss_fn(head)(dataclasses.replace(batch, actions=batch.actions.at[:, 0, 0].add(1.0)), KEY) != base
    no_pad = dataclasses.replace(batch, action_is_pad=jnp.zeros_like(batch.action_is_pad))
    assert loss_fn(head)(no_pad, KEY) != base


def test_masked_camera_has_no_influence(head, sample_fn, loss_fn):
    batch = fake_batch(CFG, 2, 3)
    masks = dict(batch.image_masks, cam_wrist=jnp.array([False, True]))
    batch = dataclasses.replace(batch, image_masks=masks)
    ref = sample_fn(head)(batch, KEY)
    changed = replace_image(batch, "cam_wrist", 0, 0.7)  # pixels of the masked camera of sample 0
    np.testing.assert_array_equal(sample_fn(head)(changed, KEY), ref)
    assert loss_fn(head)(changed, KEY) == loss_fn(head)(batch, KEY)
    # Controls: the same change to a present camera matters, and masking is more than blacking out pixels.
    assert not np.allclose(sample_fn(head)(replace_image(batch, "cam_wrist", 1, 0.7), KEY)[1], ref[1])
    black = replace_image(batch, "cam_wrist", 0, 0.0)
    black = dataclasses.replace(black, image_masks=dict(masks, cam_wrist=jnp.array([True, True])))
    assert not np.allclose(sample_fn(head)(black, KEY)[0], ref[0])


def test_dict_observation_with_a_missing_camera(sample_fn):
    obs = fake_obs(CFG, 2, 4)
    masked = dataclasses.replace(obs, image_masks=dict(obs.image_masks, cam_external=jnp.zeros(2, bool)))
    as_dict = {f.name: getattr(obs, f.name) for f in dataclasses.fields(Observation)}
    as_dict["images"] = {"cam_wrist": obs.images["cam_wrist"]}  # no cam_external at all
    as_dict["image_masks"] = {}
    np.testing.assert_allclose(sample_fn("l1")(as_dict, KEY), sample_fn("l1")(masked, KEY), atol=1e-5)
    assert not np.allclose(sample_fn("l1")(obs, KEY), sample_fn("l1")(masked, KEY))


def test_state_and_token_padding_are_ignored(sample_fn):
    obs = fake_obs(CFG, 2, 5)
    ref = sample_fn("flow")(obs, KEY)
    state = obs.state.at[:, 20:].set(5.0)  # padded state dims (fake data has 14 real ones)
    tokens = jnp.where(obs.token_mask, obs.tokens, 65)  # padded token positions
    np.testing.assert_array_equal(sample_fn("flow")(dataclasses.replace(obs, state=state, tokens=tokens), KEY), ref)
    assert not np.allclose(sample_fn("flow")(dataclasses.replace(obs, state=obs.state.at[:, 0].add(1.0)), KEY), ref)
    assert not np.allclose(sample_fn("flow")(dataclasses.replace(obs, tokens=obs.tokens.at[:, 1].set(65)), KEY), ref)


def test_rng_controls_sampling(sample_fn):
    obs = fake_obs(CFG, 2, 6)
    a = sample_fn("flow")(obs, KEY)
    np.testing.assert_array_equal(sample_fn("flow")(obs, jax.random.key(0)), a)  # same rng -> same sample
    assert not np.allclose(sample_fn("flow")(obs, jax.random.key(1)), a)
    np.testing.assert_array_equal(sample_fn("l1")(obs, KEY), sample_fn("l1")(obs, jax.random.key(1)))  # deterministic


def test_dict_conversion():
    batch = fake_batch(CFG, 2, 7)
    as_dict = {f.name: getattr(batch, f.name) for f in dataclasses.fields(Batch)} | {"episode_index": 3}
    converted = as_batch(as_dict)
    assert isinstance(converted, Batch) and converted.actions is batch.actions
    assert type(as_observation(as_dict)) is Observation and type(as_observation(batch)) is Observation
    obs = as_observation(batch)
    assert as_observation(obs) is obs and obs.images is batch.images and obs.action_mask is batch.action_mask
    del as_dict["actions"]
    try:
        as_batch(as_dict)
    except KeyError as err:
        assert "actions" in str(err)
    else:
        raise AssertionError("a batch without actions was accepted")


def test_input_errors_name_the_problem(tiny):
    obs = fake_obs(CFG, 2, 9)
    extra = dataclasses.replace(obs, images=dict(obs.images, cam_high=obs.images["cam_wrist"]))
    with pytest.raises(InputError, match="cam_high"):
        tiny("l1").sample_actions(extra, KEY)
    small = dataclasses.replace(obs, images=dict(obs.images, cam_wrist=obs.images["cam_wrist"][:, :16]))
    with pytest.raises(ValueError, match="cam_wrist"):
        tiny("l1").sample_actions(small, KEY)
    with pytest.raises(ValueError, match="max_tokens"):
        tiny("l1").sample_actions(dataclasses.replace(obs, tokens=obs.tokens[:, :5]), KEY)


def test_bfloat16_compute_with_nnx_jit():
    cfg = CFG.replace(dtype="bfloat16")
    model = VLA(cfg, rngs=nnx.Rngs(jax.random.key(0, impl="rbg")))
    params = jax.tree.leaves(nnx.state(model, nnx.Param))
    assert {p.dtype for p in params} == {jnp.dtype("float32")} and param_count(model) == param_count(CFG)
    batch = fake_batch(cfg, 2, 8)
    as_dict = {f.name: getattr(batch, f.name) for f in dataclasses.fields(Batch)}
    loss, metrics = nnx.jit(lambda m, b: m.loss(b, KEY))(model, as_dict)
    assert loss.dtype == jnp.float32 and 0.5 < loss < 10 and set(metrics) == {"loss", "flow_mse"}


def test_without_proprio_the_state_never_reaches_the_model():
    """``proprio=False``: same weights as with it (a base can switch it off), and the prefix no longer depends on
    the state, as for a sample whose state mask is cleared; with it on, the state does reach the prefix."""
    blind_cfg = CFG.replace(proprio=False)
    seeing, blind = VLA(CFG, rngs=nnx.Rngs(0)), VLA(blind_cfg, rngs=nnx.Rngs(0))
    assert param_count(seeing) == param_count(blind)
    obs = fake_obs(CFG, 2, 5)
    moved = dataclasses.replace(obs, state=obs.state + 1.0)
    hidden = dataclasses.replace(obs, state_mask=jnp.zeros_like(obs.state_mask))
    np.testing.assert_array_equal(blind.encode_prefix(obs)[0], blind.encode_prefix(moved)[0])
    np.testing.assert_array_equal(blind.encode_prefix(obs)[0], seeing.encode_prefix(hidden)[0])
    assert not np.allclose(seeing.encode_prefix(obs)[0], seeing.encode_prefix(moved)[0])
    assert ModelConfig.from_dict(blind_cfg.to_dict()).proprio is False
    with pytest.raises(ValueError, match="proprio must be true or false"):
        CFG.replace(proprio="no")


def test_env_state_readout_is_a_training_target_only():
    """``env_state_dim``: a readout of the image tokens adds ``weight * mse`` to the loss and nothing else; at weight
    0 (or without a target) the loss is the action loss, and the actions never depend on the readout's weights."""
    cfg = CFG.replace(env_state_dim=3, head="l1")
    model = VLA(cfg, rngs=nnx.Rngs(0))
    plain = VLA(cfg.replace(env_state_dim=0), rngs=nnx.Rngs(0))
    assert param_count(model) == param_count(plain) + 2 * 16 * 64 * 3 + 3  # (2 cameras x 16 tokens x d) -> 3
    batch = fake_batch(cfg, 4, 1)
    env_state = jnp.asarray(np.random.default_rng(0).normal(size=(4, 3)), jnp.float32)
    target = dataclasses.replace(batch, env_state=env_state)
    base, _ = plain.loss(batch, KEY)
    np.testing.assert_allclose(model.loss(batch, KEY, 5.0)[0], base, rtol=1e-6)  # no target: nothing added
    np.testing.assert_allclose(model.loss(target, KEY, 0.0)[0], base, rtol=1e-6)
    loss, metrics = model.loss(target, KEY, 2.0)
    assert metrics["env_state_mse"] > 0
    np.testing.assert_allclose(loss, base + 2.0 * metrics["env_state_mse"], rtol=1e-5)
    obs = as_observation(batch)
    before = model.sample_actions(obs, KEY)
    model.env_readout.kernel.value = model.env_readout.kernel.value + 1.0
    np.testing.assert_array_equal(model.sample_actions(obs, KEY), before)
    with pytest.raises(ValueError, match="env_state_dim must be an int >= 0"):
        CFG.replace(env_state_dim=-1)


def test_merged_instruction_bytes_all_reach_the_model():
    """text_patch=4: 16 bytes become 4 prefix tokens. Every byte of the instruction changes the output (the first
    and last of a group as much as the others), padding bytes do not, and an older config without the field reads
    as one token per byte."""
    cfg = CFG.replace(head="l1", text_patch=4)
    assert cfg.text_tokens == 4 and cfg.prefix_len == CFG.prefix_len - 12
    graphdef, state = nnx.split(VLA(cfg, rngs=nnx.Rngs(0)))
    prefix = jax.jit(lambda s, o: nnx.merge(graphdef, s).encode_prefix(o))
    obs = fake_obs(cfg, 1, 3)
    obs = dataclasses.replace(obs, token_mask=jnp.arange(16)[None] < 9)  # 9 real bytes: groups 0-2 real, 3 padding
    ref, mask = prefix(state, obs)
    assert ref.shape[1] == cfg.prefix_len
    assert list(np.asarray(mask[0, -4:])) == [True, True, True, False]
    for i in (0, 3, 4, 8):  # first and last byte of group 0, first of group 1, the lone real byte of group 2
        changed = dataclasses.replace(obs, tokens=obs.tokens.at[0, i].set((obs.tokens[0, i] + 1) % 256))
        assert not np.allclose(prefix(state, changed)[0][:, :-1], ref[:, :-1]), i  # the real tokens see it
    padded = dataclasses.replace(obs, tokens=obs.tokens.at[0, 12:].set(65))
    np.testing.assert_allclose(prefix(state, padded)[0][:, :-1], ref[:, :-1], atol=1e-6)  # the masked group does not
    old = {k: v for k, v in cfg.to_dict().items() if k != "text_patch"}
    assert ModelConfig.from_dict(old).text_patch == 1
