"""Writer, reader, statistics and validation of the LeRobot v3.0 layout."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from vla_sdk.data import layout as L
from vla_sdk.data.reader import Dataset
from vla_sdk.data.stats import histogram_stats, image_histogram, vector_stats
from vla_sdk.data.validate import validate
from vla_sdk.data.writer import DatasetWriter


def test_layout_matches_lerobot_v3(recorded):
    info = json.loads((recorded / L.INFO_PATH).read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 50 and info["total_episodes"] == 2
    assert info["robot_type"] == "aloha2"
    assert info["features"]["observation.images.cam_high"]["dtype"] == "video"
    for p in (
        "meta/tasks.parquet",
        "meta/stats.json",
        "meta/episodes/chunk-000/file-000.parquet",
        "data/chunk-000/file-001.parquet",
        "videos/observation.images.cam_left_wrist/chunk-000/file-001.mp4",
    ):
        assert (recorded / p).is_file(), p
    data = pq.read_table(recorded / "data/chunk-000/file-000.parquet")
    assert str(data.schema.field("action").type) == "fixed_size_list<element: float>[14]"
    assert set(data.column_names) == {k for k, f in info["features"].items() if f["dtype"] != "video"}
    tasks = pq.read_table(recorded / L.TASKS_PATH)
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["task"]  # task strings = pandas index
    assert validate(recorded) == []


def test_reader_roundtrip_and_contiguous_indices(recorded):
    ds = Dataset(recorded)
    assert ds.num_episodes == 2 and ds.cameras == ["cam_high", "cam_left_wrist"]
    ep = ds.episode(1)
    n = ep["length"]
    assert ep["observation.state"].shape == (n, 14) and ep["images"]["cam_high"].shape == (n, 32, 32, 3)
    assert ep["seed"] == 1 and ep["success"] is True and ep["task"] in ds.tasks
    rows = pq.read_table(recorded / L.data_path(1)).to_pydict()
    assert rows["index"][0] == ds.episodes[0]["length"] and rows["frame_index"] == list(range(n))
    np.testing.assert_allclose(rows["timestamp"], np.arange(n) / 50, atol=1e-6)


def test_stats_exact_and_recomputable_for_a_subset(recorded):
    ds = Dataset(recorded)
    stored = json.loads((recorded / L.STATS_PATH).read_text())
    e0 = ds.episode(0)
    sub = ds.stats([0])
    np.testing.assert_allclose(sub["action"]["mean"], e0["action"].astype(np.float64).mean(0), rtol=1e-6)
    np.testing.assert_allclose(sub["action"]["q99"], np.quantile(e0["action"].astype(np.float64), 0.99, axis=0))
    assert sub["action"]["count"] == [e0["length"]] and stored["action"]["count"] == [ds.num_frames]
    # image statistics from stored histograms equal those computed from the frames as recorded
    assert np.array(stored["observation.images.cam_high"]["mean"]).shape == (3, 1, 1)
    full = ds.stats()
    np.testing.assert_allclose(full["observation.images.cam_high"]["std"], stored["observation.images.cam_high"]["std"])


def test_histogram_stats_are_exact():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    h = histogram_stats(image_histogram(img), 1)
    x = img.reshape(-1, 3) / 255.0
    np.testing.assert_allclose(np.array(h["mean"]).ravel(), x.mean(0))
    np.testing.assert_allclose(np.array(h["std"]).ravel(), x.std(0), atol=1e-12)
    np.testing.assert_allclose(np.array(h["min"]).ravel(), x.min(0))
    np.testing.assert_allclose(np.array(h["q50"]).ravel(), np.quantile(x, 0.5, axis=0, method="inverted_cdf"))
    with pytest.raises(ValueError, match="zero frames"):
        vector_stats(np.zeros((0, 3)))


def test_recovery_moves_uncommitted_files_aside_and_never_deletes(dataset_copy):
    root = dataset_copy
    orphan = root / L.data_path(2)
    orphan.write_bytes((root / L.data_path(1)).read_bytes())  # a kill after a rename, before meta/ was updated
    (root / L.STAGING / "ep-000002").mkdir(parents=True)
    (root / L.STAGING / "ep-000002" / "observation.images.cam_high.mp4").write_bytes(b"partial")
    with pytest.warns(UserWarning, match="moved uncommitted"):
        writer = DatasetWriter.open(root)
    assert writer.num_episodes == 2 and not orphan.exists()
    aside = sorted(p.name for p in (root / L.STAGING).rglob("*") if p.is_file())
    assert any("file-002.parquet" in n for n in aside) and any("cam_high.mp4" in n for n in aside)
    assert [p for p in validate(root) if p.severity == "error"] == []


def test_create_refuses_existing_data_without_force(dataset_copy):
    info = json.loads((dataset_copy / L.INFO_PATH).read_text())
    with pytest.raises(FileExistsError, match="already holds a dataset; use --resume"):
        DatasetWriter.create(dataset_copy, info["features"], 50, "aloha2", {})
    assert (dataset_copy / L.data_path(0)).exists()
    DatasetWriter.create(dataset_copy, info["features"], 50, "aloha2", {}, force=True)
    assert Dataset(dataset_copy).num_episodes == 0
    assert validate(dataset_copy) == []  # an empty dataset is valid


def test_missing_camera_and_bad_frames_are_refused(dataset_copy):
    w = DatasetWriter.open(dataset_copy)
    ep = w.begin_episode("do it")
    with pytest.raises(ValueError, match=r"cameras \['cam_high'\] given.*expects \['cam_high', 'cam_left_wrist'\]"):
        ep.add({"cam_high": np.zeros((32, 32, 3), np.uint8)}, np.zeros(14), np.zeros(14))
    imgs = {c: np.zeros((32, 32, 3), np.uint8) for c in ("cam_high", "cam_left_wrist")}
    with pytest.raises(ValueError, match=r"action must be finite with shape \(14,\)"):
        ep.add(imgs, np.zeros(14), np.full(14, np.nan))
    with pytest.raises(ValueError, match=r"records observation.environment_state; env_state was not given"):
        ep.add(imgs, np.zeros(14), np.zeros(14))
    with pytest.raises(ValueError, match=r"observation.environment_state must be finite with shape \(3,\)"):
        ep.add(imgs, np.zeros(14), np.zeros(14), np.zeros(6))
    ep.discard()
    with pytest.raises(ValueError, match=r"no camera\(s\) \['cam_low'\]"):
        Dataset(dataset_copy).episode(0, cameras=["cam_low"])


def test_validate_reports_every_problem_naming_files(dataset_copy):
    root = dataset_copy
    data1 = root / L.data_path(1)
    data1.write_bytes(data1.read_bytes()[:200])  # truncated parquet
    mp4 = root / L.video_path("observation.images.cam_left_wrist", 0)
    mp4.write_bytes(mp4.read_bytes()[: len(mp4.read_bytes()) // 3])  # truncated mp4
    info = json.loads((root / L.INFO_PATH).read_text())
    info["total_frames"] += 5  # mismatched lengths
    (root / L.INFO_PATH).write_text(json.dumps(info))
    problems = [str(p) for p in validate(root)]
    assert any("data/chunk-000/file-001.parquet: unreadable parquet" in p for p in problems), problems
    assert any(
        "videos/observation.images.cam_left_wrist/chunk-000/file-000.mp4: unreadable video" in p for p in problems
    ), problems
    assert any("meta/info.json: total_frames" in p for p in problems), problems
    with pytest.raises(Exception, match="file-001.parquet"):
        Dataset(root).episode(1)


def test_mismatched_episode_length_is_named(dataset_copy):
    import pyarrow as pa

    path = dataset_copy / L.EPISODES_PATH
    t = pq.read_table(path)
    lengths = t.column("length").to_pylist()
    lengths[0] -= 3
    t = t.set_column(t.schema.get_field_index("length"), "length", pa.array(lengths, pa.int64()))
    pq.write_table(t, path)
    problems = [str(p) for p in validate(dataset_copy)]
    assert any("data/chunk-000/file-000.parquet: episode 0 has" in p and "length" in p for p in problems), problems
    with pytest.raises(ValueError, match=r"file-000.parquet: episode 0 has \d+ rows, meta/episodes says"):
        Dataset(dataset_copy).episode(0)
