"""Checkpoints with orbax: ``RUN/checkpoints/<step>/`` (the last K) and ``RUN/best/<step>/`` (the best one).

Each checkpoint holds the train state (params, EMA params, optimizer state, step) and ``meta``: format version,
resolved train and model configs, normalization statistics, the embodiment schema, and metrics. A checkpoint that
cannot be read is reported by name and never overwritten or deleted.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from vla_sdk.errors import InputError, NotFound

CHECKPOINT_FORMAT = 1


class Checkpoints:
    def __init__(self, run: Path, keep: int):
        self.run = Path(run).absolute()  # orbax needs absolute paths
        opts = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=False)
        self.last = ocp.CheckpointManager(self.run / "checkpoints", options=opts)
        best = ocp.CheckpointManagerOptions(
            max_to_keep=1, create=True, enable_async_checkpointing=False, best_fn=lambda m: m["score"], best_mode="max"
        )
        self.best = ocp.CheckpointManager(self.run / "best", options=best)

    def latest_step(self) -> int | None:
        return self.last.latest_step()

    def save(self, step: int, state: dict, meta: dict, score: float | None = None) -> None:
        if not all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(state["params"])):
            raise FloatingPointError(f"refusing to save step {step}: parameters are not finite")
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
        self.last.save(step, args=args, force=True)
        if score is not None:
            self.best.save(step, args=args, metrics={"score": float(score)}, force=True)
        self.last.wait_until_finished()
        self.best.wait_until_finished()

    def restore(self, step: int, abstract_state: dict) -> tuple[dict, dict]:
        path = self.run / "checkpoints" / str(step)
        try:
            out = self.last.restore(
                step,
                args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()),
            )
        except Exception as e:  # noqa: BLE001 - any failure means the files are not a usable checkpoint
            raise InputError(
                f"checkpoint {path} cannot be read ({type(e).__name__}: {e}); it was left untouched. "
                f"Move it aside to resume from the previous one"
            ) from e
        return out["state"], out["meta"]

    def close(self) -> None:
        self.last.close()
        self.best.close()


def read_checkpoint(path: str | Path) -> tuple[dict, dict]:
    """(params as a pure dict: the EMA weights, meta) from a run folder (its latest step) or a step folder."""
    path = Path(path).absolute()  # orbax needs absolute paths
    if (path / "checkpoints").is_dir():
        steps = sorted(int(p.name) for p in (path / "checkpoints").iterdir() if p.name.isdigit())
        if not steps:
            raise NotFound(f"{path}: no checkpoints in {path / 'checkpoints'}")
        path = path / "checkpoints" / str(steps[-1])
    if not (path / "meta").exists() or not (path / "state").exists():
        raise NotFound(f"{path} is not a vla-sdk checkpoint (expected state/ and meta/ inside)")
    ckptr = ocp.Checkpointer(ocp.CompositeCheckpointHandler())
    try:
        out = ckptr.restore(
            path, args=ocp.args.Composite(state=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore())
        )
    except Exception as e:  # noqa: BLE001
        raise InputError(f"checkpoint {path} cannot be read ({type(e).__name__}: {e})") from e
    meta = out["meta"]
    if meta.get("format_version", 0) > CHECKPOINT_FORMAT:
        raise InputError(
            f"checkpoint {path} has format_version {meta['format_version']}; this vla-sdk reads up to "
            f"{CHECKPOINT_FORMAT} (upgrade vla-sdk)"
        )
    from vla_sdk.train import lora

    return lora.merge(out["state"]["ema"]), meta
