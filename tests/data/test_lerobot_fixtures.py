"""Datasets written by the real lerobot package read as lerobot reads them (issue 26).

The fixtures under fixtures/ were made by fixtures/make_lerobot_fixtures.py in a throwaway environment with lerobot
installed; each .npz beside a dataset holds what lerobot itself returns per frame, so these tests need no lerobot.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from vla_sdk.cli import main
from vla_sdk.data.info import dataset_info
from vla_sdk.data.lerobot_v21 import convert_lerobot_v21
from vla_sdk.data.reader import Dataset
from vla_sdk.data.validate import validate
from vla_sdk.errors import InputError

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


def test_train_two_steps_on_v30(tmp_path, capsys):
    """lerobot's so100_follower is no SDK embodiment: the trainer takes the robot from info.json's robot_type."""
    run = tmp_path / "run"
    args = ["train", "--preset", "vla-tiny", "--data", str(V30), "--out", str(run), "--batch-size", "4"]
    assert main([*args, "--cache-dir", str(tmp_path / "cache"), "--steps", "2", "--save-every", "2"]) == 0
    captured = capsys.readouterr()
    assert "2/2 steps" in captured.out + captured.err
    assert (run / "checkpoints/2").is_dir()
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("step") == 2 and np.isfinite(r.get("loss", np.nan)) for r in steps)
