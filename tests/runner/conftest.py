from pathlib import Path

import pytest

from vla_sdk.data.record import RecordConfig, record
from vla_sdk.train.config import TrainConfig
from vla_sdk.train.loop import train


def _policy(tmp_path_factory, task, cameras, name, execute=None) -> Path:
    root = tmp_path_factory.mktemp(name)
    record(
        RecordConfig(task, root / "demos", episodes=1, cameras=cameras, image_size=(32, 32)),
        progress=False,
        log=lambda m: None,
    )
    train(
        TrainConfig(
            data=(str(root / "demos"),),
            out=str(root / "run"),
            preset="vla-tiny",
            steps=4,
            batch_size=4,
            save_every=4,
            cache_dir=str(root / "cache"),
            execute=execute,
        ),
        progress=False,
        log=lambda m: None,
    )
    return root


@pytest.fixture(scope="session")
def aloha_policy(tmp_path_factory) -> Path:
    """A (barely) trained vla-tiny run on aloha2/transfer_cube, with its one-episode dataset in demos/."""
    return _policy(tmp_path_factory, "aloha2/transfer_cube", ("cam_high", "cam_left_wrist"), "aloha_policy")


@pytest.fixture(scope="session")
def fr3_policy(tmp_path_factory) -> Path:
    """A vla-tiny fr3/pick_place run (chunk 8) trained with execute=3: runners use 3 actions per chunk."""
    return _policy(tmp_path_factory, "fr3/pick_place", ("cam_external", "cam_wrist"), "fr3_policy", execute=3)
