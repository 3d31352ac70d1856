"""`vla train --eval-task`: closed-loop sim evaluation during training keeps the best checkpoint by success rate."""

import json
from pathlib import Path

import pytest

from vla_sdk.cli import main
from vla_sdk.errors import UsageError
from vla_sdk.policy import Policy
from vla_sdk.train.config import TrainConfig
from vla_sdk.train.loop import _score, train


def _records(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _train(demos, run, cache, *extra):
    args = ["train", "--preset", "vla-tiny", "--data", str(demos), "--out", str(run), "--batch-size", "8"]
    return main([*args, "--cache-dir", str(cache), "--no-augment", *extra])


def _steps(folder) -> list[int]:
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())


def test_eval_every_evaluates_in_sim_and_keeps_the_best_by_success_rate(fr3_demos, cache, tmp_path, capsys):
    """The README's example (--eval-task fr3/pick_place --eval-every N) runs real episodes in MuJoCo at each
    evaluation step; RUN/best holds the checkpoint with the highest success rate (the latest of equals)."""
    run = tmp_path / "run"
    extra = ["--steps", "4", "--save-every", "100", "--eval-task", "fr3/pick_place", "--eval-every", "2"]
    assert _train(fr3_demos, run, cache, *extra, "--eval-episodes", "1", "--eval-max-steps", "3") == 0
    err = capsys.readouterr().err
    assert "step 2: fr3/pick_place success" in err and "step 4: fr3/pick_place success" in err, err
    evals = {r["step"]: r["success_rate"] for r in _records(run) if "success_rate" in r}
    assert sorted(evals) == [2, 4]
    assert _steps(run / "checkpoints") == [2, 4]  # each evaluation is of a saved checkpoint
    best = max(evals.values())
    assert _steps(run / "best") == [max(s for s, v in evals.items() if v == best)]
    kept = Policy.load(run / "best" / str(_steps(run / "best")[0]))
    assert kept.meta["metrics"]["success_rate"] == best


def test_without_eval_every_every_checkpoint_is_evaluated_and_the_best_rate_kept(fr3_demos, cache, tmp_path):
    """--eval-task alone evaluates each checkpoint; best/ keeps the highest success rate even when a later one is
    worse (the tiny model scores 0 in sim, so the evaluator here is a table: checkpoint step -> rate)."""
    rates = {1: 0.5, 2: 1.0, 3: 0.0}
    seen = []

    def sim_eval(checkpoint, task, episodes, max_steps):
        step = int(Path(checkpoint).name)
        seen.append((step, task, episodes, max_steps))
        assert Policy.load(checkpoint).meta["train_config"]["steps"] == 3  # a saved, loadable checkpoint
        return {"successes": int(rates[step] * episodes), "episodes": episodes, "success_rate": rates[step]}

    run = tmp_path / "run"
    cfg = TrainConfig(
        data=(str(fr3_demos),), out=str(run), preset="vla-tiny", steps=3, batch_size=8, save_every=1,
        eval_task="fr3/pick_place", eval_episodes=2, eval_max_steps=5, augment=False, cache_dir=str(cache),
    )  # fmt: skip
    train(cfg, progress=False, log=lambda m: None, sim_eval=sim_eval)
    assert seen == [(1, "fr3/pick_place", 2, 5), (2, "fr3/pick_place", 2, 5), (3, "fr3/pick_place", 2, 5)]
    assert _steps(run / "best") == [2]
    assert Policy.load(run / "best" / "2").meta["metrics"]["success_rate"] == 1.0


def test_best_is_chosen_by_success_rate_not_validation_loss():
    # an evaluated run ranks by success rate only: checkpoints saved between evaluations are not candidates
    assert _score({"val_loss": 0.1, "success_rate": 0.3}, "fr3/pick_place") == 0.3
    assert _score({"val_loss": 0.1}, "fr3/pick_place") is None
    assert _score({"val_loss": 0.1}, None) == -0.1
    assert _score({"val_loss": None}, None) is None


def test_bad_eval_options(fr3_demos, tmp_path, capsys):
    with pytest.raises(UsageError, match="--eval-max-steps"):
        TrainConfig(data=(str(fr3_demos),), out=str(tmp_path), eval_task="fr3/pick_place", eval_max_steps=0)
    with pytest.raises(UsageError, match="--eval-every needs --eval-task"):
        TrainConfig(data=(str(fr3_demos),), out=str(tmp_path), eval_every=5)
    # a wrong name is refused before any training
    assert _train(fr3_demos, tmp_path / "r", tmp_path / "c", "--steps", "2", "--eval-task", "fr3/pick_plac") != 0
    assert "Did you mean 'fr3/pick_place'" in capsys.readouterr().err
    assert not (tmp_path / "r" / "checkpoints").exists()
    assert _train(fr3_demos, tmp_path / "r", tmp_path / "c", "--steps", "2", "--eval-task", "aloha2/insertion") != 0
    assert "is a 'aloha2' task; the data is of 'fr3'" in capsys.readouterr().err
