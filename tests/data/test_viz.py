"""`vla dataset viz`: cameras tiled above state/action curves, with a cursor at the current frame."""

import numpy as np
import pytest

from vla_sdk.data import layout as L
from vla_sdk.data.viz import draw_polyline, render_episode_video
from vla_sdk.data.writer import DatasetWriter
from vla_sdk.errors import UsageError
from vla_sdk.video import read_video

CAMS, SIZE, LENGTH = ["cam_high", "cam_left_wrist"], (16, 24), 30


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Two short episodes with smooth, distinct camera images and sinusoidal 14-D states and actions."""
    root = tmp_path_factory.mktemp("viz") / "ds"
    names = [f"d{i}" for i in range(14)]
    writer = DatasetWriter.create(root, L.make_features(names, names, CAMS, SIZE, 50), 50, "aloha2", {})
    t = np.arange(LENGTH)[:, None] / LENGTH
    y, x = np.mgrid[0 : SIZE[0], 0 : SIZE[1]]
    for k in range(2):
        ep = writer.begin_episode("viz test", seed=k)
        state = np.sin(2 * np.pi * t + np.arange(14)) * (1 + np.arange(14) / 14)
        for i in range(LENGTH):
            images = {
                c: np.stack([x * 10 + i, y * 12, 60 + 0 * x + 100 * j], -1).astype(np.uint8) for j, c in enumerate(CAMS)
            }
            ep.add(images, state[i], state[i] + 0.1)
        ep.commit(success=True)
    return root


def test_viz_frames_layout_and_cursor(dataset, tmp_path):
    out = tmp_path / "ep1.mp4"
    r = render_episode_video(dataset, 1, out, plot_height=160)
    scale = 384 // (2 * SIZE[1])  # two cameras side by side, scaled up to >= 384 px wide
    h, w = SIZE[0] * scale + 160, 2 * SIZE[1] * scale
    assert r == {"out": str(out), "episode": 1, "frames": LENGTH, "fps": 50, "size": [h, w], "cameras": CAMS}
    video = read_video(out)
    assert video.shape == (LENGTH, h, w, 3)
    cams, plot = video[:, : SIZE[0] * scale].astype(int), video[:, SIZE[0] * scale :].astype(int)
    # the top is the episode's images, tiled and scaled (lossy video: compare means)
    y, x = np.mgrid[0 : SIZE[0], 0 : SIZE[1]]
    want = np.repeat(np.repeat(np.stack([x * 10 + 5, y * 12, 60 + 0 * x], -1), scale, 0), scale, 1)
    assert np.abs(cams[5, :, : SIZE[1] * scale] - want).mean() < 6
    # the plot has the curves (many coloured pixels) and a cursor that moves left to right
    assert (plot[0].max(axis=2) > 80).mean() > 0.02
    assert np.abs(plot[0] - plot[-1]).mean() > 1.0
    white = plot.min(axis=3) > 200  # [T, h, w]: the cursor is the only white
    counts = white.sum(axis=1)  # [T, w]
    cursor_x = counts.argmax(axis=1)
    assert (counts.max(axis=1) > 0.5 * 160).all()  # a (mostly) full-height vertical line in every frame
    assert np.all(np.diff(cursor_x) >= 0) and cursor_x[0] < 10 and cursor_x[-1] > w - 10, cursor_x


def test_viz_episode_out_of_range_names_valid_range(dataset, tmp_path):
    with pytest.raises(UsageError, match=r"--episode 2 is out of range.*valid: 0\.\.1"):
        render_episode_video(dataset, 2, tmp_path / "x.mp4")
    with pytest.raises(UsageError, match=r"valid: 0\.\.1"):
        render_episode_video(dataset, -1, tmp_path / "x.mp4")
    with pytest.raises(ValueError, match="no camera"):
        render_episode_video(dataset, 0, tmp_path / "x.mp4", cameras=["cam_low"])
    assert not (tmp_path / "x.mp4").exists()


def test_draw_polyline_is_connected():
    img = np.zeros((10, 20, 3), np.uint8)
    draw_polyline(img, np.array([0.0, 19.0, 19.0]), np.array([0.0, 9.0, 0.0]), (255, 0, 0))
    on = img[..., 0] > 0
    assert on[0, 0] and on[9, 19] and on[0, 19] and on[:, 19].all()
    assert (on.any(axis=0)).all()  # the diagonal leaves no gaps between columns
    draw_polyline(img, np.array([-50.0, 50.0]), np.array([5.0, 5.0]), (0, 255, 0))  # clipped, no error
    assert (img[5, :, 1] == 255).all()


def test_viz_of_a_damaged_video_names_the_file(dataset, tmp_path):
    import shutil

    from vla_sdk.errors import InputError

    root = tmp_path / "ds"
    shutil.copytree(dataset, root)
    mp4 = root / L.video_path("observation.images.cam_high", 1)
    mp4.write_bytes(mp4.read_bytes()[:500])
    with pytest.raises(InputError, match=r"cam_high/chunk-000/file-001.mp4: unreadable video"):
        render_episode_video(root, 1, tmp_path / "x.mp4")
    assert not (tmp_path / "x.mp4").exists()
