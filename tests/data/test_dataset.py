"""Writer, reader, statistics and validation of the LeRobot v3.0 layout."""

import json
import re

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


def _seal(root):
    """The per-episode SHA-256 columns, as the writer fills them at commit (recomputed when it did not)."""
    info = json.loads((root / L.INFO_PATH).read_text())
    eps = L.read_episodes(root)
    for e in eps:
        e["sha256"] = {
            k: L.file_sha256(root / rel)
            for k, rel in L.episode_files(e["episode_index"], L.video_keys(info["features"])).items()
        }
    L.atomic_write_parquet(root / L.EPISODES_PATH, L.episodes_table(eps, info["features"]))


def test_checksums_name_every_changed_file_and_verify_refuses(dataset_copy):
    from vla_sdk.errors import InputError

    _seal(dataset_copy)
    assert validate(dataset_copy) == [] and Dataset(dataset_copy).verify() == []
    data = dataset_copy / L.data_path(1)
    t = pq.read_table(data)  # a value changed, the file still parses: only the checksum can tell
    action = L.column_array(t, "action")
    action[3, 0] += 0.5
    t = t.set_column(t.schema.get_field_index("action"), "action", L.vector_column(action))
    pq.write_table(t, data)
    mp4 = dataset_copy / L.video_path("observation.images.cam_high", 0)
    mp4.write_bytes(mp4.read_bytes() + b"\0")
    errors = [str(p) for p in validate(dataset_copy) if p.severity == "error"]
    assert any(p.startswith("error: data/chunk-000/file-001.parquet: content changed since episode 1") for p in errors)
    assert any("videos/observation.images.cam_high/chunk-000/file-000.mp4: content changed" in p for p in errors)
    with pytest.raises(InputError, match=r"2 committed file\(s\) fail their checksums.*--ignore-checksums"):
        Dataset(dataset_copy).verify()


def test_dataset_without_checksums_is_flagged(dataset_copy):
    info = json.loads((dataset_copy / L.INFO_PATH).read_text())
    eps = L.read_episodes(dataset_copy)
    for e in eps:
        e["sha256"] = None
    L.atomic_write_parquet(dataset_copy / L.EPISODES_PATH, L.episodes_table(eps, info["features"]))
    problems = validate(dataset_copy)
    assert [p.severity for p in problems] == ["warning"], problems
    assert "recorded before checksums; byte damage cannot be detected" in problems[0].message
    assert Dataset(dataset_copy).verify() == [0, 1]


@pytest.mark.parametrize(
    "edit, where",
    [
        (lambda i: i["features"]["action"].update(dtype="complex7"), "features.action.dtype: 'complex7' is not"),
        (lambda i: i.update(fps="50"), "fps must be an integer"),
        (lambda i: i["features"].pop("timestamp"), "features: missing default feature 'timestamp'"),
        (lambda i: i["features"]["action"].update(shape=[-3]), "features.action.shape"),
        (lambda i: i.update(video_path="videos/{nope}.mp4"), "video_path"),
    ],
)
def test_bad_info_json_is_named_by_validate_and_reader(dataset_copy, edit, where):
    from vla_sdk.data.info import dataset_info
    from vla_sdk.errors import InputError

    info = json.loads((dataset_copy / L.INFO_PATH).read_text())
    edit(info)
    (dataset_copy / L.INFO_PATH).write_text(json.dumps(info))
    assert any(p.file == L.INFO_PATH and where in p.message for p in validate(dataset_copy)), validate(dataset_copy)
    for read in (Dataset, dataset_info):
        with pytest.raises(InputError, match=f"meta/info.json: {re.escape(where)}"):
            read(dataset_copy)


def test_damaged_meta_and_media_raise_sdk_errors_naming_the_file(dataset_copy):
    from vla_sdk.errors import InputError

    stats = json.loads((dataset_copy / L.STATS_PATH).read_text())
    stats["action"]["mean"] = "zero"
    stats["observation.state"] = [1, 2]
    (dataset_copy / L.STATS_PATH).write_text(json.dumps(stats))
    msgs = [str(p) for p in validate(dataset_copy)]
    assert "error: meta/stats.json: action.mean: must be an array of numbers, got 'zero'" in msgs, msgs
    assert any("meta/stats.json: observation.state: must be an object" in m for m in msgs), msgs
    mp4 = dataset_copy / L.video_path("observation.images.cam_left_wrist", 1)
    mp4.write_bytes(mp4.read_bytes()[:600])  # truncated: av.error.EOFError / InvalidDataError inside PyAV
    with pytest.raises(InputError, match=r"cam_left_wrist/chunk-000/file-001.mp4: unreadable video"):
        Dataset(dataset_copy).episode(1)
    tasks = dataset_copy / L.TASKS_PATH
    tasks.write_bytes(tasks.read_bytes()[:-20])  # pyarrow raises OSError / ArrowInvalid on a damaged footer
    with pytest.raises(InputError, match=r"meta/tasks.parquet: unreadable parquet"):
        Dataset(dataset_copy)
    assert any(p.file == L.TASKS_PATH and "unreadable parquet" in p.message for p in validate(dataset_copy))
    (dataset_copy / L.INFO_PATH).write_bytes(b"\xff\xfe{")  # not UTF-8
    assert [str(p) for p in validate(dataset_copy)][0].startswith("error: meta/info.json: not valid JSON")
    with pytest.raises(InputError, match="meta/info.json: not valid JSON"):
        Dataset(dataset_copy)
