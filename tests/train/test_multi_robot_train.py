"""Training on datasets of two robots in one run (aloha2 + fr3, the committed samples): each sample of a mixed batch
carries its own robot's dims, statistics and cameras (the other robot's camera slots masked out), the checkpoint
keeps the parts per robot, and a policy of it acts as either robot."""

import json
import shutil

import numpy as np
import pytest

from vla_sdk.data.reader import Dataset
from vla_sdk.errors import InputError, UsageError
from vla_sdk.model import get_preset
from vla_sdk.policy import Policy
from vla_sdk.train.config import TrainConfig
from vla_sdk.train.loader import FrameStore
from vla_sdk.train.loop import train
from vla_sdk.train.mixture import Mixture, group_by_robot, image_size_notes, union_cameras
from vla_sdk.transforms import PolicyTransform


@pytest.fixture(scope="module")
def mixture(demos, fr3_demos, cache):
    datasets = [Dataset(demos), Dataset(fr3_demos)]
    robots = group_by_robot(datasets, None)
    cfg = get_preset("vla-tiny").replace(cameras=union_cameras(robots))
    stores, transforms = [], []
    for r in robots:
        eps = [(d, k) for d in r.dataset_ids for k in range(datasets[d].num_episodes)]
        store = FrameStore(datasets, eps, r.cameras, cfg.image_size, cache, progress=False)
        stats = {"observation.state": _stats(store.states), "action": _stats(store.actions)}
        stores.append(store)
        transforms.append(PolicyTransform(cfg, r.action_names, stats, None, r.cameras))
    return robots, stores, transforms, cfg


def _stats(x):
    return {"mean": x.mean(0).tolist(), "std": (x.std(0) + 0.5).tolist()}  # + 0.5: not the identity anywhere


def test_robots_are_grouped_and_their_cameras_become_slots_by_name(mixture):
    robots, _, _, cfg = mixture
    assert [r.name for r in robots] == ["aloha2", "fr3"]
    assert robots[0].cameras == ("cam_high", "cam_left_wrist") and robots[1].cameras == ("cam_external", "cam_wrist")
    assert cfg.cameras == ("cam_high", "cam_left_wrist", "cam_external", "cam_wrist")


def test_a_mixed_batch_has_each_samples_masks_cameras_and_statistics(mixture):
    robots, stores, transforms, cfg = mixture
    batch = Mixture(stores, transforms, None).batch(64, cfg.horizon, np.random.default_rng(0))
    dims = batch["state_mask"].sum(1)
    assert set(dims) == {14, 8} and len(dims) == 64  # both robots drawn, nothing else
    assert (batch["action_mask"].sum(1) == dims).all()
    for r, store, transform, n in zip(robots, stores, transforms, (14, 8), strict=True):
        rows = np.flatnonzero(dims == n)
        for cam in cfg.cameras:
            mine = cam in r.cameras
            assert batch["image_masks"][cam][rows].all() == mine and batch["image_masks"][cam][rows].any() == mine
            if not mine:  # a camera this robot lacks: zero pixels, masked out
                assert batch["images"][cam][rows].max() == 0
        assert batch["images"][r.cameras[0]][rows].max() > 0
        # each row's state, unnormalized with its own robot's statistics, is one of that robot's recorded states
        raw = transform.state_norm.inverse(batch["state"][rows, :n])
        assert (batch["state"][rows, n:] == 0).all()
        dist = np.abs(raw[:, None, :] - store.states[None]).max(-1).min(1)
        assert dist.max() < 1e-4
        assert (batch["actions"][rows, :, n:] == 0).all()  # the padded action dims carry nothing
    # with the other robot's statistics the same check fails: it tells the robots' statistics apart
    rows = np.flatnonzero(dims == 8)
    wrong = transforms[0].state_norm.inverse(np.pad(batch["state"][rows, :8], ((0, 0), (0, 6))))[:, :8]
    assert np.abs(wrong[:, None, :] - stores[1].states[None]).max(-1).min(1).max() > 1e-2


def test_dataset_weights_set_each_datasets_share(mixture):
    robots, stores, transforms, cfg = mixture
    weighted = Mixture(stores, transforms, [1.0, 3.0])
    assert weighted.share() == pytest.approx([0.25, 0.75])
    fr3 = np.mean(
        [
            (weighted.batch(64, cfg.horizon, np.random.default_rng(s))["state_mask"].sum(1) == 8).mean()
            for s in range(20)
        ]
    )
    assert 0.68 < fr3 < 0.82
    plain = Mixture(stores, transforms, None)
    assert plain.share()[1] == pytest.approx(len(stores[1]) / (len(stores[0]) + len(stores[1])))


