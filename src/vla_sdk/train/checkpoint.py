"""Writing checkpoints with orbax: ``RUN/checkpoints/<step>/`` (the last K) and ``RUN/best/<step>/`` (the best).

The format, its hashes and reading live in :mod:`vla_sdk.checkpoint` (the core, which inference uses); this module
saves and restores the full train state. A checkpoint that cannot be read is reported by name and never
overwritten or deleted.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from vla_sdk.checkpoint import CHECKPOINT_FORMAT, check_integrity, read_checkpoint, seal  # noqa: F401 - re-exported
from vla_sdk.errors import InputError


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
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(seal(state, meta)))
        self.last.save(step, args=args, force=True)
        if score is not None:
            self.best.save(step, args=args, metrics={"score": float(score)}, force=True)
        self.last.wait_until_finished()
        self.best.wait_until_finished()

    def save_best(self, step: int, state: dict, meta: dict, score: float | None) -> None:
        """Offer an already saved step (:meth:`save` without a score) as the best one, once its score is known
        (`vla train --eval-task`: the success rate of the saved checkpoint)."""
        if score is None:
            return
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(seal(state, meta)))
        self.best.save(step, args=args, metrics={"score": float(score)}, force=True)
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
        check_integrity(path, out["state"], out["meta"])
        return out["state"], out["meta"]

    def close(self) -> None:
        self.last.close()
        self.best.close()


def write_slim(src: str | Path, dst: str | Path, meta_update: dict | None = None) -> dict:
    """A slim copy of checkpoint ``src`` (a run or step folder) at ``dst``: its EMA weights and its meta (with
    ``meta_update`` merged in), sealed, without the optimizer state: what a shipped base is (:mod:`vla_sdk.bases`).
    ``dst`` must not exist. Returns the meta as written."""
    dst = Path(dst).absolute()
    if dst.exists():
        raise InputError(f"{dst} already exists; a slim checkpoint is written to a new folder")
    params, meta = read_checkpoint(src)
    state = {"ema": jax.tree.map(np.asarray, params)}
    meta = {k: v for k, v in {**meta, **(meta_update or {})}.items() if k not in ("sha256", "meta_sha256")}
    sealed = seal(state, meta)
    ocp.Checkpointer(ocp.CompositeCheckpointHandler()).save(
        dst, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(sealed))
    )
    return sealed
