"""`vla dataset convert --from aloha-hdf5`: round trip through ALOHA HDF5 files, and bad input."""

import json

import h5py
import numpy as np
import pytest
from aloha_hdf5_fixture import write_aloha_hdf5, write_synthetic

from vla_sdk.data.convert import convert_aloha_hdf5
from vla_sdk.data.reader import Dataset
from vla_sdk.data.validate import validate
from vla_sdk.video import read_video


@pytest.fixture(scope="module")
def source(recorded):
    """The recorded episodes, decoded once."""
    ds = Dataset(recorded)
    return ds, [ds.episode(k) for k in range(ds.num_episodes)]


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "jpeg"])
def test_round_trip(source, recorded, tmp_path, compress):
    src, episodes = source
    files = write_aloha_hdf5(recorded, tmp_path / "hdf5", compress=compress, episodes=episodes)
    with h5py.File(files[0], "r") as f:  # the fixture writes ALOHA's layout
        assert f.attrs["compress"] == compress and f["/observations/qpos"].shape[1] == 14
        assert f["/observations/images/cam_high"].ndim == (2 if compress else 4)
    out = tmp_path / "conv"
    summary = convert_aloha_hdf5(tmp_path / "hdf5", out, task_instruction="transfer the cube")
    conv = Dataset(out)
    assert summary["episodes"] == src.num_episodes == conv.num_episodes
    assert summary["frames"] == src.num_frames == conv.num_frames
    assert summary["jpeg_episodes"] == (src.num_episodes if compress else 0)
    assert "/observations/qvel" in summary["ignored"] and summary["sim"] is True
    assert conv.cameras == src.cameras and conv.info["robot_type"] == "aloha2"
    assert conv.features["action"]["names"] == src.features["action"]["names"]
    for k, a in enumerate(episodes):
        b = conv.episode(k)
        for name in ("observation.state", "action"):
            assert b[name].dtype == np.float32 and np.array_equal(a[name], b[name]), name
        assert b["task"] == "transfer the cube" and b["success"] is None
        for cam, frames in a["images"].items():  # one more lossy generation (H.264, plus JPEG): close, not equal
            err = np.abs(frames.astype(np.int16) - b["images"][cam]).mean()
            assert err < (6.0 if compress else 4.0), (k, cam, err)
    assert [p for p in validate(out) if p.severity == "error"] == []


@pytest.mark.parametrize("cv2_order", [True, False])
def test_jpeg_channel_order(tmp_path, cv2_order):
    """ALOHA's JPEGs hold cv2's channel order (the default); --jpeg-rgb reads JPEGs that hold true RGB."""
    path = write_synthetic(
        tmp_path / "src" / "episode_0.hdf5", length=4, size=(32, 32), compress=True, cv2_order=cv2_order
    )
    assert path.exists()
    for jpeg_rgb in (False, True):
        out = tmp_path / f"out{jpeg_rgb}"
        convert_aloha_hdf5(tmp_path / "src", out, task_instruction="t", jpeg_rgb=jpeg_rgb)
        img = Dataset(out).episode(0)["images"]["cam_high"][0].astype(int)
        red_right = img[:, -4:, 0].mean() - img[:, :4, 0].mean()  # the ramp: red grows left to right
        assert (red_right > 100) == (jpeg_rgb != cv2_order), (jpeg_rgb, red_right)


def test_resize_and_camera_subset(tmp_path):
    for k in range(2):
        write_synthetic(tmp_path / "src" / f"episode_{k}.hdf5", cameras=("cam_high", "cam_low"), size=(20, 30))
    write_synthetic(tmp_path / "src" / "episode_10.hdf5", length=4, cameras=("cam_high", "cam_low"), size=(20, 30))
    out = tmp_path / "conv"
    s = convert_aloha_hdf5(tmp_path / "src", out, task_instruction="t", image_size=(16, 24), cameras=["cam_low"])
    ds = Dataset(out)
    assert s["cameras"] == ds.cameras == ["cam_low"] and s["image_size"] == [16, 24]
    assert [e["length"] for e in ds.episodes] == [6, 6, 4]  # episode_10 after episode_1 (numeric order)
    assert [e["extra"]["source_file"] for e in ds.episodes] == ["episode_0.hdf5", "episode_1.hdf5", "episode_10.hdf5"]
    assert ds.episode(2)["images"]["cam_low"].shape == (4, 16, 24, 3)