def test_conflicting_frame_rates_within_one_robot_are_refused(demos, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(demos, other)
    info = json.loads((other / "meta/info.json").read_text())
    info["fps"] = 30
    (other / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(InputError, match=r"recorded at 30 fps.*50 fps.*must share the frame rate"):
        group_by_robot([Dataset(demos), Dataset(other)], None)


def test_resized_and_stretched_cameras_are_said(demos, fr3_demos):
    datasets = [Dataset(demos), Dataset(fr3_demos)]
    robots = group_by_robot(datasets, None)
    assert image_size_notes(datasets, robots, (32, 32)) == []  # the samples' own size
    notes = image_size_notes(datasets, robots, (24, 32))
    assert len(notes) == 4 and all("32x32 is stretched to the model's 24x32" in n for n in notes)
    assert "resized to the model's 64x64" in image_size_notes(datasets, robots, (64, 64))[0]


def test_data_weights_must_match_the_data():
    with pytest.raises(UsageError, match=r"--data-weights: 1 weight\(s\) for 2 --data"):
        TrainConfig(data=("a", "b"), out="r", data_weights=(1.0,))
    with pytest.raises(UsageError, match="positive"):
        TrainConfig(data=("a", "b"), out="r", data_weights=(1.0, 0.0))


def test_a_run_on_two_robots_keeps_parts_per_robot_and_fine_tunes_one(demos, fr3_demos, tmp_path):
    run = tmp_path / "both"
    logs = []
    train(
        TrainConfig(
            data=(str(demos), str(fr3_demos)),
            out=str(run),
            preset="vla-tiny",
            steps=2,
            batch_size=8,
            save_every=2,
            cache_dir=str(tmp_path / "cache"),
            data_weights=(1.0, 1.0),
        ),
        progress=False,
        log=logs.append,
    )
    assert any("robot fr3: 1 dataset(s), 3 episodes" in m and "50% of each batch" in m for m in logs)
    policy = Policy.load(run, robot="fr3")
    assert policy.cameras == ("cam_external", "cam_wrist") and policy.meta["trained_robots"] == ["aloha2", "fr3"]
    assert len(policy.meta["stats"]["action"]["mean"]) == 8
    rng = np.random.default_rng(0)
    obs = {
        "images": {c: rng.integers(0, 256, (32, 32, 3), np.uint8) for c in policy.cameras},
        "state": np.zeros(8, np.float32),
        "instruction": "pick up the cube",
    }
    assert policy(obs).shape == (policy.horizon, 8)
    assert Policy.load(run, robot="aloha2").cameras == ("cam_high", "cam_left_wrist")
    with pytest.raises(UsageError, match="several robots"):
        Policy.load(run)

    # fine-tuning the two-robot base on fr3 alone: its cameras bind to the base's slots by name, fr3's action
    # slots are kept (the base knows fr3), and the result is one fr3 policy over the base's four slots
    logs.clear()
    tuned = tmp_path / "tuned"
    train(
        TrainConfig(
            data=(str(fr3_demos),),
            out=str(tuned),
            base=str(run),
            preset=None,
            steps=1,
            batch_size=8,
            save_every=1,
            cache_dir=str(tmp_path / "cache"),
        ),
        progress=False,
        log=logs.append,
    )
    assert any("re-initialised 0" in m for m in logs), logs
    assert "statistics of fr3: the base's (its normalization carries over)" in logs
    fr3 = Policy.load(tuned)
    assert fr3.robot == "fr3" and fr3.cameras == ("cam_external", "cam_wrist")
    assert fr3.config.cameras == ("cam_high", "cam_left_wrist", "cam_external", "cam_wrist")
    assert fr3(obs).shape == (fr3.horizon, 8)
    assert fr3.meta["stats"] == Policy.load(run, robot="fr3").meta["stats"]  # the base's fr3 statistics


def test_tasks_of_one_robot_with_different_object_states_train_together(demos, cache, tmp_path):
    """Transfer cube records the cube (3 values), insertion the peg and socket (6): one robot's frame store over both
    loads (it used to fail concatenating them), their object states left out; --env-state-weight refuses the mix."""
    from vla_sdk.data.record import RecordConfig, record

    ins = tmp_path / "ins"
    record(
        RecordConfig("aloha2/insertion", ins, episodes=1, cameras=("cam_high", "cam_left_wrist"), image_size=(32, 32)),
        progress=False,
    )
    datasets = [Dataset(demos), Dataset(ins)]
    widths = [ds.features["observation.environment_state"]["shape"][0] for ds in datasets]
    assert widths == [3, 6]
    eps = [(d, k) for d in range(2) for k in range(datasets[d].num_episodes)]
    store = FrameStore(datasets, eps, ("cam_high",), (32, 32), cache, progress=False)
    assert store.env_states is None and len(store) == sum(datasets[d].episode(k)["length"] for d, k in eps)
    one = FrameStore(datasets, [(1, 0)], ("cam_high",), (32, 32), cache, progress=False)
    assert one.env_states.shape == (len(one), 6)
    common = dict(out=str(tmp_path / "run"), preset="vla-tiny", steps=1, batch_size=4, cache_dir=str(cache))
    with pytest.raises(UsageError, match="record different environment states"):
        train(TrainConfig(data=(str(demos), str(ins)), env_state_weight=1.0, **common), progress=False)
