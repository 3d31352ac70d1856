"""RUN/curves.png: a training run's loss, validation loss and sim success rate against step, drawn from its
metrics.jsonl (`vla train` redraws it at every checkpoint and at the end; `vla plot RUN` draws it for any run).

matplotlib's object API with the Agg canvas: no pyplot, no global backend, no display needed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from vla_sdk.errors import InputError, NotFound

PLOT_NAME = "curves.png"


def read_metrics(path: str | Path) -> dict[str, list[tuple[int, float]]]:
    """The series in a metrics.jsonl, ``{name: [(step, value), ...]}`` sorted by step: ``loss`` (the training lines),
    ``val_loss`` and ``success_rate`` (the checkpoint lines), only those present. A resumed run logs the steps after
    its last checkpoint again: the later line of a step wins. A line cut short by a kill is skipped."""
    series: dict[str, dict[int, float]] = {}
    for line in Path(path).read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # the torn last line of a killed run (the resumed run cuts it off)
            continue
        for key in ("loss", "val_loss", "success_rate"):
            v = rec.get(key)
            if v is not None and math.isfinite(v):
                series.setdefault(key, {})[int(rec["step"])] = float(v)
    return {k: sorted(v.items()) for k, v in series.items()}


def plot_run(run: str | Path, out: str | Path | None = None) -> Path:
    """Draw ``run``'s metrics.jsonl to ``out`` (default RUN/curves.png, written atomically) and return its path."""
    run = Path(run)
    metrics = run / "metrics.jsonl"
    if not metrics.is_file():
        raise NotFound(f"{metrics} does not exist: {run} is not a training run folder (`vla train --out RUN`)")
    series = read_metrics(metrics)
    if not series:
        raise InputError(f"{metrics} holds no metrics yet (the first line comes after --log-every steps)")
    out = Path(out) if out is not None else run / PLOT_NAME
    _draw(series, out, title=_title(run))
    return out


def refresh_plot(run: str | Path) -> Path | None:
    """`vla train`'s redraw of RUN/curves.png (at each checkpoint and at the end): nothing before the run's first
    metric value (a checkpoint can come before the first --log-every line)."""
    series = read_metrics(Path(run) / "metrics.jsonl")
    if not series:
        return None
    out = Path(run) / PLOT_NAME
    _draw(series, out, title=_title(run))
    return out


def _title(run: str | Path) -> str:
    return "/".join(Path(run).resolve().parts[-2:])  # e.g. runs/tc


def _running_mean(values, width: int) -> list[float]:
    """Mean of the last ``width`` values at each point (fewer at the start)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v - (values[i - width] if i >= width else 0.0)
        out.append(total / min(i + 1, width))
    return out


def _draw(series: dict[str, list[tuple[int, float]]], out: Path, title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    success = series.get("success_rate")
    fig = Figure(figsize=(8, 6.5 if success else 4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2 if success else 1, 1, sharex=True, squeeze=False)[:, 0]
    ax = axes[0]
    if "loss" in series:
        steps, values = zip(*series["loss"], strict=True)
        few = len(steps) < 30  # a short run's few points get markers (one point draws no line)
        if len(steps) >= 20:  # the per-step loss is noisy: faint, with its running mean over ~1/20 of the run
            ax.plot(steps, values, color="tab:blue", alpha=0.3, linewidth=0.8)
            ax.plot(steps, _running_mean(values, len(values) // 20), color="tab:blue", label="training loss")
        else:
            ax.plot(steps, values, "o-" if few else "-", color="tab:blue", markersize=4, label="training loss")
    if "val_loss" in series:
        steps, values = zip(*series["val_loss"], strict=True)
        ax.plot(steps, values, "o-", color="tab:orange", markersize=4, label="validation loss")
    values = [v for k in ("loss", "val_loss") for _, v in series.get(k, [])]
    if values and min(values) > 0 and max(values) / min(values) > 20:
        ax.set_yscale("log")  # losses fall by orders of magnitude: a linear axis shows only the first steps
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if values:
        ax.legend(loc="upper right")
    if success:
        steps, rates = zip(*success, strict=True)
        axes[1].plot(steps, rates, "o-", color="tab:green", markersize=4, label="sim success rate")
        axes[1].set_ylim(-0.05, 1.05)
        axes[1].set_ylabel("success rate")
        axes[1].grid(True, alpha=0.3)
        axes[1].legend(loc="best")
    axes[-1].set_xlabel("step")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    tmp = out.with_name(out.name + ".tmp")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(tmp, format="png")
    tmp.replace(out)  # an image viewer that reloads it never sees half a file
