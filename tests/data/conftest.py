import shutil
from pathlib import Path

import pytest

from vla_sdk.data.record import RecordConfig, record

TINY = {"cameras": ("cam_high", "cam_left_wrist"), "image_size": (32, 32)}
# The committed sample (demos/README.md): what `record(RecordConfig("aloha2/transfer_cube", out, episodes=2, **TINY))`
# makes, frame for frame; tests/data/test_demos.py checks it.
SAMPLE = Path(__file__).resolve().parents[2] / "demos" / "sample_aloha2_transfer_cube"


@pytest.fixture(scope="session")
def recorded(tmp_path_factory) -> Path:
    """Two scripted aloha2/transfer_cube episodes with two 32x32 cameras: a session copy of the committed sample, so
    no test can change the repository's files (read-only all the same: copy before changing)."""
    root = tmp_path_factory.mktemp("rec") / "tc"
    shutil.copytree(SAMPLE, root)
    return root


@pytest.fixture(scope="session")
def fresh_recording(tmp_path_factory) -> Path:
    """The same two episodes recorded now, by this code: for the tests of what recording writes (read-only)."""
    root = tmp_path_factory.mktemp("fresh") / "tc"
    record(RecordConfig("aloha2/transfer_cube", root, episodes=2, **TINY), progress=False, log=lambda m: None)
    return root


@pytest.fixture
def dataset_copy(recorded, tmp_path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(recorded, dst)
    return dst
