"""`vla train` refuses data whose committed files changed (unless --ignore-checksums), and SIGKILLs at random
moments with --resume each time leave the uninterrupted run's loss curve (the short form of tools/kill_train.py)."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np

from vla_sdk.cli import main

sys.path.insert(0, str(Path(__file__).parents[2] / "tools"))
import kill_train  # noqa: E402


def _args(demos, run, cache, *extra):
    base = ["train", "--preset", "vla-tiny", "--data", str(demos), "--out", str(run), "--batch-size", "8"]
    return [*base, "--cache-dir", str(cache), "--steps", "1", *extra]


def test_changed_dataset_files_are_refused_unless_ignore_checksums(demos, cache, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(demos, data)
    video = sorted(data.glob("videos/**/*.mp4"))[0]
    raw = bytearray(video.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    video.write_bytes(bytes(raw))
    assert main(_args(data, tmp_path / "refused", cache)) != 0
    err = capsys.readouterr().err
    assert "fail their checksums" in err and video.name in err and "--ignore-checksums" in err, err
    assert not (tmp_path / "refused").exists()  # refused before anything is written
    assert main(_args(data, tmp_path / "ignored", cache, "--ignore-checksums")) == 0
    assert "--ignore-checksums: training on" in capsys.readouterr().err


def test_sigkill_at_random_moments_and_resume_give_the_uninterrupted_curve(demos, cache, tmp_path):
    class A:
        steps, save_every, seed = 12, 3, 0

    ref, killed = tmp_path / "ref", tmp_path / "killed"
    assert main(kill_train.train_cmd(demos, ref, cache, A)[3:]) == 0  # the same command, uninterrupted
    cmd = kill_train.train_cmd(demos, killed, cache, A)
    events = kill_train.kill_and_resume(cmd, killed, 2, np.random.default_rng(1), A.save_every)
    assert len(events) == 2
    a, b = kill_train.losses(ref), kill_train.losses(killed)
    assert sorted(b) == sorted(a) == list(range(1, 13))
    assert [b[s] for s in a] == [a[s] for s in a]  # exactly: same batches, same fold_in(seed, step) keys, same state
    for line in (killed / "metrics.jsonl").read_text().splitlines():  # a line a kill cut short was cut off
        json.loads(line)
