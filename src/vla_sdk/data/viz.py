"""`vla dataset viz`: an episode as an mp4, its cameras tiled above its state and action curves; or, with
``--rerun``, streamed to the Rerun viewer (or saved as an .rrd recording), one timeline of camera images and joint
curves to scrub through.

The plot is drawn with numpy alone: one line per dimension, in the dimension's colour (the palette below, in
dimension order), the state bright and the action in a faded tone of the same colour, over the whole episode on one
shared y-scale (the thin grey line is 0), and a white cursor with dots on the current state values at the frame shown.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vla_sdk.data.reader import Dataset
from vla_sdk.errors import RuntimeFailure, UsageError
from vla_sdk.video import VideoWriter

BACKGROUND = np.array([18, 18, 18], np.uint8)
AXIS = np.array([70, 70, 70], np.uint8)
CURSOR = np.array([255, 255, 255], np.uint8)
PALETTE = np.array(
    [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (23, 190, 207),
        (188, 189, 34),
        (174, 199, 232),
        (255, 187, 120),
        (152, 223, 138),
        (255, 152, 150),
        (197, 176, 213),
    ],
    np.uint8,
)
ACTION_FADE = 0.45  # action colour = fade * colour + (1 - fade) * background
MARGIN = 4  # pixels around the plot area


def draw_polyline(img: np.ndarray, xs: np.ndarray, ys: np.ndarray, color) -> None:
    """Draw the polyline through pixel coordinates (xs[i], ys[i]) into ``img`` [h, w, 3] (1 px, clipped)."""
    xs, ys = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
    if len(xs) == 1:
        px, py = np.rint(xs).astype(int), np.rint(ys).astype(int)
    else:
        dx, dy = np.diff(xs), np.diff(ys)
        steps = np.maximum(np.ceil(np.maximum(np.abs(dx), np.abs(dy))).astype(int), 1)  # samples per segment
        seg = np.repeat(np.arange(len(steps)), steps)
        frac = (np.arange(steps.sum()) - np.repeat(np.cumsum(steps) - steps, steps)) / steps[seg]
        px = np.rint(np.append(xs[:-1][seg] + dx[seg] * frac, xs[-1])).astype(int)
        py = np.rint(np.append(ys[:-1][seg] + dy[seg] * frac, ys[-1])).astype(int)
    h, w = img.shape[:2]
    keep = (px >= 0) & (px < w) & (py >= 0) & (py < h)
    img[py[keep], px[keep]] = color


class CurvePanel:
    """State and action curves of one episode, [height, width]; ``frame(t)`` adds the cursor at frame t."""

    def __init__(self, state: np.ndarray, action: np.ndarray, width: int, height: int):
        state, action = np.asarray(state, np.float64), np.asarray(action, np.float64)
        n, dims = state.shape
        self.width, self.height = width, height
        lo = float(min(state.min(), action.min()))
        hi = float(max(state.max(), action.max()))
        if hi - lo < 1e-6:
            lo, hi = lo - 1.0, hi + 1.0
        top, bottom = MARGIN, height - 1 - MARGIN
        self.to_y = lambda v: bottom - (np.asarray(v) - lo) / (hi - lo) * (bottom - top)
        self.xs = MARGIN + np.arange(n) * (width - 1 - 2 * MARGIN) / max(n - 1, 1)
        img = np.broadcast_to(BACKGROUND, (height, width, 3)).copy()
        img[[top, bottom], MARGIN : width - MARGIN] = AXIS
        if lo < 0 < hi:
            img[int(round(float(self.to_y(0.0)))), MARGIN : width - MARGIN] = AXIS
        colors = PALETTE[np.arange(dims) % len(PALETTE)]
        faded = (ACTION_FADE * colors + (1 - ACTION_FADE) * BACKGROUND).astype(np.uint8)
        for d in range(dims):  # actions first, so the states are drawn over them
            draw_polyline(img, self.xs, self.to_y(action[:, d]), faded[d])
        for d in range(dims):
            draw_polyline(img, self.xs, self.to_y(state[:, d]), colors[d])
        self.image, self.state, self.colors = img, state, colors

    def frame(self, t: int) -> np.ndarray:
        img = self.image.copy()
        x = int(round(self.xs[t]))
        img[MARGIN : self.height - MARGIN, x : x + 2] = CURSOR
        ys = np.rint(self.to_y(self.state[t])).astype(int)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1, 2):
                if 0 <= x + dx < self.width:
                    img[np.clip(ys + dy, 0, self.height - 1), x + dx] = self.colors
        return img


def render_episode_video(
    root: str | Path,
    episode: int,
    out: str | Path,
    *,
    cameras: list[str] | None = None,
    plot_height: int = 160,
    min_width: int = 384,
) -> dict:
    """Write episode ``episode`` of the dataset at ``root`` to ``out`` (mp4 at the dataset's fps): each frame is the
    cameras tiled (scaled up by a whole factor to at least ``min_width`` pixels wide) above the curve panel."""
    from vla_sdk.episode import tile

    ds = _dataset(root, episode)
    if plot_height < 2 * MARGIN + 8 or plot_height % 2:
        raise UsageError(f"--plot-height must be even and at least {2 * MARGIN + 8} pixels, got {plot_height}")
    ep = ds.episode(episode, cameras=cameras)
    cams = list(ep["images"])
    length = len(ep["action"])
    if cams:
        tiles = tile([ep["images"][c][0] for c in cams])
        scale = max(1, -(-min_width // tiles.shape[1]))
        width = tiles.shape[1] * scale
    else:
        scale, width = 1, min_width
    width += width % 2  # yuv420p needs even sizes
    panel = CurvePanel(ep["observation.state"], ep["action"], width, plot_height)
    with VideoWriter(out, fps=ds.fps) as writer:
        for t in range(length):
            parts = []
            if cams:
                grid = tile([ep["images"][c][t] for c in cams])
                grid = np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)
                pad = ((0, grid.shape[0] % 2), (0, width - grid.shape[1]), (0, 0))  # even sizes for yuv420p
                parts.append(np.pad(grid, pad))
            parts.append(panel.frame(t))
            frame = np.concatenate(parts, axis=0)
            writer.write(frame)
    return {
        "out": str(out),
        "episode": episode,
        "frames": length,
        "fps": ds.fps,
        "size": [int(frame.shape[0]), int(frame.shape[1])],
        "cameras": cams,
    }


def _dataset(root: str | Path, episode: int) -> Dataset:
    ds = Dataset(root)
    n = ds.num_episodes
    if not 0 <= episode < n:
        valid = f"valid: 0..{n - 1}" if n else "it has no episodes"
        raise UsageError(f"--episode {episode} is out of range: {ds.root} holds {n} episode(s) ({valid})")
    return ds


RERUN_INSTALL = "pip install 'vla-sdk[rerun]'"


def stream_episode_rerun(
    root: str | Path, episode: int, *, cameras: list[str] | None = None, save: str | Path | None = None
) -> dict:
    """Episode ``episode`` of the dataset at ``root`` to Rerun (the optional ``rerun`` extra, rerun-sdk): a new
    viewer is spawned, or with ``save`` the recording is written to that .rrd file (``rerun FILE`` opens it).

    On the timelines ``frame`` (the frame index) and ``time`` (s from the episode's start): ``cameras/<name>`` the
    images, ``state/<joint>`` and ``action/<joint>`` one scalar series per dimension (as LeRobot's viewer lays them
    out), and ``task`` the instruction (static)."""
    try:
        import rerun as rr
    except ImportError:
        raise RuntimeFailure(f"--rerun needs rerun-sdk: {RERUN_INSTALL}") from None
    ds = _dataset(root, episode)
    ep = ds.episode(episode, cameras=cameras)
    names = {
        key: ds.features[key].get("names") or [f"{i}" for i in range(ep[key].shape[1])]
        for key in ("observation.state", "action")
    }
    rec = rr.RecordingStream("vla_sdk", recording_id=f"{ds.root.name}_episode{episode}")
    if save is not None:
        Path(save).parent.mkdir(parents=True, exist_ok=True)
        rec.save(str(save))
    else:
        rec.spawn()
    length = len(ep["action"])
    frames = np.arange(length)
    seconds = frames / ds.fps
    index = [rr.TimeColumn("frame", sequence=frames), rr.TimeColumn("time", duration=seconds)]
    rec.log("task", rr.TextDocument(ep["task"] or ""), static=True)
    for key, prefix in (("observation.state", "state"), ("action", "action")):
        for d, name in enumerate(names[key]):
            rec.send_columns(f"{prefix}/{name}", indexes=index, columns=rr.Scalars.columns(scalars=ep[key][:, d]))
    for t in range(length):  # one image per camera and frame (rerun batches them)
        rec.set_time("frame", sequence=t)
        rec.set_time("time", duration=float(seconds[t]))
        for cam, images in ep["images"].items():
            rec.log(f"cameras/{cam}", rr.Image(images[t]))
    rec.flush()
    if save is not None:
        rec.disconnect()  # finishes the file
    return {
        "out": None if save is None else str(save),
        "episode": episode,
        "frames": length,
        "fps": ds.fps,
        "cameras": list(ep["images"]),
        "entities": [f"cameras/{c}" for c in ep["images"]]
        + [f"{p}/{n}" for k, p in (("observation.state", "state"), ("action", "action")) for n in names[k]],
    }
