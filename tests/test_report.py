"""Pictures: `vla eval`'s HTML report, opened in a headless browser, and `vla train`'s RUN/curves.png."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
from PIL import Image

from vla_sdk import evaluation
from vla_sdk.cli import main
from vla_sdk.evaluation import EvalConfig
from vla_sdk.policy import Policy
from vla_sdk.report import render_report
from vla_sdk.train.plot import PLOT_NAME, plot_run, read_metrics

WINDOW = (1000, 1400)  # browser window, width x height: the screenshot's size


def _chromium() -> str:
    found = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    if found is None:
        why = "no chromium for the headless browser test: apt-get install -y chromium (.ci/run installs it)"
        if os.environ.get("CI", "").lower() in ("1", "true"):
            pytest.fail(why)
        pytest.skip(why)
    return found


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.links += [v for k, v in attrs if k in ("href", "src") and v]


def _screenshot(browser: str, target: Path, tmp_path: Path) -> np.ndarray:
    """What headless Chromium shows for the file ``target`` in a WINDOW-sized window: its pixels [h, w, 3]."""
    shot = tmp_path / f"shot_{target.stem}.png"
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--mute-audio"]
    cmd += [f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", f"--window-size={WINDOW[0]},{WINDOW[1]}"]
    proc = subprocess.run([*cmd, target.as_uri()], capture_output=True, text=True, timeout=120)
    assert shot.is_file(), f"chromium wrote no screenshot (exit {proc.returncode}):\n{proc.stderr[-2000:]}"
    return _pixels(shot)


def _pixels(png: Path) -> np.ndarray:
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{png} is not a PNG"
    return np.asarray(Image.open(png).convert("RGB")).astype(int)  # [h, w, 3]


def test_eval_report_opens_in_a_headless_browser_and_its_links_resolve(aloha_policy, tmp_path, monkeypatch, capsys):
    """A real evaluation (2 tiny episodes, both filmed) and `vla eval ... --video-dir D` write D/report.html;
    Chromium renders it to a screenshot of the window's size that shows the page (dark text on white, the inline
    latency chart), and every link and source in the page is a file that exists, relative to the page."""
    browser = _chromium()
    videos = tmp_path / "eval"
    run = str(aloha_policy / "run")
    cfg = EvalConfig(run, task="aloha2/transfer_cube", episodes=2, seed=3, max_steps=8, video_dir=str(videos))
    result = evaluation.evaluate(cfg, Policy.load(cfg.policy))  # in this process: the policy is loaded once
    # the command line runs the same configuration and writes the report of its result
    monkeypatch.setattr(evaluation, "evaluate", lambda c: result if c == cfg else pytest.fail(f"{c} != {cfg}"))
    args = ["eval", cfg.policy, "--task", cfg.task, "--episodes", "2", "--seed", "3", "--max-steps", "8"]
    assert main([*args, "--video-dir", str(videos), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    page = videos / "report.html"
    assert out["report"] == str(page) and page.is_file()
    text = page.read_text()
    assert "aloha2/transfer_cube" in text and f"{out['successes']}/2" in text
    lo, hi = out["ci95"]
    assert f"{100 * lo:.0f}&ndash;{100 * hi:.0f} %" in text  # the evaluator's Wilson interval
    parser = _Links()
    parser.feed(text)
    files = [u for u in parser.links if not u.startswith(("data:", "#"))]
    assert {Path(unquote(u)).name for u in files} == {Path(e["video"]).name for e in out["per_episode"]}
    for url in files:
        assert not urlparse(url).scheme and (page.parent / unquote(url)).is_file(), url
    assert any(u.startswith("data:image/png;base64,") for u in parser.links)  # the latency chart, inline

    px = _screenshot(browser, page, tmp_path)
    assert px.shape == (WINDOW[1], WINDOW[0], 3)
    assert len(np.unique(px.reshape(-1, 3), axis=0)) > 50  # not blank: text, table rules, chart
    white = (px > 240).all(-1).mean()
    dark = (px[:170] < 80).all(-1).sum()  # the heading and the success rate in the page's #1a1a1a text
    blue = (np.abs(px - [31, 119, 180]).max(-1) < 30).sum()  # matplotlib's tab:blue bars: the inline PNG decoded
    assert white > 0.5 and dark > 2000 and blue > 200, (white, dark, blue)


def test_the_report_draws_a_latency_histogram_from_samples_and_files_videos_by_outcome(tmp_path):
    (tmp_path / "v").mkdir()
    for name in ("seed0_ok.mp4", "seed1 fail.mp4"):
        (tmp_path / "v" / name).write_bytes(b"")
    result = {
        "policy": "runs/x", "task": "fr3/pick_place", "episodes": 2, "successes": 1, "success_rate": 0.5,
        "ci95": [0.0945, 0.9055], "execution": "receding", "execute": 4, "execute_from": "half the chunk",
        "latency_ms": {"p50": 2.0, "p90": 3.0, "p99": 4.0}, "workers": 1, "seconds": 1.0,
        "config": {"task": "fr3/pick_place", "max_steps": None},
        "per_episode": [
            {"seed": 0, "success": True, "steps": 9, "inferences": 3, "stopped": None,
             "video": str(tmp_path / "v" / "seed0_ok.mp4")},
            {"seed": 1, "success": False, "steps": 20, "inferences": 5, "stopped": "unsafe action <nan>",
             "video": str(tmp_path / "v" / "seed1 fail.mp4")},
        ],
    }  # fmt: skip
    page = render_report(result, tmp_path / "reports", latencies_ms=list(np.linspace(1, 5, 40)))
    assert 'href="../v/seed1%20fail.mp4"' in page and 'src="../v/seed0_ok.mp4"' in page  # relative, quoted
    assert "stopped: unsafe action &lt;nan&gt;" in page  # escaped
    assert page.index("Failures (filmed)") < page.index("Successes (filmed)")
    assert page.count("data:image/png;base64,") == 1
    assert render_report(result, tmp_path / "reports") != page  # without samples: the percentile bars instead


def test_eval_report_flag_is_refused_with_replay(aloha_policy, tmp_path, capsys):
    run, data = str(aloha_policy / "run"), str(aloha_policy / "demos")
    assert main(["eval", run, "--replay", data, "--report", str(tmp_path / "r.html")]) == 2
    assert "--report: not used by --replay" in capsys.readouterr().err


def test_training_draws_its_curves_and_vla_plot_redraws_them(aloha_policy, tmp_path, capsys):
    """The session's tiny training run left RUN/curves.png next to its metrics.jsonl; `vla plot RUN` draws the same
    from the file, and a run that evaluates in sim gets a success-rate panel."""
    run = aloha_policy / "run"
    px = _pixels(run / PLOT_NAME)
    assert px.shape == (400, 800, 3) and len(np.unique(px.reshape(-1, 3), axis=0)) > 20
    shown = _screenshot(_chromium(), run / PLOT_NAME, tmp_path)  # the plot as a browser shows it
    assert shown.shape == (WINDOW[1], WINDOW[0], 3)
    assert (np.abs(shown - [31, 119, 180]).max(-1) < 30).sum() > 100  # the loss curve, in tab:blue
    assert main(["plot", str(run), "--out", str(tmp_path / "c.png")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "c.png")
    assert _pixels(tmp_path / "c.png").shape == (400, 800, 3)

    other = tmp_path / "evaluated"
    other.mkdir()
    lines = [{"step": s, "loss": 1 / s, "lr": 1e-4} for s in (1, 2, 3, 4)]
    lines += [{"step": 2, "val_loss": 0.6, "success_rate": 0.0}, {"step": 3, "loss": 0.2}]  # resumed: 3 again
    lines += [{"step": 4, "val_loss": 0.5, "success_rate": 0.5}]
    (other / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"step": 5, "lo')
    series = read_metrics(other / "metrics.jsonl")
    assert series["loss"] == [(1, 1.0), (2, 0.5), (3, 0.2), (4, 0.25)]  # the later line of a step wins
    assert series["success_rate"] == [(2, 0.0), (4, 0.5)]
    assert _pixels(plot_run(other)).shape == (650, 800, 3)  # loss panel + success panel
    assert main(["plot", str(tmp_path / "nothing")]) == 1
    assert "is not a training run folder" in capsys.readouterr().err


def test_dataset_viz_saves_an_episode_as_a_rerun_recording(aloha_sample, tmp_path, monkeypatch, capsys):
    """`vla dataset viz --rerun-save FILE`: the episode's camera images and one series per state and action
    dimension, on the frame and time timelines, in an .rrd file (the optional rerun extra; --rerun spawns a
    viewer instead, which a headless test cannot)."""
    pytest.importorskip("rerun", reason="the optional rerun extra: pip install 'vla-sdk[rerun]'")
    from vla_sdk.data.reader import Dataset
    from vla_sdk.data.viz import stream_episode_rerun

    ds = Dataset(aloha_sample)
    out = tmp_path / "ep1.rrd"
    assert main(["dataset", "viz", str(aloha_sample), "--episode", "1", "--rerun-save", str(out)]) == 0
    length = ds.episodes[1]["length"]
    assert f"{out}: episode 1, {length} frames" in capsys.readouterr().out
    assert out.read_bytes()[:4] == b"RRF2" and out.stat().st_size > 50_000  # rerun's file header; images inside
    r = stream_episode_rerun(aloha_sample, 0, cameras=["cam_high"], save=tmp_path / "ep0.rrd")
    joints = ds.features["action"]["names"]
    assert r["entities"] == ["cameras/cam_high", *(f"state/{n}" for n in joints), *(f"action/{n}" for n in joints)]
    assert main(["dataset", "viz", str(aloha_sample), "--rerun", "--out", str(tmp_path / "x.mp4")]) == 2
    monkeypatch.setitem(sys.modules, "rerun", None)  # not installed
    assert main(["dataset", "viz", str(aloha_sample), "--rerun-save", str(tmp_path / "y.rrd")]) == 1
    assert "pip install 'vla-sdk[rerun]'" in capsys.readouterr().err
