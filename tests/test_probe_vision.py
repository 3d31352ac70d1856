"""tools/probe_vision.py: renders real layouts and tells an encoder that finds an object from one that cannot."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from vla_sdk.model.config import get_preset

_spec = importlib.util.spec_from_file_location("probe_vision", Path(__file__).parents[1] / "tools" / "probe_vision.py")
probe_vision = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(probe_vision)


def _squares(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """32-px grey images, each with a white 6x6 square at a random place, and the square's centre."""
    rng = np.random.default_rng(seed)
    images = np.full((n, 32, 32, 3), 100, np.uint8)
    xy = rng.integers(0, 26, size=(n, 2))
    for img, (x, y) in zip(images, xy, strict=True):
        img[y : y + 6, x : x + 6] = 255
    return images, (xy + 3).astype(np.float32)


def test_probe_finds_a_visible_object_and_not_an_invisible_one():
    images, xy = _squares(200, seed=0)
    config = get_preset("vla-tiny").replace(cameras=("cam",))
    seen = probe_vision.probe(images, xy, config, steps=150, batch=32, lr=3e-3, seed=0)
    blind = probe_vision.probe(images[np.random.default_rng(1).permutation(200)], xy, config, 150, 32, 3e-3, 0)
    assert seen["held_out_layouts"] == 40
    assert seen["normalised_mse"] < 0.3, seen
    assert blind["normalised_mse"] > 0.7, blind  # labels that no pixel predicts: nothing to learn
    assert seen["rms_error_cm"] < blind["rms_error_cm"]


def test_layouts_render_the_task_and_read_its_body():
    images, xy = probe_vision.layouts("aloha2/transfer_cube", "cam_high", "cube", 16, frames=3, seed=0)
    assert images.shape == (3, 16, 16, 3) and images.dtype == np.uint8
    assert xy.shape == (3, 2) and len({tuple(p) for p in xy.round(4)}) == 3  # three different layouts
    with pytest.raises(SystemExit, match="no body named 'ball'"):
        probe_vision.layouts("aloha2/transfer_cube", "cam_high", "ball", 16, frames=1, seed=0)


def test_model_fields_the_probe_sets_are_refused_with_the_flag_to_use():
    with pytest.raises(SystemExit, match="--model image_size: the probe sets it .*--image-size"):
        probe_vision.main(["--image-size", "32", "32", "--model", "image_size=64", "--frames", "10", "--steps", "1"])


def test_train_layouts_sets_the_split_and_reports_training_error():
    images, xy = _squares(60, seed=2)
    config = get_preset("vla-tiny").replace(cameras=("cam",))
    row = probe_vision.probe(images, xy, config, steps=60, batch=16, lr=3e-3, seed=0, n_train=20)
    assert (row["training_layouts"], row["held_out_layouts"]) == (20, 40)
    # fitted on 20 layouts: the training error is what the fit reached, the held-out one what it generalised to
    assert row["training_rms_error_cm"] < row["rms_error_cm"], row
    with pytest.raises(SystemExit, match="--train-layouts must be 1..8 .* got 9"):
        probe_vision.main(["--image-size", "16", "--frames", "10", "--train-layouts", "9", "--steps", "1"])
