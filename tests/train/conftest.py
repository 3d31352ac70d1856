from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def demos(aloha_sample) -> Path:
    """Two scripted aloha2/transfer_cube episodes, 2 cameras at 32 px (vla-tiny's input size): the committed sample
    (a session copy; read-only: copy it before changing it)."""
    return aloha_sample


@pytest.fixture(scope="session")
def fr3_demos(fr3_sample) -> Path:
    """Three scripted fr3/pick_place episodes, cam_external + cam_wrist at 32 px: the committed sample (read-only)."""
    return fr3_sample


@pytest.fixture(scope="session")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("frames")
