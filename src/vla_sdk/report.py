"""`vla eval --report`: one self-contained HTML page of an evaluation, for a browser opened on the file (no server).

It shows the success rate with its 95 % interval, a table of the episodes (seed, outcome, steps, inferences, how it
ended, its video), the inference latency (a histogram when the samples are given, else the percentiles) and the
filmed episodes, successes and failures apart. Images are inline (base64 PNG); videos are linked relative to the
page, so the page and the video folder can be moved together.

It reads only the result dict of :func:`vla_sdk.evaluation.evaluate` (or its saved ``--json``) and imports nothing
of the SDK's; matplotlib (its Agg canvas, no pyplot) is imported when a chart is drawn.
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from urllib.parse import quote

REPORT_NAME = "report.html"  # the default name, in --video-dir

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #1a1a1a; background: #fff;
       margin: 24px auto; max-width: 980px; padding: 0 16px; line-height: 1.4; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.sub { color: #555; margin: 0 0 16px; font-size: 14px; }
.rate { font-size: 34px; font-weight: 700; } .ci { font-size: 16px; color: #333; }
.track { position: relative; height: 18px; background: #eee; border-radius: 4px; margin: 8px 0 4px; }
.fill { position: absolute; top: 0; bottom: 0; left: 0; background: #2e7d32; border-radius: 4px; }
.band { position: absolute; top: -4px; bottom: -4px; border: 2px solid #1a1a1a; border-radius: 4px; }
.scale { display: flex; justify-content: space-between; color: #555; font-size: 12px; }
table { border-collapse: collapse; font-size: 14px; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: left; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #1b5e20; font-weight: 600; } .fail { color: #b71c1c; font-weight: 600; }
.facts td:first-child { color: #555; }
.videos { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; } figcaption { font-size: 13px; color: #333; }
video { width: 240px; background: #222; border-radius: 4px; }
"""


def write_report(result: dict, out: str | Path, latencies_ms=None) -> Path:
    """Write the report of ``result`` (what ``evaluate`` returns) to ``out`` and return its path. ``latencies_ms``:
    the per-call inference latencies, for a histogram (default ``result["latency_samples_ms"]`` if present; without
    them the page shows the percentiles in ``result["latency_ms"]``)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if latencies_ms is None:
        latencies_ms = result.get("latency_samples_ms")
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(render_report(result, out.parent, latencies_ms), encoding="utf-8")
    tmp.replace(out)
    return out


def render_report(result: dict, base: str | Path, latencies_ms=None) -> str:
    """The page as a string; video links are relative to the folder ``base`` the page will be written to."""
    e = html.escape
    episodes = result["per_episode"]
    lo, hi = result["ci95"]
    rate = result["success_rate"]
    cfg = result.get("config") or {}
    lat = result.get("latency_ms") or {}
    task = str(result.get("task"))
    mapped = not cfg.get("task")  # a third-party env (--env-map): it ends its own episodes
    facts = [
        ("policy", result.get("policy")),
        ("task", task),
        ("episodes", f"{result['episodes']} (seeds {_seed_span(episodes)})"),
        ("execution", f"{result.get('execution')}, {result.get('execute')} actions per chunk "
                      f"({result.get('execute_from', '?')})"),
        ("max steps", cfg.get("max_steps") or "the task's limit"),
        ("workers", result.get("workers")),
        ("wall time", f"{result.get('seconds', 0):.1f} s"),
        ("inference latency", ", ".join(f"{q} {v:.1f} ms" for q, v in lat.items()) or "not measured"),
    ]  # fmt: skip
    rows = []
    for ep in episodes:
        ok = ep["success"]
        video = ep.get("video")
        link = f'<a href="{e(_href(video, base))}">{e(Path(video).name)}</a>' if video else ""
        rows.append(
            f"<tr><td class='num'>{ep['seed']}</td>"
            f"<td class='{'ok' if ok else 'fail'}'>{'success' if ok else 'failure'}</td>"
            f"<td class='num'>{ep['steps']}</td><td class='num'>{ep.get('inferences', '')}</td>"
            f"<td>{e(_ended(ep, mapped))}</td><td>{link}</td></tr>"
        )
    videos = ""
    for title, want in (("Failures", False), ("Successes", True)):
        filmed = [ep for ep in episodes if ep.get("video") and ep["success"] == want]
        if filmed:
            figs = "".join(
                f'<figure><video controls preload="metadata" src="{e(_href(ep["video"], base))}"></video>'
                f"<figcaption>seed {ep['seed']}: {e(_ended(ep, mapped))}, {ep['steps']} steps "
                f'(<a href="{e(_href(ep["video"], base))}">open</a>)</figcaption></figure>'
                for ep in filmed
            )
            videos += f"<h2>{title} (filmed)</h2><div class='videos'>{figs}</div>"
    if not videos:
        videos = "<h2>Videos</h2><p class='sub'>none filmed (run `vla eval` with --video-dir)</p>"
    chart = _latency_png(latencies_ms, lat)
    latency = (
        f'<img alt="inference latency" src="data:image/png;base64,{chart}">'
        if chart
        else "<p class='sub'>no latency measured</p>"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>vla eval: {e(task)}</title><style>{_STYLE}</style></head>
<body>
<h1>vla eval: {e(task)}</h1>
<p class="sub">{e(str(result.get("policy")))}</p>
<div><span class="rate">{result["successes"]}/{result["episodes"]} = {100 * rate:.0f} %</span>
<span class="ci">&nbsp;success, 95 % interval {100 * lo:.0f}&ndash;{100 * hi:.0f} % (Wilson)</span></div>
<div class="track"><div class="fill" style="width:{100 * rate:.2f}%"></div>
<div class="band" style="left:{100 * lo:.2f}%; width:{100 * (hi - lo):.2f}%"></div></div>
<div class="scale"><span>0 %</span><span>50 %</span><span>100 %</span></div>
<h2>Run</h2>
<table class="facts">{"".join(f"<tr><td>{e(k)}</td><td>{e(str(v))}</td></tr>" for k, v in facts)}</table>
<h2>Episodes</h2>
<table><tr><th>seed</th><th>outcome</th><th>steps</th><th>inferences</th><th>ended</th><th>video</th></tr>
{"".join(rows)}</table>
<h2>Inference latency</h2>
{latency}
{videos}
</body></html>
"""


