"""`TrainConfig`: everything a training run depends on; saved, resolved, next to every checkpoint."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass

from vla_sdk.errors import UsageError

FINETUNE = ("full", "lora", "head")


def parse_model_fields(items: list[str]) -> dict:
    """``["image_size=96", "vision=keypoints"]`` -> ``{"image_size": 96, "vision": "keypoints"}`` (JSON values,
    else strings); ModelConfig checks the names and values when the run builds its model."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--model expects FIELD=VALUE (e.g. image_size=96), got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def parse_duration(text: str | None) -> float | None:
    """'48h', '90m', '30s', '1h30m' or plain seconds -> seconds."""
    if text is None:
        return None
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([dhms])", text)
    if not parts or "".join(a + b for a, b in parts) != text.replace(" ", ""):
        raise UsageError(f"--time-budget: expected a duration like 48h, 90m, 1h30m or seconds, got {text!r}")
    unit = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    return sum(float(a) * unit[b] for a, b in parts)


@dataclass(frozen=True)
class TrainConfig:
    data: tuple[str, ...]  # dataset folders, of one robot or several (vla_sdk.train.mixture)
    out: str  # run folder: checkpoints/, best/, metrics.jsonl, events (TensorBoard), config.json
    robot: str | None = None  # the data's robot where the data does not say (LeRobot's own datasets): an SDK
    # robot name or a declaration file (vla_sdk.train.bind); None: what the data declares
    data_weights: tuple[float, ...] | None = None  # each dataset's share of a batch (relative), one per --data;
    # None: every frame equally likely (a dataset's share is its share of the frames)
    # The defaults are the recipe measured on one fixed camera (docs/results.md, "ACT's protocol"): vla-m from
    # scratch, 12k steps at lr 1e-3, state noise and dropout, no image shift, delta actions, whole chunks
    preset: str | None = "vla-m"  # model preset when not fine-tuning a checkpoint
    model: dict = dataclasses.field(default_factory=dict)  # ModelConfig fields changed from the preset or base
    base: str | None = None  # checkpoint (run folder or step folder) to fine-tune from
    steps: int = 12_000  # optimizer steps (fitted down by time_budget)
    requested_steps: int | None = None  # the --steps asked for, once a time budget has fitted `steps` down: a
    # resumed run with a new --time-budget fits its steps again, up to this
    batch_size: int = 32  # global batch (split over all devices)
    lr: float = 1e-3  # peak learning rate (AdamW)
    warmup_steps: int = 200  # linear warmup, then cosine decay to lr * final_lr_fraction
    final_lr_fraction: float = 0.05
    weight_decay: float = 1e-4
    grad_clip: float = 1.0  # global gradient-norm clip
    ema_decay: float = 0.999  # EMA of weights (what checkpoints are evaluated and exported with)
    finetune: str = "full"  # full: all weights; lora: low-rank adapters + the action head; head: only the head
    lora_rank: int = 16  # rank of the LoRA adapters
    val_episodes: int = 0  # episodes held out (the last K of each dataset) for validation loss
    max_episodes: int | None = None  # train on the first K (non-validation) episodes of each dataset only (nested
    # subsets: the first 10 are among the first 25; `vla train --demos-curve`); None: all of them
    augment: bool = True  # random shift and colour jitter on training images
    max_shift: int | None = 0  # random shift in pixels (None: image height / 16; 0: colour jitter only). Shifts
    # teach invariance to where things are in the image: a fixed camera that must localize objects wants none
    state_noise: float = 0.1  # std of Gaussian noise added to the normalized robot state while training: the
    # policy cannot extrapolate the demonstration from the arm's exact pose ("copycat") and must look at the images
    state_dropout: float = 0.3  # fraction of training samples shown without their state (its mask cleared): those
    # must be predicted from the images alone, so the cameras learn what the state would otherwise give away
    env_state_weight: float = 0.0  # > 0: also regress the dataset's observation.environment_state (object
    # positions, recorded in simulation) from the image tokens, with this loss weight: a training-only target that
    # teaches the cameras where the objects are. The policy never reads it; 0: off
    delta_actions: bool | None = None  # predict arm actions relative to the current state (grippers stay
    # absolute). None: as the --base checkpoint was trained (delta without a base)
    execute: int | None = None  # actions a runner executes per chunk by default, stored with the checkpoints and
    # exports (`vla eval`/`vla run` use it unless --execute is given). None: the --base checkpoint's, else the
    # whole chunk (half a chunk made the transfer-cube policy stall at the handover, docs/results.md)
    eval_task: str | None = None  # ROBOT/TASK for periodic closed-loop evaluation (keeps the best by success)
    eval_every: int = 0  # steps between evaluations (0 with an eval_task: at every checkpoint; no eval_task: never)
    eval_episodes: int = 10
    eval_max_steps: int | None = None  # cap on each evaluation episode's control steps (None: the task's limit)
    ignore_checksums: bool = False  # train on datasets whose committed files fail their content checksums
    save_every: int = 500  # steps between checkpoints (and at the end)
    keep: int = 3  # checkpoints kept (the best one is kept separately)
    log_every: int = 10  # steps between metric lines
    time_budget: float | None = None  # seconds for this run, including a final checkpoint; None: no limit
    seed: int = 0
    dtype: str | None = None  # compute dtype: None = bfloat16 on GPU/TPU, float32 on CPU
    cache_dir: str | None = None  # decoded frame cache (default ~/.cache/vla-sdk/frames)

    def __post_init__(self):
        object.__setattr__(self, "data", tuple(self.data))
        if not self.data:
            raise UsageError("--data: give at least one dataset folder")
        if self.data_weights is not None:
            object.__setattr__(self, "data_weights", tuple(float(w) for w in self.data_weights))
            if len(self.data_weights) != len(self.data):
                raise UsageError(
                    f"--data-weights: {len(self.data_weights)} weight(s) for {len(self.data)} --data folder(s)"
                )
            if not all(0 < w < float("inf") for w in self.data_weights):
                raise UsageError(f"--data-weights: every weight must be a positive number, got {self.data_weights}")
        if (self.preset is None) == (self.base is None) and self.base is not None:
            raise UsageError("give --preset or --base, not both")
        if self.max_episodes is not None and self.max_episodes < 1:
            raise UsageError(f"--max-episodes must be >= 1, got {self.max_episodes}")
        for name in ("steps", "batch_size", "save_every", "keep", "log_every", "eval_episodes"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.max_shift is not None and self.max_shift < 0:
            raise UsageError(f"--max-shift must be >= 0 pixels, got {self.max_shift}")
        if not 0.0 <= self.state_noise <= 2.0:
            raise UsageError(f"--state-noise must be in [0, 2] (normalized units), got {self.state_noise}")
        if not 0.0 <= self.env_state_weight <= 100.0:
            raise UsageError(f"--env-state-weight must be in [0, 100], got {self.env_state_weight}")
        if not 0.0 <= self.state_dropout < 1.0:
            raise UsageError(f"--state-dropout must be in [0, 1), got {self.state_dropout}")
        if self.execute is not None and self.execute < 1:
            raise UsageError(f"--execute must be >= 1 (actions per chunk), got {self.execute}")
        if self.finetune not in FINETUNE:
            raise UsageError(f"--finetune must be one of {FINETUNE}, got {self.finetune!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise UsageError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.eval_every and not self.eval_task:
            raise UsageError("--eval-every needs --eval-task ROBOT/TASK")
        if self.eval_every < 0:
            raise UsageError(f"--eval-every must be >= 0, got {self.eval_every}")
        if self.eval_max_steps is not None and self.eval_max_steps < 1:
            raise UsageError(f"--eval-max-steps must be >= 1 control steps, got {self.eval_max_steps}")
        if self.lr <= 0 or self.warmup_steps < 0:
            raise UsageError("lr must be > 0 and warmup_steps >= 0")

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["data"] = list(self.data)
        d["data_weights"] = None if self.data_weights is None else list(self.data_weights)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
