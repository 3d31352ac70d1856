"""tools/build_base.py end to end at toy size (vla-tiny, one demonstration per task, two steps): it records, trains
on both robots in one run, evaluates every task and publishes a slim base with a card that `--base vla-base`,
`Policy.load("vla-base")` and the card check read; a card that does not describe the weights is refused."""

import importlib.util
import json
from pathlib import Path

import pytest

from vla_sdk import bases
from vla_sdk.checkpoint import read_checkpoint
from vla_sdk.errors import InputError, NotFound
from vla_sdk.policy import Policy

_spec = importlib.util.spec_from_file_location("build_base", Path(__file__).parents[1] / "tools" / "build_base.py")
build_base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_base)


def test_build_base_records_trains_evaluates_and_publishes(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bases, "HERE", tmp_path / "bases")
    with pytest.raises(NotFound, match="'vla-base' is not in this build.*tools/build_base.py"):
        read_checkpoint("vla-base")
    tasks = ["fr3/pick_place", "aloha2/transfer_cube"]
    out = build_base.main(
        ["--tasks", *tasks, "--episodes", "1", "--image-size", "32", "32", "--preset", "vla-tiny", "--steps", "2",
         "--batch-size", "8", "--save-every", "2", "--eval-episodes", "1", "--eval-max-steps", "3", "--workers", "1",
         "--data", str(tmp_path / "data"), "--run", str(tmp_path / "run"), "--dest", str(tmp_path / "bases/vla-base"),
         "--cache-dir", str(tmp_path / "cache")]
    )  # fmt: skip
    card = json.loads((tmp_path / "bases/vla-base/card.json").read_text())
    assert card == out["card"] and card["robots"] == ["aloha2", "fr3"] and card["training"]["steps"] == 2
    assert set(card["results"]) == set(tasks) and all(r["episodes"] == 1 for r in card["results"].values())
    assert card["data"]["fr3/pick_place"]["cameras"] == ["cam_external"] and card["finetune"]["steps"] > 0
    assert "| aloha2/transfer_cube | 1 |" in capsys.readouterr().out  # the README's table
    # no optimizer state in what ships: the run's checkpoint holds params, EMA and two Adam moments besides
    full = max((tmp_path / "run/s1/checkpoints").iterdir(), key=lambda p: int(p.name))
    full_bytes = sum(p.stat().st_size for p in full.rglob("*") if p.is_file())
    assert card["size_bytes"] < 0.5 * full_bytes, (card["size_bytes"], full_bytes)

    params, meta = read_checkpoint("vla-base")
    assert meta["sha256"]["ema"] == card["sha256"]
    fr3 = Policy.load("vla-base", robot="fr3")
    assert fr3.cameras == ("cam_external",) and fr3.robot == "fr3"

    # the card must describe these weights
    path = tmp_path / "bases/vla-base/card.json"
    path.write_text(json.dumps({**card, "sha256": "0" * 64}))
    with pytest.raises(InputError, match="its card .* describes weights with sha256 000000000000"):
        read_checkpoint("vla-base")

    # `vla train` with neither --preset nor --base fine-tunes the shipped base, with its card's settings for every
    # flag not given (here --steps is given and wins)
    path.write_text(json.dumps(card))
    from vla_sdk.cli import main

    run = tmp_path / "ft"
    data = tmp_path / "data" / "fr3_pick_place"
    argv = ["train", "--data", str(data), "--out", str(run), "--ste", "1", "--cache-dir", str(tmp_path / "cache")]
    assert main(argv) == 0
    assert "fine-tuning the shipped base vla-base" in capsys.readouterr().err
    saved = json.loads((run / "config.json").read_text())["train"]
    assert saved["base"] == "vla-base" and saved["preset"] is None and saved["steps"] == 1  # --ste: a prefix
    assert {k: saved[k] for k in card["finetune"] if k != "steps"} == {
        k: v for k, v in card["finetune"].items() if k != "steps"
    }
    assert Policy.load(run).robot == "fr3"


def test_a_build_goes_on_from_the_saved_base_on_another_machine(tmp_path, monkeypatch):
    """A session that runs out of budget saves the base with a card marked incomplete (which loads by name, but
    `vla train` does not default to it); a later session on a machine with an empty run folder goes on from it, for
    the steps left, and its card counts the earlier machine's steps and sessions."""
    monkeypatch.setattr(bases, "HERE", tmp_path / "bases")
    dest = tmp_path / "bases/vla-base"
    common = ["--tasks", "fr3/pick_place", "--episodes", "1", "--image-size", "32", "32", "--preset", "vla-tiny",
              "--batch-size", "8", "--save-every", "100", "--eval-episodes", "1", "--eval-max-steps", "3",
              "--workers", "1", "--data", str(tmp_path / "data"), "--dest", str(dest),
              "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    first = build_base.main([*common, "--run", str(tmp_path / "a"), "--steps", "50", "--time-budget", "1s"])
    card = json.loads((dest / "card.json").read_text())
    done = card["training"]["steps"]
    assert card == first["card"] and card["complete"] is False and card["results"] == {} and 0 < done < 50
    assert "results" not in first and bases.is_shipped("vla-base") and not bases.is_released("vla-base")
    assert read_checkpoint("vla-base")[1]["sha256"]["ema"] == card["sha256"]

    second = build_base.main([*common, "--run", str(tmp_path / "b"), "--steps", str(done + 2)])
    cfg = json.loads((tmp_path / "b/s1/config.json").read_text())["train"]
    assert cfg["base"] == str(dest / "checkpoint") and cfg["steps"] == 2  # the steps left, from the saved base
    card = json.loads((dest / "card.json").read_text())
    assert card == second["card"] and card["complete"] is True and set(card["results"]) == {"fr3/pick_place"}
    assert card["training"]["steps"] == done + 2 and card["training"]["sessions"] == 2 and bases.is_released("vla-base")
    assert build_base.main([*common, "--run", str(tmp_path / "b"), "--steps", str(done + 2), "--stage", "train"]) == {
        "train": None
    }  # nothing left to train


def test_episodes_per_robot_defaults_overrides_and_errors():
    def error(msg):
        raise SystemExit(msg)

    assert build_base.episodes_per_robot([], error) == build_base.EPISODES
    assert build_base.episodes_per_robot(["3"], error) == {r: 3 for r in build_base.EPISODES}
    assert build_base.episodes_per_robot(["7", "fr3=2"], error) == {"aloha2": 7, "fr3": 2}
    with pytest.raises(SystemExit, match="unknown robot 'ur5'; robots: aloha2, fr3"):
        build_base.episodes_per_robot(["ur5=3"], error)
    with pytest.raises(SystemExit, match="expected a count >= 1 .* got 'x'"):
        build_base.episodes_per_robot(["fr3=x"], error)
