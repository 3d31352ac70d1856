"""`EvalConfig`: what `vla eval` measures, in a module that imports no flax and no mujoco (numpy only, through the
runner's own config), so `vla eval --help` (the CLI takes its defaults from here) stays light.
:mod:`vla_sdk.evaluation` runs it."""

from __future__ import annotations

from dataclasses import dataclass, field

from vla_sdk.errors import UsageError
from vla_sdk.runner import RunnerConfig


@dataclass
class EvalConfig:
    policy: str  # run folder, checkpoint folder or exported artifact
    task: str | None = None  # ROBOT/TASK of this SDK
    env_map: str | dict | None = None  # third-party env: see vla_sdk.envmap
    episodes: int = 10
    seed: int = 100_000  # episode i uses seed + i (far from the seeds demonstrations are recorded with)
    workers: int = 1
    video_dir: str | None = None  # videos of the first `video_first` episodes and of failures
    video_first: int = 2
    max_failure_videos: int = 5
    video_size: tuple[int, int] = (120, 160)
    execution: str = RunnerConfig.execution  # one of runner.STRATEGIES
    execute: int | None = None  # actions per chunk (None: runner.resolve_execute: as trained, else half the chunk)
    delay_steps: int | None = None  # async: simulated inference delay in control steps (default: measured once)
    max_steps: int | None = None  # cap on each episode's control steps (default: the task's or mapping's limit)
    variables: dict = field(default_factory=dict)  # task variables fixed in every episode (Task.choices)
    instruction: str | None = None  # every episode's instruction (a template over the task's variables)

    def __post_init__(self):
        if (self.task is None) == (self.env_map is None):
            raise UsageError("give exactly one of --task ROBOT/TASK or --env-map FILE")
        if self.episodes < 1 or self.workers < 1:
            raise UsageError("--episodes and --workers must be >= 1")
        if (self.variables or self.instruction is not None) and self.task is None:
            raise UsageError("--task-var and --instruction set a task of this SDK's: give --task ROBOT/TASK")
        if self.max_steps is not None and self.max_steps < 1:
            raise UsageError(f"--max-steps must be >= 1, got {self.max_steps}")
        RunnerConfig(execution=self.execution, execute=self.execute)  # validates the name and --execute
        if self.delay_steps is not None and (self.execution != "async" or self.delay_steps < 0):
            raise UsageError(
                f"--delay-steps {self.delay_steps}: a simulated inference delay (>= 0 control steps) needs "
                f"--execution async (got {self.execution!r})"
            )
