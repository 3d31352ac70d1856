import numpy as np
import pytest

from vla_sdk.video import VideoWriter, read_video


def test_roundtrip_pads_odd_sizes(tmp_path):
    frames = [np.full((31, 45, 3), 30 * i, np.uint8) for i in range(6)]
    with VideoWriter(tmp_path / "v.mp4", fps=10) as w:
        for f in frames:
            w.write(f)
    video = read_video(tmp_path / "v.mp4")
    assert video.shape == (6, 32, 46, 3)
    assert np.abs(video[:, 10, 10, 0].astype(int) - [30 * i for i in range(6)]).max() <= 3


def test_rejects_bad_frames(tmp_path):
    w = VideoWriter(tmp_path / "v.mp4", fps=10)
    with pytest.raises(ValueError, match=r"uint8 \[h, w, 3\]"):
        w.write(np.zeros((8, 8), np.float32))
    w.write(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="differs from the first frame"):
        w.write(np.zeros((10, 8, 3), np.uint8))
    w.close()
