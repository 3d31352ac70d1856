"""Non-square camera images (height != width, as real cameras give) through record -> train -> eval -> export."""

from __future__ import annotations

import json

import numpy as np

from vla_sdk.cli import main
from vla_sdk.export.runtime import load_artifact
from vla_sdk.policy import Policy


def test_a_24x32_policy_records_trains_evaluates_and_exports(tmp_path, capsys):
    data, run, art = tmp_path / "demos", tmp_path / "run", tmp_path / "p.vla"
    rec = ["record", "fr3/pick_place", "--episodes", "2", "--out", str(data), "--image-size", "24", "32"]
    assert main(rec) == 0
    info = json.loads((data / "meta" / "info.json").read_text())
    assert info["features"]["observation.images.cam_external"]["shape"][:2] == [24, 32]

    train = ["train", "--data", str(data), "--preset", "vla-tiny", "--model", "image_size=[24, 32]"]
    train += ["--model", "stem_patch=2", "--model", "patch_size=8", "--steps", "3", "--batch-size", "4"]
    assert main([*train, "--out", str(run), "--cache-dir", str(tmp_path / "cache")]) == 0
    frames = list((tmp_path / "cache").rglob("cam_external.npy"))
    assert [np.load(f, mmap_mode="r").shape[1:] for f in frames] == [(24, 32, 3)]  # native size, not squashed

    policy = Policy.load(run)
    assert policy.image_size == (24, 32) and policy.config.tokens_per_camera == 3 * 4
    capsys.readouterr()
    assert main(["eval", str(run), "--task", "fr3/pick_place", "--episodes", "1", "--max-steps", "6", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == 1

    assert main(["export", str(run), "--quantize", "int8", "--out", str(art)]) == 0
    artifact = load_artifact(art)
    assert artifact.image_size == (24, 32)
    rng = np.random.default_rng(0)
    images = {c: rng.integers(0, 256, (48, 64, 3), np.uint8) for c in policy.cameras}  # same aspect, resized
    state = np.zeros(policy.transform.robot_dim, np.float32)
    obs = {"images": images, "state": state, "instruction": "pick up the cube"}
    a, b = policy(obs), artifact(obs)
    assert a.shape == b.shape == (policy.horizon, policy.transform.robot_dim)
    np.testing.assert_allclose(a, b, atol=0.05)  # int8 weights, same inputs: close to the float checkpoint
