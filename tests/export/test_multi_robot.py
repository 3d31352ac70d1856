"""A policy trained for several robots (meta ``robots``) acts as one of them: its cameras, statistics and action
dims, the other robots' camera slots masked out; export writes one robot's artifact. Weights: vla-tiny's
initialization (what is checked is the plumbing, not what the weights learned)."""

import jax
import numpy as np
import pytest
from flax import nnx

from vla_sdk.data.stats import vector_stats
from vla_sdk.errors import InputError, UsageError
from vla_sdk.export.build import export_policy
from vla_sdk.export.runtime import load_artifact
from vla_sdk.model import VLA, get_preset
from vla_sdk.multi_robot import for_robot, trained_robots
from vla_sdk.policy import Policy
from vla_sdk.transforms import PolicyTransform

CFG = get_preset("vla-tiny").replace(cameras=("cam_high", "cam_external"))


def _parts(name: str, dims: int, camera: str, rng) -> dict:
    x = rng.standard_normal((50, dims)).astype(np.float32)
    return {
        "embodiment": {"name": name},
        "action_names": [f"{name}_{i}" for i in range(dims)],
        "stats": {"observation.state": vector_stats(x), "action": vector_stats(2 * x + 1)},
        "delta_mask": None,
        "cameras": [camera],
    }


@pytest.fixture(scope="module")
def two_robots():
    rng = np.random.default_rng(0)
    params = nnx.to_pure_dict(nnx.state(VLA(CFG, rngs=nnx.Rngs(0)), nnx.Param))
    leaves, treedef = jax.tree.flatten(params)  # open the zero-initialised gates: every weight reaches the actions
    params = jax.tree.unflatten(treedef, [np.asarray(x) + 0.02 * rng.standard_normal(x.shape) for x in leaves])
    meta = {
        "format_version": 1,
        "model_config": CFG.to_dict(),
        "robots": {"aloha2": _parts("aloha2", 14, "cam_high", rng), "fr3": _parts("fr3", 8, "cam_external", rng)},
        "execute": None,
        "metrics": {"step": 0},
    }
    return params, meta


def _obs(camera: str, dims: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "images": {camera: rng.integers(0, 256, (48, 64, 3), np.uint8)},  # any size: the transform resizes
        "state": rng.standard_normal(dims).astype(np.float32),
        "instruction": "put the red cube in the bin",
    }


def test_each_robot_gets_its_cameras_dims_and_statistics(two_robots):
    params, meta = two_robots
    assert trained_robots(meta) == ["aloha2", "fr3"]
    fr3, aloha = Policy(params, meta, robot="fr3"), Policy(params, meta, robot="aloha2")
    assert fr3.cameras == ("cam_external",) and aloha.cameras == ("cam_high",)
    assert fr3.robot == "fr3" and fr3.meta["trained_robots"] == ["aloha2", "fr3"]
    assert fr3(_obs("cam_external", 8)).shape == (CFG.horizon, 8)
    assert aloha(_obs("cam_high", 14)).shape == (CFG.horizon, 14)
    with pytest.raises(InputError, match="cameras do not match the policy"):
        fr3(_obs("cam_high", 8))  # another robot's camera is not this robot's input
    # the fr3 policy's chunk is the model's with the cam_high slot masked out, unnormalized with fr3's statistics:
    # whatever image that slot held, nothing of it reaches the actions
    obs = _obs("cam_external", 8, seed=3)
    inputs = fr3.transform.observation(obs["images"], obs["state"], obs["instruction"])
    for junk in (0, 255):
        fed = {**inputs, "images": {**inputs["images"], "cam_high": np.full((1, *CFG.image_size, 3), junk, np.uint8)}}
        fed["image_masks"] = {**inputs["image_masks"], "cam_high": np.zeros((1,), bool)}
        fr3.reset(7)
        want = fr3.transform.unactions(np.asarray(fr3._sample(fed, jax.random.fold_in(jax.random.key(7), 0))))[0]
        fr3.reset(7)
        np.testing.assert_allclose(fr3(obs), want, atol=1e-5)
    std = np.asarray(meta["robots"]["fr3"]["stats"]["action"]["std"])
    assert np.allclose(fr3.transform.action_norm.std, np.maximum(std, 1e-3))


def test_a_robot_it_was_not_trained_for_is_refused_by_name(two_robots):
    params, meta = two_robots
    with pytest.raises(UsageError, match=r"several robots \(aloha2, fr3\): say which"):
        Policy(params, meta)
    with pytest.raises(InputError, match="trained for robots \\['aloha2', 'fr3'\\], not 'so100'"):
        Policy(params, meta, robot="so100")
    one = for_robot(meta, "fr3")  # a one-robot meta (what an fr3 run writes) is checked the same way
    one = {k: v for k, v in one.items() if k != "trained_robots"}
    assert for_robot(one, "fr3") is one
    with pytest.raises(InputError, match="trained for robot 'fr3', not 'aloha2'"):
        for_robot(one, "aloha2")


def test_export_writes_one_robots_artifact(two_robots, tmp_path):
    params, meta = two_robots
    with pytest.raises(UsageError, match="say which"):
        export_policy(params, meta, tmp_path / "x.vla", gate_count=0, latency_runs=0)
    summary, float_policy, art = export_policy(
        params, meta, tmp_path / "fr3.vla", robot="fr3", gate_count=0, latency_runs=0
    )
    assert art.manifest["cameras"] == ["cam_external"] and art.manifest["embodiment"]["name"] == "fr3"
    assert [i["name"] for i in art.manifest["function"]["inputs"]][:2] == ["image:cam_external", "state"]
    loaded = load_artifact(tmp_path / "fr3.vla", robot="fr3")
    obs = _obs("cam_external", 8, seed=5)
    float_policy.reset(1)
    loaded.reset(1)
    np.testing.assert_allclose(loaded(obs), float_policy(obs), atol=1e-4)
    with pytest.raises(InputError, match="trained for robot 'fr3', not 'aloha2'"):
        load_artifact(tmp_path / "fr3.vla", robot="aloha2")


def test_an_instruction_longer_than_the_model_takes_is_reported_once():
    rng = np.random.default_rng(0)
    parts = _parts("fr3", 8, "cam_external", rng)
    t = PolicyTransform(CFG, parts["action_names"], parts["stats"], cameras=["cam_external"])
    img = {"cam_external": np.zeros((32, 32, 3), np.uint8)}
    long = "put the red cube into the bin next to the green one"  # 51 bytes; vla-tiny takes 14
    with pytest.warns(UserWarning, match=r"37 byte\(s\) longer than the model takes .* cut to 'put the red cu'"):
        t.observation(img, np.zeros(8), long)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t.observation(img, np.zeros(8), long)  # reported once, not at every step
        t.observation(img, np.zeros(8), "pick it")  # fits: nothing to report
    with pytest.raises(InputError, match="the model's camera slots are"):
        PolicyTransform(CFG, parts["action_names"], parts["stats"], cameras=["cam_wrist"])