def _seed_span(episodes: list[dict]) -> str:
    seeds = [ep["seed"] for ep in episodes]
    return f"{min(seeds)}-{max(seeds)}" if seeds else "none"


def _ended(ep: dict, mapped: bool) -> str:
    if ep.get("stopped"):
        return f"stopped: {ep['stopped']}"
    if ep["success"]:
        return "success"
    return "the env ended it" if mapped else "time limit"


def _href(path: str, base: str | Path) -> str:
    """``path`` relative to the report's folder, as a URL path (forward slashes, special characters quoted)."""
    rel = os.path.relpath(Path(path).resolve(), Path(base).resolve())
    return quote(Path(rel).as_posix())


def _latency_png(samples, percentiles: dict) -> str | None:
    """base64 PNG: a histogram of ``samples`` (ms) with the percentiles marked, else a bar per percentile."""
    samples = [] if samples is None else [float(x) for x in samples]
    if not percentiles and not samples:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 2.6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    if samples:
        ax.hist(samples, bins=min(40, max(5, len(samples) // 4)), color="tab:blue")
        for (q, v), colour in zip(percentiles.items(), ("tab:green", "tab:orange", "tab:red"), strict=False):
            ax.axvline(v, color=colour, linestyle="--", label=f"{q} {v:.1f} ms")
        ax.set_xlabel("ms per inference call")
        ax.set_ylabel("calls")
        if percentiles:
            ax.legend(loc="upper right")
        ax.set_title(f"{len(samples)} inference calls (the first, compiling call excluded)", fontsize=10)
    else:
        names, values = list(percentiles), list(percentiles.values())
        ax.barh(names, values, color="tab:blue")
        for y, v in enumerate(values):
            ax.text(v, y, f" {v:.1f} ms", va="center")
        ax.set_xlim(0, 1.25 * max(values))
        ax.invert_yaxis()
        ax.set_xlabel("ms per inference call")
        ax.set_title("inference latency percentiles (the first, compiling call excluded)", fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")