def _edit(path, fn):
    with h5py.File(path, "a") as f:
        fn(f)


def _replace(f, name, data):
    del f[name]
    f.create_dataset(name, data=data)


BAD = {
    "missing action": (lambda f: f.__delitem__("action"), None, "'/action'"),
    "short action": (lambda f: _replace(f, "action", f["action"][:-1]), None, "'/action' 5"),
    "13-D qpos": (
        lambda f: _replace(f, "observations/qpos", f["observations/qpos"][:, :13]),
        None,
        "'/observations/qpos' has shape (6, 13)",
    ),
    "short images": (
        lambda f: _replace(f, "observations/images/cam_high", f["observations/images/cam_high"][:4]),
        None,
        "'/observations/images/cam_high' 4",
    ),
    "missing camera": (lambda f: None, ["cam_high", "cam_low"], "/observations/images/cam_low"),
    "float images": (
        lambda f: _replace(f, "observations/images/cam_high", np.zeros((6, 16, 16, 3), np.float32)),
        None,
        "'/observations/images/cam_high' is float32",
    ),
    "nan action": (lambda f: f["action"].__setitem__((2, 3), np.nan), None, "'/action' has non-finite"),
    "not jpeg": (
        lambda f: _replace(f, "observations/images/cam_high", np.zeros((6, 50), np.uint8)),
        None,
        "'/observations/images/cam_high' frame 0 is not a JPEG",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_names_file_and_field(tmp_path, case):
    edit, cameras, field = BAD[case]
    write_synthetic(tmp_path / "src" / "episode_0.hdf5")
    bad = write_synthetic(tmp_path / "src" / "episode_1.hdf5")
    _edit(bad, edit)
    out = tmp_path / "out"
    with pytest.raises(ValueError) as e:
        convert_aloha_hdf5(tmp_path / "src", out, task_instruction="t", cameras=cameras)
    msg = str(e.value)
    assert str(bad if case != "missing camera" else tmp_path / "src" / "episode_0.hdf5") in msg and field in msg, msg
    assert not out.exists()  # every file is checked before anything is written


def test_no_files_and_existing_out(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no episode_<k>.hdf5"):
        convert_aloha_hdf5(tmp_path / "empty", tmp_path / "o", task_instruction="t")
    write_synthetic(tmp_path / "src" / "episode_0.hdf5")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        convert_aloha_hdf5(tmp_path / "src", tmp_path / "taken", task_instruction="t")
    with pytest.raises(ValueError, match="task-instruction"):
        convert_aloha_hdf5(tmp_path / "src", tmp_path / "o", task_instruction=" ")


def test_cli_convert_and_viz(tmp_path, capsys):
    from vla_sdk import cli

    for k in range(2):
        write_synthetic(tmp_path / "src" / f"episode_{k}.hdf5", compress=bool(k))
    out = tmp_path / "conv"
    args = ["dataset", "convert", "--from", "aloha-hdf5", str(tmp_path / "src"), "--out", str(out)]
    assert cli.main(args + ["--task-instruction", "t", "--image-size", "16", "24", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["episodes"] == 2 and summary["image_size"] == [16, 24] and summary["jpeg_episodes"] == 1
    assert cli.main(args + ["--task-instruction", "t"]) == 2  # --out exists
    assert "not empty" in capsys.readouterr().err
    video = tmp_path / "v.mp4"
    assert cli.main(["dataset", "viz", str(out), "--episode", "1", "--out", str(video)]) == 0
    assert len(read_video(video)) == 6
    assert cli.main(["dataset", "viz", str(out), "--episode", "2", "--out", str(video)]) == 2
    assert "valid: 0..1" in capsys.readouterr().err
