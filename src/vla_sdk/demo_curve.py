""" "Do I have enough demonstrations?": fine-tune on nested subsets of the data and measure each in simulation.

``vla train --data D --out R --demos-curve 10 25 50 --eval-task ROBOT/TASK`` trains one run per count, ``R/demos_10``,
``R/demos_25``, ... on the first K episodes of each dataset (nested: the 10 are among the 25; every other setting is
the same), evaluates each run's final checkpoint on the same unseen seeds (``vla eval``'s), and writes
``R/demos_curve.json`` (the figures), ``R/demos_curve.md`` (the table) and ``R/demos_curve.png`` (success against
demonstrations, with 95 % Wilson intervals). It resumes: a count already evaluated is read back, a run that was
stopped goes on from its last checkpoint. Compare two curves (a base and training from scratch) by running it
twice with the same steps.

The one module that drives the trainer and the evaluator together (above both in the layers).
"""

from __future__ import annotations

import json
from pathlib import Path

from vla_sdk.data.layout import atomic_write_json
from vla_sdk.errors import UsageError
from vla_sdk.eval_config import EvalConfig
from vla_sdk.evaluation import evaluate
from vla_sdk.train.config import TrainConfig
from vla_sdk.train.loop import train

RESULT = "demos_curve_eval.json"  # in each count's run: its evaluation (a count with one is done)


def demos_curve(
    cfg: TrainConfig,
    counts: list[int],
    task: str,
    episodes: int = 50,
    seed: int = EvalConfig.seed,
    workers: int = 1,
    progress: bool = True,
    log=print,
) -> dict:
    """Train and evaluate one run per count of demonstrations (see the module docstring); returns the curve."""
    if not counts or any(k < 1 for k in counts):
        raise UsageError(f"--demos-curve: give counts of demonstrations >= 1, e.g. 10 25 50; got {counts}")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for k in sorted(set(counts)):
        run = out / f"demos_{k}"
        done = run / RESULT
        if done.exists():
            log(f"{k} demonstrations: evaluated before ({done})")
            rows.append(json.loads(done.read_text()))
            continue
        log(f"{k} demonstrations: training {run}")
        summary = train(
            cfg.replace(out=str(run), max_episodes=k),
            resume=(run / "config.json").exists(),
            progress=progress,
            log=log,
        )
        if summary["stopped"] not in ("finished", "time budget"):
            raise UsageError(f"{run}: training stopped ({summary['stopped']}); run the same command to go on")
        ev = evaluate(
            EvalConfig(
                policy=str(run), task=task, episodes=episodes, seed=seed, workers=workers, max_steps=cfg.eval_max_steps
            )
        )
        row = {
            "demonstrations": k,
            "run": str(run),
            "steps": summary["steps"],
            "train_seconds": summary["seconds"],
            "successes": ev["successes"],
            "episodes": ev["episodes"],
            "success_rate": ev["success_rate"],
            "ci95": ev["ci95"],
            "seeds": [seed, seed + episodes - 1],
        }
        log(f"{k} demonstrations: {ev['successes']}/{ev['episodes']} on {task}")
        atomic_write_json(done, row)
        rows.append(row)
    curve = {"task": task, "base": cfg.base, "preset": cfg.preset, "rows": rows}
    atomic_write_json(out / "demos_curve.json", curve)
    (out / "demos_curve.md").write_text(curve_table(curve))
    plot_curve(curve, out / "demos_curve.png")
    return curve


def curve_table(curve: dict) -> str:
    """The curve as a Markdown table."""
    how = f"fine-tuned from the base {curve['base']}" if curve["base"] else f"trained from scratch ({curve['preset']})"
    lines = [
        f"Success on {curve['task']} against demonstrations, {how}:",
        "",
        "| demonstrations | success | 95 % interval | episodes | steps | training time |",
        "|---|---|---|---|---|---|",
    ]
    for r in curve["rows"]:
        lo, hi = r["ci95"]
        lines.append(
            f"| {r['demonstrations']} | {r['success_rate']:.0%} ({r['successes']}/{r['episodes']}) | "
            f"{lo:.0%}-{hi:.0%} | {r['episodes']} | {r['steps']} | {r['train_seconds'] / 60:.0f} min |"
        )
    return "\n".join(lines) + "\n"


def plot_curve(curve: dict, path: Path) -> Path:
    """Success rate against demonstrations with the 95 % intervals as error bars (matplotlib, Agg)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = curve["rows"]
    x = [r["demonstrations"] for r in rows]
    y = [100 * r["success_rate"] for r in rows]
    err = [
        [100 * (r["success_rate"] - r["ci95"][0]) for r in rows],
        [100 * (r["ci95"][1] - r["success_rate"]) for r in rows],
    ]
    fig = Figure(figsize=(5, 3.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.errorbar(x, y, yerr=err, marker="o", capsize=4)
    ax.set(xlabel="demonstrations", ylabel="success (%)", ylim=(0, 100), title=curve["task"], xticks=x)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp)
    tmp.replace(path)
    return path
