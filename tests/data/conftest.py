import shutil
from pathlib import Path

import pytest

from vla_sdk.data.record import RecordConfig, record

TINY = {"cameras": ("cam_high", "cam_left_wrist"), "image_size": (32, 32)}


@pytest.fixture(scope="session")
def recorded(tmp_path_factory) -> Path:
    """Two scripted aloha2/transfer_cube episodes with two 32x32 cameras (read-only: copy before changing)."""
    root = tmp_path_factory.mktemp("rec") / "tc"
    record(RecordConfig("aloha2/transfer_cube", root, episodes=2, **TINY), progress=False, log=lambda m: None)
    return root


@pytest.fixture
def dataset_copy(recorded, tmp_path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(recorded, dst)
    return dst
