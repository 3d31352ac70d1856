import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

# One persistent XLA cache for the whole test session (its subprocesses too): the many tiny training runs and
# policies compile the same programs. A fresh folder each session, so nothing stale is ever loaded.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="vla-test-xla-")
    atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

DEMOS = Path(__file__).resolve().parents[1] / "demos"


def sample_copy(tmp_path_factory, name: str) -> Path:
    """A session copy of the committed sample ``demos/<name>`` (demos/README.md: what `vla record` writes, scripted
    episodes with seeds 0, 1, ... and two 32x32 cameras): nothing to record, and no test can change the repository's
    files."""
    root = tmp_path_factory.mktemp(name) / name
    shutil.copytree(DEMOS / name, root)
    return root


@pytest.fixture(scope="session")
def aloha_sample(tmp_path_factory) -> Path:
    """demos/sample_aloha2_transfer_cube: 2 aloha2/transfer_cube episodes, cam_high + cam_left_wrist (read-only)."""
    return sample_copy(tmp_path_factory, "sample_aloha2_transfer_cube")


@pytest.fixture(scope="session")
def fr3_sample(tmp_path_factory) -> Path:
    """demos/sample_fr3_pick_place: 3 fr3/pick_place episodes, cam_external + cam_wrist (read-only)."""
    return sample_copy(tmp_path_factory, "sample_fr3_pick_place")


def _policy(tmp_path_factory, sample: Path, name: str, execute=None) -> Path:
    """ROOT/demos (a copy of ``sample``) and ROOT/run: vla-tiny trained 4 steps on it. Batch 8 with augmentation, as
    `vla train`'s tests and the README's quickstart train: the same XLA program, compiled once per session."""
    from vla_sdk.train.config import TrainConfig
    from vla_sdk.train.loop import train

    root = tmp_path_factory.mktemp(name)
    shutil.copytree(sample, root / "demos")
    train(
        TrainConfig(
            data=(str(root / "demos"),),
            out=str(root / "run"),
            preset="vla-tiny",
            steps=4,
            batch_size=8,
            save_every=4,
            cache_dir=str(root / "cache"),
            execute=execute,
        ),
        progress=False,
        log=lambda m: None,
    )
    return root


@pytest.fixture(scope="session")
def aloha_policy(tmp_path_factory, aloha_sample) -> Path:
    """A (barely) trained vla-tiny run on aloha2/transfer_cube (ROOT/run), with its 2-episode dataset in ROOT/demos.
    Shared by every test that only needs "a trained policy" (read-only: copy the run before changing it)."""
    return _policy(tmp_path_factory, aloha_sample, "aloha_policy")


@pytest.fixture(scope="session")
def fr3_policy(tmp_path_factory, fr3_sample) -> Path:
    """A vla-tiny fr3/pick_place run (chunk 8) trained with execute=3: runners use 3 actions per chunk."""
    return _policy(tmp_path_factory, fr3_sample, "fr3_policy", execute=3)
