"""Datasets written by the real lerobot package read as lerobot reads them (issue 26).

The fixtures under fixtures/ were made by fixtures/make_lerobot_fixtures.py in a throwaway environment with lerobot
installed; each .npz beside a dataset holds what lerobot itself returns per frame, so these tests need no lerobot.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from vla_sdk.checkpoint import read_checkpoint
from vla_sdk.cli import main
from vla_sdk.data.info import dataset_info
from vla_sdk.data.lerobot_v21 import convert_lerobot_v21
from vla_sdk.data.reader import Dataset
from vla_sdk.data.validate import validate
from vla_sdk.errors import InputError
from vla_sdk.video import read_video

FIX = Path(__file__).parent / "fixtures"
V30, V21 = FIX / "lerobot_v30", FIX / "lerobot_v21"
# PyAV's swscale and lerobot's decoder convert the same decoded YUV to RGB; measured difference on these fixtures
FRAME_TOLERANCE = 0


def _ref(root: Path) -> dict:
    with np.load(root.with_suffix(".npz"), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def v21_converted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("v21") / "converted"
    summary = convert_lerobot_v21(V21, out)
    assert summary["episodes"] == 3 and summary["format"] == "lerobot-v2.1"
    return out


def _same_as_lerobot(ds: Dataset, ref: dict) -> None:
    assert ds.num_frames == len(ref["state"])
    assert ds.num_episodes == len(set(ref["episode_index"].tolist()))
    for k in range(ds.num_episodes):
        sel = ref["episode_index"] == k
        ep = ds.episode(k)
        np.testing.assert_array_equal(ep["observation.state"], ref["state"][sel])
        np.testing.assert_array_equal(ep["action"], ref["action"][sel])
        assert {ep["task"]} == set(ref["task"][sel].tolist())
        frames = ep["images"]["front"]
        assert frames.dtype == np.uint8 and frames.shape == ref["frames"][sel].shape
        diff = np.abs(frames.astype(np.int16) - ref["frames"][sel].astype(np.int16))
        assert diff.max() <= FRAME_TOLERANCE, f"episode {k}: frames differ by up to {diff.max()}"


def test_v30_tasks_are_the_pandas_index():
    import pyarrow.parquet as pq

    table = pq.read_table(V30 / "meta/tasks.parquet")
    assert "task" not in table.column_names  # lerobot's layout: the strings are the (unnamed) pandas index
    assert Dataset(V30).tasks == ["pick up the red cube", "push the block to the left"]


def test_v30_several_episodes_per_file():
    rows = Dataset(V30)._episode_files  # noqa: SLF001 - the test checks the fixture is what the issue describes
    assert len({r["data"] for r in rows}) == 1 and len({r["observation.images.front"][0] for r in rows}) == 1
    assert [r["observation.images.front"][1] > 0 for r in rows] == [False, True, True]


def test_v30_reads_as_lerobot_does():
    _same_as_lerobot(Dataset(V30), _ref(V30))


def test_v21_converted_reads_as_lerobot_does(v21_converted):
    _same_as_lerobot(Dataset(v21_converted), _ref(V21))


def test_v21_read_in_place_names_the_converter():
    with pytest.raises(InputError, match="convert --from lerobot-v2.1"):
        Dataset(V21)


@pytest.mark.parametrize("which", ["v30", "v21"])
def test_info_and_validate(which, v21_converted, capsys):
    root = V30 if which == "v30" else v21_converted
    info = dataset_info(root)
    assert info["robot"] == "so100_follower" and info["episodes"] == 3 and info["cameras"] == ["front"]
    assert info["tasks"] == ["pick up the red cube", "push the block to the left"]
    errors = [p for p in validate(root) if p.severity == "error"]
    assert errors == []
    assert main(["dataset", "info", str(root)]) == 0
    assert main(["dataset", "validate", str(root)]) == 0
    assert "so100_follower" in capsys.readouterr().out
    video = root.parent / f"viz_{which}.mp4"
    assert main(["dataset", "viz", str(root), "--episode", "2", "--out", str(video)]) == 0
    assert len(read_video(video)) == 14  # episode 2: 14 frames (lerobot's own count)


@pytest.mark.parametrize("version", ["v1.6", "v2.2"])
def test_versions_it_cannot_read_are_named(version, tmp_path, capsys):
    root = tmp_path / "old"
    shutil.copytree(V21, root)
    info = json.loads((root / "meta/info.json").read_text())
    (root / "meta/info.json").write_text(json.dumps({**info, "codebase_version": version}))
    assert main(["dataset", "info", str(root)]) == 1
    err = capsys.readouterr().err
    assert f"codebase_version is {version!r}, expected 'v3.0'" in err
    assert ("are not supported" if version == "v1.6" else "does not know") in err
    assert main(["dataset", "convert", "--from", "lerobot-v2.1", str(root), "--out", str(tmp_path / "c")]) == 1
    err = capsys.readouterr().err
    assert f"codebase_version {version!r}, expected one of ['v2.0', 'v2.1']" in err


def test_v21_convert_cli(tmp_path, capsys):
    out = tmp_path / "conv"
    assert main(["dataset", "convert", "--from", "lerobot-v2.1", str(V21), "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["frames"] == 36 and summary["robot"] == "so100_follower"
    assert main(["dataset", "convert", "--from", "lerobot-v2.1", str(V21), "--out", str(out)]) != 0  # exists


def test_v21_convert_names_bad_file_and_field(tmp_path):
    import shutil

    src = tmp_path / "src"
    shutil.copytree(V21, src)
    lines = (src / "meta/episodes.jsonl").read_text().splitlines()
    row = json.loads(lines[1])
    del row["length"]
    (src / "meta/episodes.jsonl").write_text("\n".join([lines[0], json.dumps(row), lines[2]]) + "\n")
    with pytest.raises(InputError, match=r"episodes\.jsonl: line 2: missing field 'length'"):
        convert_lerobot_v21(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


SO100 = {
    "name": "so100_follower",
    "dims": [{"name": n, "kind": "joint"} for n in ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex")]
    + [{"name": "wrist_roll", "kind": "joint"}, {"name": "gripper", "kind": "gripper"}],
}


def test_train_two_steps_on_v30_and_v21_bound_to_a_declared_robot(v21_converted, tmp_path, capsys):
    """lerobot's so100_follower is no SDK embodiment: the run is bound to it by a declaration file (--robot), in
    an order of its own; the checkpoint carries the dims in the data's order (delta actions: all but the gripper)."""
    robot = tmp_path / "so100.json"
    robot.write_text(json.dumps({**SO100, "dims": SO100["dims"][::-1]}))
    for name, data in (("v30", V30), ("v21", v21_converted)):
        run = tmp_path / name
        args = ["train", "--preset", "vla-tiny", "--data", str(data), "--out", str(run), "--batch-size", "4"]
        args += ["--robot", str(robot), "--delta-actions", "--steps", "2", "--save-every", "2"]
        assert main([*args, "--cache-dir", str(tmp_path / "cache")]) == 0
        captured = capsys.readouterr()
        assert "2/2 steps" in captured.out + captured.err
        steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert any(r.get("step") == 2 and np.isfinite(r.get("loss", np.nan)) for r in steps)
        _, meta = read_checkpoint(run)
        assert [d["name"] for d in meta["embodiment"]["dims"]] == [d["name"] for d in SO100["dims"]]
        assert meta["delta_mask"] == [True] * 5 + [False]


def test_binding_a_dataset_to_a_robot_is_explicit_and_must_fit(tmp_path, capsys):
    base = ["train", "--preset", "vla-tiny", "--data", str(V30), "--out", str(tmp_path / "run"), "--steps", "1"]
    assert main(base) == 2  # declares nothing, and so100_follower is no SDK robot: a missing argument
    err = capsys.readouterr().err
    assert "robot_type 'so100_follower' is no robot this SDK ships" in err and "--robot" in err
    assert main([*base, "--robot", "fr3"]) == 1  # 8 FR3 dims, none of them the data's joints
    err = capsys.readouterr().err
    assert "feature 'action' does not fit --robot fr3 ('fr3')" in err and "'shoulder_pan'" in err
    lacking = tmp_path / "five.json"
    lacking.write_text(json.dumps({**SO100, "dims": SO100["dims"][:5]}))
    assert main([*base, "--robot", str(lacking)]) == 1
    assert "'so100_follower' has no ['gripper']" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**SO100, "dims": [{"name": "a", "kind": "wheel"}]}))
    assert main([*base, "--robot", str(bad)]) == 1
    assert f"{bad}: field 'dims[0].kind': expected one of ['joint', 'gripper'], got 'wheel'" in capsys.readouterr().err
