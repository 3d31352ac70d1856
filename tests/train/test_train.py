"""`vla train` on the tiny preset: runs, resumes after SIGKILL on the same loss curve, overfits, refuses bad input."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import optax
import pytest

from vla_sdk.cli import main
from vla_sdk.errors import InputError
from vla_sdk.evaluation import replay
from vla_sdk.policy import Policy
from vla_sdk.train.config import TrainConfig, parse_duration
from vla_sdk.train.loop import train


def _losses(run) -> dict[int, float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def _args(demos, run, cache, *extra):
    return [
        "train",
        "--preset",
        "vla-tiny",
        "--data",
        str(demos),
        "--out",
        str(run),
        "--batch-size",
        "8",
        "--cache-dir",
        str(cache),
        *extra,
    ]


def test_train_cli_50_steps_then_policy_loads(demos, cache, tmp_path, capsys):
    run = tmp_path / "r"
    assert main(_args(demos, run, cache, "--steps", "50", "--save-every", "25", "--json")) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["steps"] == 50 and out["stopped"] == "finished" and out["last_checkpoint"] == 50
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["25", "50"]
    assert list((run / "events").iterdir()), "TensorBoard events written"
    assert len(_losses(run)) == 5 and all(np.isfinite(list(_losses(run).values())))
    policy = Policy.load(run)  # meta carries config, stats, embodiment
    assert policy.robot == "aloha2" and policy.meta["format_version"] == 1
    obs = {
        "images": {c: np.zeros((32, 32, 3), np.uint8) for c in policy.cameras},
        "state": np.zeros(14),
        "instruction": "transfer the cube",
    }
    chunk = policy(obs)
    assert chunk.shape == (policy.horizon, 14) and np.all(np.isfinite(chunk))
    with pytest.raises(ValueError, match=r"cameras do not match the policy: expected .*missing \['cam_left_wrist'\]"):
        policy({**obs, "images": {"cam_high": obs["images"]["cam_high"]}})


def test_relative_paths(demos, cache, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the README's `--out runs/tc` style
    assert main(_args(demos, "runs/rel", cache, "--steps", "4", "--save-every", "4")) == 0
    assert Policy.load("runs/rel").robot == "aloha2"
    assert Policy.load("runs/rel/checkpoints/4").robot == "aloha2"


def test_sigkill_and_resume_continue_the_same_loss_curve(demos, cache, tmp_path):
    full, killed = tmp_path / "full", tmp_path / "killed"
    common = ["--steps", "40", "--save-every", "10", "--no-augment"]
    assert main([*_args(demos, full, cache, *common), "--json"]) == 0
    log = _losses(full)
    env = {**os.environ, "MUJOCO_GL": "egl"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vla_sdk.cli", *_args(demos, killed, cache, *common)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not (killed / "checkpoints" / "20").exists():
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = sorted(int(p.name) for p in (killed / "checkpoints").iterdir() if p.name.isdigit())
    assert 20 in done and 40 not in done
    assert main([*_args(demos, killed, cache, *common), "--resume"]) == 0
    resumed = _losses(killed)
    after = [s for s in log if s > max(done)]
    assert after, "the resumed run logged steps after the checkpoint"
    np.testing.assert_allclose([resumed[s] for s in after], [log[s] for s in after], rtol=1e-5)


def test_overfits_one_episode(demos, cache, tmp_path):
    summary = train(
        TrainConfig(
            data=(str(demos),),
            out=str(tmp_path / "o"),
            preset="vla-tiny",
            steps=300,
            batch_size=16,
            lr=2e-3,
            warmup_steps=20,
            augment=False,
            state_noise=0.0,  # overfitting: none of the default regularisation
            state_dropout=0.0,
            delta_actions=False,
            log_every=10,
            save_every=300,
            val_episodes=1,  # of the two: one episode to overfit
            cache_dir=str(cache),
        ),
        progress=False,
        log=lambda m: None,
    )
    losses = [loss for _, loss in summary["losses"]]
    assert min(losses[-3:]) < losses[0] / 10, losses


def test_bad_input(demos, cache, tmp_path):
    with pytest.raises(ValueError, match="leaves no training episodes"):
        train(
            TrainConfig(
                data=(str(demos),), out=str(tmp_path / "a"), preset="vla-tiny", val_episodes=2, cache_dir=str(cache)
            ),
            progress=False,
        )
    with pytest.raises(ValueError, match="--time-budget"):
        parse_duration("two days")
    assert parse_duration("1h30m") == 5400


def test_time_budget_leaves_a_finished_checkpoint(demos, cache, tmp_path, capsys):
    run = tmp_path / "tb"
    t = time.perf_counter()
    assert (
        main(_args(demos, run, cache, "--steps", "100000", "--save-every", "100000", "--time-budget", "60s", "--json"))
        == 0
    )
    elapsed = time.perf_counter() - t
    out = json.loads(capsys.readouterr().out)
    assert out["seconds"] < 60, (out["seconds"], elapsed)  # the run's own clock (the CLI's start-up is not in it)
    assert out["steps"] < 100000 and out["last_checkpoint"] == out["steps"]  # a finished checkpoint, in time
    fitted = json.loads((run / "config.json").read_text())["train"]["steps"]
    assert out["total_steps"] == fitted < 100000  # the schedule was fitted to the budget (timed, not dispatched)
    assert Policy.load(run) is not None


def test_a_budget_fitted_run_goes_on_when_resumed_with_a_new_budget(demos, cache, tmp_path, capsys):
    """One session's --time-budget fits the steps down; resuming with another budget fits them again, up to the
    --steps asked for, so a long run spans sessions instead of stopping at the first session's count."""
    run = tmp_path / "sessions"
    args = _args(demos, run, cache, "--steps", "100000", "--save-every", "100000", "--time-budget", "25s", "--json")
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    saved = json.loads((run / "config.json").read_text())["train"]
    assert saved["steps"] == first["total_steps"] < 100000 and saved["requested_steps"] == 100000
    assert main([*args, "--resume"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["steps"] > first["steps"] and second["last_checkpoint"] == second["steps"]
    assert json.loads((run / "config.json").read_text())["train"]["requested_steps"] == 100000


def test_empty_dataset_is_refused(tmp_path, cache):
    from vla_sdk.data.record import RecordConfig, open_dataset
    from vla_sdk.sim.env import VlaEnv

    cfg = RecordConfig("fr3/pick_place", tmp_path / "empty", episodes=1, cameras=("cam_wrist",), image_size=(32, 32))
    open_dataset(cfg, VlaEnv("fr3/pick_place", cameras=("cam_wrist",), image_size=(32, 32)))
    with pytest.raises(ValueError, match="empty.*has no episodes"):
        train(
            TrainConfig(
                data=(str(tmp_path / "empty"),), out=str(tmp_path / "r"), preset="vla-tiny", cache_dir=str(cache)
            ),
            progress=False,
        )


def test_corrupted_checkpoint_is_named_and_kept(aloha_policy, demos, cache, tmp_path):
    run = tmp_path / "c"
    shutil.copytree(aloha_policy / "run", run)  # a trained run (4 steps), copied: the shared one stays intact
    files = [p for p in (run / "checkpoints" / "4" / "state").rglob("*") if p.is_file() and p.stat().st_size]
    for f in files:  # a disk that ate the checkpoint
        f.write_bytes(b"garbage")
    victim = files[0]
    with pytest.raises(InputError, match=r"checkpoints/4 cannot be read.*left untouched"):
        train(
            TrainConfig(data=(str(demos),), out=str(run), cache_dir=str(cache), steps=20), resume=True, progress=False
        )
    assert victim.read_bytes() == b"garbage"
    with pytest.raises(FileExistsError, match="already holds checkpoints; use --resume"):
        train(TrainConfig(data=(str(demos),), out=str(run), preset="vla-tiny", cache_dir=str(cache)), progress=False)


def test_non_finite_loss_stops_with_last_good_checkpoint(demos, cache, tmp_path, capsys):
    run = tmp_path / "nan"
    rc = main(_args(demos, run, cache, "--steps", "30", "--save-every", "5", "--lr", "1e30", "--json"))
    out = json.loads(capsys.readouterr().out)
    assert rc == 1 and out["stopped"] == "non-finite loss"
    saved = sorted(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit())
    for step in saved:  # whatever was saved is finite
        assert Policy.load(run / "checkpoints" / str(step)) is not None


def test_finetune_base_on_another_robot(aloha_policy, fr3_demos, cache, tmp_path, capsys):
    base = aloha_policy / "run"  # vla-tiny trained on aloha2/transfer_cube
    run = tmp_path / "fr3"
    assert (
        main(
            [
                "train",
                "--base",
                str(base),
                "--data",
                str(fr3_demos),
                "--out",
                str(run),
                "--steps",
                "10",
                "--batch-size",
                "8",
                "--save-every",
                "10",
                "--cache-dir",
                str(cache),
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    kept, reinit = map(int, re.search(r"kept (\d+) weight arrays, re-initialised (\d+)", err).groups())
    assert reinit <= 6 and "encoder" not in err.split("re-initialised")[1]  # only the action slots are new
    assert kept > 50
    policy = Policy.load(run)
    assert policy.robot == "fr3" and policy.cameras == ("cam_external", "cam_wrist")
    assert policy(
        {
            "images": {c: np.zeros((32, 32, 3), np.uint8) for c in policy.cameras},
            "state": np.zeros(8),
            "instruction": "put the cube in the bin",
        }
    ).shape == (policy.horizon, 8)


def test_delta_actions_travel_in_the_checkpoint(demos, cache, tmp_path, capsys):
    from vla_sdk.data.reader import Dataset
    from vla_sdk.data.stats import vector_stats

    run = tmp_path / "delta"
    assert main(_args(demos, run, cache, "--steps", "4", "--save-every", "4", "--delta-actions", "--execute", "3")) == 0
    policy = Policy.load(run)
    assert policy.execute == 3  # the runner's default actions per chunk travels too
    grippers = [i for i, n in enumerate(policy.transform.action_names) if "gripper" in n]
    assert len(grippers) == 2 and policy.meta["delta_mask"] == [i not in grippers for i in range(14)]
    ds = Dataset(demos)
    absolute = vector_stats(
        np.concatenate([ds.episode(k, decode_video=False)["action"] for k in range(ds.num_episodes)])
    )
    delta = policy.meta["stats"]["action"]
    arm = [i for i in range(14) if i not in grippers]
    assert np.max(np.abs(np.subtract(delta["mean"], absolute["mean"])[arm])) > 0.05  # stats of a - s, not of a
    np.testing.assert_allclose(np.array(delta["mean"])[grippers], np.array(absolute["mean"])[grippers], atol=0.05)
    obs = {
        "images": {c: np.zeros((32, 32, 3), np.uint8) for c in policy.cameras},
        "state": np.zeros(14),
        "instruction": "transfer the cube",
    }
    assert np.all(np.isfinite(policy(obs)))
    # fine-tuning from it keeps delta actions unless told otherwise (it would relearn its output layer otherwise)
    again = tmp_path / "again"
    args = _args(demos, again, cache, "--steps", "2", "--save-every", "2", "--base", str(run))
    args += ["--model", "image_size=48"]  # and at a higher resolution: no weight of the patch encoder changes shape
    assert main(args[:1] + args[3:]) == 0  # without "--preset vla-tiny": the base decides the model
    tuned = Policy.load(again)
    assert tuned.meta["delta_mask"] == policy.meta["delta_mask"] and tuned.execute == 3  # as the base
    err = capsys.readouterr().err
    assert "model config changed from the base: image_size (32, 32) -> (48, 48)" in err, err
    assert "re-initialised 0" in err, err
    assert tuned.image_size == (48, 48) and tuned(
        {**obs, "images": {c: np.zeros((48, 48, 3), np.uint8) for c in obs["images"]}}
    ).shape == (tuned.horizon, 14)
    bad = _args(demos, tmp_path / "long", cache, "--steps", "2", "--base", str(run), "--execute", "9")
    assert main(bad[:1] + bad[3:]) == 2
    assert "--execute 9 is longer than the model's chunk (horizon 8)" in capsys.readouterr().err


def test_delta_action_choice_against_the_base_is_logged():
    from vla_sdk.train.config import TrainConfig
    from vla_sdk.train.loop import _resolve_delta_actions

    delta_base, absolute_base = {"delta_mask": [True, False]}, {"delta_mask": None}
    lines = []
    assert _resolve_delta_actions(TrainConfig(data=["d"], out="o"), None, lines.append).delta_actions is True
    assert _resolve_delta_actions(TrainConfig(data=["d"], out="o"), absolute_base, lines.append).delta_actions is False
    assert lines == []
    cfg = TrainConfig(data=["d"], out="o", delta_actions=False)
    assert _resolve_delta_actions(cfg, delta_base, lines.append).delta_actions is False
    assert lines == ["delta actions: the base checkpoint predicts delta actions, this run trains absolute ones"]


def test_time_budget_refits_when_the_machine_slows_down(demos, cache, tmp_path, monkeypatch):
    """The step count fitted early is fitted again at checkpoints: a run that slows down 50x after step 30 still
    finishes its learning-rate schedule within the budget instead of being stopped by the deadline mid-schedule."""
    from vla_sdk.train import loop

    clock = {"t": 0.0, "steps": 0}
    step_fn = loop.Stepper.train_step
    steppers = set()

    def slow_later(self, state, batch):  # the simulated machine: 20 ms a step, then 1 s after step 30
        steppers.add(self)
        clock["steps"] += 1
        clock["t"] += 0.02 if clock["steps"] <= 30 else 1.0
        return step_fn(self, state, batch)

    monkeypatch.setattr(loop, "_clock", lambda: clock["t"])
    monkeypatch.setattr(loop.Stepper, "train_step", slow_later)
    logs = []
    cfg = TrainConfig(
        data=(str(demos),), out=str(tmp_path / "r"), preset="vla-tiny", batch_size=8, steps=100_000,
        save_every=25, warmup_steps=10, time_budget=100.0, cache_dir=str(cache),
    )  # fmt: skip
    out = train(cfg, progress=False, log=logs.append)
    assert any("4500 steps fit (20 ms" in line for line in logs), logs  # 6 + (100 s - 10 s reserve) / 20 ms
    assert sum("steps fit now" in line for line in logs) == 2, logs  # at step 50 (a mixed pace), at 75 (1 s)
    assert out["stopped"] == "finished" and out["steps"] == out["total_steps"] == clock["steps"] == 119
    assert clock["t"] <= 100.0 and out["last_checkpoint"] == 119
    assert json.loads((tmp_path / "r" / "config.json").read_text())["train"]["steps"] == 119
    rows = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-2]["lr"] < 0.06 * cfg.lr  # the cosine schedule decayed (its end: 5 % of the peak)
    # the refits (100000 -> 4500 -> ... -> 119 steps) changed an input of the step, not its program
    (stepper,) = steppers
    assert stepper._train._cache_size() == 1, "a --time-budget refit compiled the train step again"
    # after the last refit (at step 75): the learning rate of the schedule over 119 steps, as optax computes it
    schedule = optax.warmup_cosine_decay_schedule(0.0, cfg.lr, 10, 119, end_value=cfg.lr * cfg.final_lr_fraction)
    logged = [(r["step"], r["lr"]) for r in rows if "lr" in r and r["step"] > 75]
    want = jax.jit(jax.vmap(schedule))(np.array([s - 1 for s, _ in logged], np.int32))  # step s ran at count s - 1
    assert len(logged) == 5 and [lr for _, lr in logged] == [float(x) for x in want]


def test_ctrl_c_saves_the_step_it_stopped_at_and_resumes_on_the_same_curve(demos, cache, tmp_path):
    """SIGINT (Ctrl-C) between checkpoints: the run saves the step it reached (not only the last periodic
    checkpoint), exits with 130 and says how to go on; --resume continues the uninterrupted run's loss curve."""
    full, stopped = tmp_path / "full", tmp_path / "stopped"
    # <= 200 steps (the default warmup): the XLA program of the other --no-augment runs, compiled once per session
    common = ["--steps", "200", "--save-every", "199", "--no-augment"]
    assert main([*_args(demos, full, cache, *common), "--json"]) == 0
    log = _losses(full)
    proc = subprocess.Popen(
        [sys.executable, "-m", "vla_sdk.cli", *_args(demos, stopped, cache, *common)],
        env={**os.environ, "MUJOCO_GL": "egl"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    metrics, deadline = stopped / "metrics.jsonl", time.time() + 300
    while (
        time.time() < deadline and proc.poll() is None and (not metrics.exists() or metrics.read_text().count("\n") < 5)
    ):
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    saved = sorted(int(p.name) for p in (stopped / "checkpoints").iterdir() if p.name.isdigit())
    assert len(saved) == 1 and 30 <= saved[0] < 199, saved  # the step it reached, before any periodic checkpoint
    assert f"interrupted at step {saved[0]}: checkpoint saved" in err and "--resume" in err
    assert "Traceback" not in err
    assert main([*_args(demos, stopped, cache, *common), "--resume"]) == 0
    resumed = _losses(stopped)
    after = [s for s in log if s > saved[0]]
    np.testing.assert_allclose([resumed[s] for s in after], [log[s] for s in after], rtol=1e-5)


def test_env_state_weight_trains_a_readout_of_the_object_positions(demos, cache, tmp_path):
    """--env-state-weight: the recorded cube position becomes a second target (its error falls while training),
    the checkpoint carries the readout's width and the statistics; a dataset without the feature is refused."""
    from vla_sdk.data.layout import ENV_STATE, INFO_PATH

    run = tmp_path / "env"
    args = ("--steps", "60", "--lr", "2e-3", "--env-state-weight", "1", "--save-every", "60", "--model", "head=l1")
    args += ("--batch-size", "16")  # on the 2-episode sample, batches of 8 give a per-step error too noisy to compare
    assert main(_args(demos, run, cache, *args)) == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    mse = [r["env_state_mse"] for r in rows if "env_state_mse" in r]
    assert len(mse) == 6 and mse[-1] < 0.5 * mse[0], mse
    assert all(r["loss"] > r["l1"] for r in rows if "l1" in r)  # the action loss plus the weighted readout error
    policy = Policy.load(run)
    assert policy.meta["model_config"]["env_state_dim"] == 3 and ENV_STATE in policy.meta["stats"]
    mae = replay(policy, demos, episodes=[0], stride=40)["env_state_mae"]  # where the cameras put the cube, m
    assert list(mae) == ["cube.x", "cube.y", "cube.z"] and all(0 <= v < 1 for v in mae.values())
    old = tmp_path / "old"
    shutil.copytree(demos, old)
    info = json.loads((old / INFO_PATH).read_text())
    del info["features"][ENV_STATE]
    (old / INFO_PATH).write_text(json.dumps(info))
    cfg = TrainConfig(
        data=(str(old),), out=str(tmp_path / "o"), preset="vla-tiny", env_state_weight=1.0, cache_dir=str(cache)
    )
    with pytest.raises(ValueError, match=f"--env-state-weight: {old} has no 'observation.environment_state'"):
        train(cfg, progress=False)
    with pytest.raises(ValueError, match="--env-state-weight must be in"):
        cfg.replace(env_state_weight=-1.0)


def test_default_delta_actions_on_an_embodiment_without_dims_says_how_to_go_on(demos, cache, tmp_path):
    """An embodiment recorded without 'dims' cannot say which dims are grippers: the default delta actions are
    refused with the two ways out (bind the robot, or absolute actions), not with a flag the user never gave."""
    from vla_sdk.data.layout import INFO_PATH

    old = tmp_path / "nodims"
    shutil.copytree(demos, old)
    info = json.loads((old / INFO_PATH).read_text())
    del info["vla"]["embodiment"]["dims"]
    (old / INFO_PATH).write_text(json.dumps(info))
    cfg = TrainConfig(data=(str(old),), out=str(tmp_path / "o"), preset="vla-tiny", cache_dir=str(cache))
    with pytest.raises(
        ValueError, match=rf"on by default\): {old} declares an embodiment without 'dims'.*--robot.*--no-delta"
    ):
        train(cfg, progress=False)
    assert not (tmp_path / "o" / "checkpoints").exists()
