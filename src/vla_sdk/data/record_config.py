"""`RecordConfig`: what `vla record` does, in a module that imports no mujoco, so `vla record --help` (the CLI takes
its defaults and choices from here) stays light. :mod:`vla_sdk.data.record` runs it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vla_sdk.errors import InputError, UsageError

TELEOPS = ("scripted", "keyboard", "replay", "leader")  # who drives a recording (--teleop)


@dataclass
class RecordConfig:
    task: str  # ROBOT/TASK
    out: Path  # dataset folder
    episodes: int = 10  # episodes the dataset should hold when done (with --resume: in total)
    teleop: str = "scripted"  # one of TELEOPS
    resume: bool = False  # continue an interrupted recording in `out`
    fps: int | None = None  # recording = control rate; None: the robot's
    seed: int = 0  # episode k uses seed + k
    cameras: tuple[str, ...] | None = None  # None: all of the robot's cameras
    image_size: tuple[int, int] | None = None  # None: the robot's default
    source: Path | None = None  # replay: the dataset whose actions are re-executed
    only_success: bool = False  # scripted: keep only successful episodes (retrying with the next seed)
    force: bool = False  # delete an existing dataset at `out` and start over (never implied)
    ignore_checksums: bool = False  # --resume: continue even if committed files fail their SHA-256 checksums
    replay_tolerance: float = 1e-3  # replay: max |state - recorded state| allowed
    action_noise: float = 0.0  # scripted: std (rad) of the noise added to the executed arm actions (DART)
    noise_tau: float = 0.5  # seconds: correlation time of that noise
    robot: str = "sim"  # the robot recorded from: "sim", "aloha2-emulated" or a robot config file (robots/config.py)
    episode_seconds: float | None = None  # leader: length of each episode (None: the task's time limit)
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.teleop not in TELEOPS:
            raise UsageError(f"--teleop must be one of {', '.join(TELEOPS)}, got {self.teleop!r}")
        if self.episodes < 1:
            raise UsageError(f"--episodes must be >= 1, got {self.episodes}")
        if self.teleop == "replay" and self.source is None:
            raise UsageError("--teleop replay needs --source DATASET (the dataset whose actions to re-execute)")
        if not 0.0 <= self.action_noise <= 0.5:
            raise UsageError(f"--action-noise must be in [0, 0.5] rad, got {self.action_noise}")
        if self.action_noise and self.teleop != "scripted":
            raise UsageError(f"--action-noise needs --teleop scripted, got --teleop {self.teleop}")
        if (self.teleop == "leader") != (self.robot != "sim"):
            raise UsageError(
                "--teleop leader records from a robot's leader arms: give it with --robot (e.g. aloha2-emulated); "
                f"got --teleop {self.teleop} --robot {self.robot}"
            )
        if self.episode_seconds is not None and self.episode_seconds <= 0:
            raise UsageError(f"--episode-seconds must be > 0, got {self.episode_seconds}")
        if self.noise_tau <= 0:
            raise InputError(f"noise_tau must be > 0 seconds, got {self.noise_tau}")
