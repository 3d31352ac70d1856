from pathlib import Path

import pytest

from vla_sdk.data.record import RecordConfig, record


@pytest.fixture(scope="session")
def demos(tmp_path_factory) -> Path:
    """Three scripted aloha2/transfer_cube episodes, 2 cameras at 32 px (vla-tiny's input size)."""
    root = tmp_path_factory.mktemp("demos") / "tc"
    record(
        RecordConfig(
            "aloha2/transfer_cube", root, episodes=3, cameras=("cam_high", "cam_left_wrist"), image_size=(32, 32)
        ),
        progress=False,
        log=lambda m: None,
    )
    return root


@pytest.fixture(scope="session")
def fr3_demos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demos") / "fr3"
    record(
        RecordConfig("fr3/pick_place", root, episodes=2, cameras=("cam_external", "cam_wrist"), image_size=(32, 32)),
        progress=False,
        log=lambda m: None,
    )
    return root


@pytest.fixture(scope="session")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("frames")
