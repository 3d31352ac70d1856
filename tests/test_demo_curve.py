"""`vla train --demos-curve`: nested subsets of one dataset, each trained and evaluated, the curve written as JSON,
a table and a plot; a second call reads finished counts back instead of training them again."""

import json

from vla_sdk.cli import main


def _args(fr3_sample, out, cache, *counts):
    return [
        "train", "--data", str(fr3_sample), "--out", str(out), "--preset", "vla-tiny", "--steps", "2",
        "--batch-size", "8", "--save-every", "2", "--cache-dir", str(cache), "--eval-task", "fr3/pick_place",
        "--curve-episodes", "2", "--eval-max-steps", "4", "--demos-curve", *map(str, counts),
    ]  # fmt: skip


def test_demos_curve_trains_nested_subsets_and_writes_the_curve(fr3_sample, tmp_path, capsys):
    out = tmp_path / "curve"
    assert main(_args(fr3_sample, out, tmp_path / "cache", 2, 1)) == 0
    table = capsys.readouterr().out
    curve = json.loads((out / "demos_curve.json").read_text())
    assert [r["demonstrations"] for r in curve["rows"]] == [1, 2] and curve["task"] == "fr3/pick_place"
    for r in curve["rows"]:
        cfg = json.loads((out / f"demos_{r['demonstrations']}" / "config.json").read_text())["train"]
        assert cfg["max_episodes"] == r["demonstrations"] and cfg["eval_task"] is None
        assert r["episodes"] == 2 and r["steps"] == 2 and 0 <= r["ci95"][0] <= r["success_rate"] <= r["ci95"][1]
    assert table.count("\n| ") == 3 and "trained from scratch (vla-tiny)" in table  # header + 2 rows
    assert (out / "demos_curve.md").read_text() == table
    png = (out / "demos_curve.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000

    # again: the finished counts are read back, not trained or evaluated again
    ckpt = out / "demos_1" / "checkpoints"
    before = sorted(p.stat().st_mtime_ns for p in ckpt.rglob("*") if p.is_file())
    assert main(_args(fr3_sample, out, tmp_path / "cache", 1, 2)) == 0
    assert capsys.readouterr().out == table
    assert sorted(p.stat().st_mtime_ns for p in ckpt.rglob("*") if p.is_file()) == before


def test_demos_curve_refuses_more_demonstrations_than_the_data_has(fr3_sample, tmp_path, capsys):
    assert main(_args(fr3_sample, tmp_path / "c", tmp_path / "cache", 9)) == 2
    err = capsys.readouterr().err
    assert "--max-episodes 9:" in err and "has only 3 training episodes" in err
    assert main(["train", "--data", str(fr3_sample), "--out", str(tmp_path / "d"), "--demos-curve", "1"]) == 2
    assert "--demos-curve needs --eval-task" in capsys.readouterr().err
