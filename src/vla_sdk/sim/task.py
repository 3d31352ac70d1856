"""The task contract: a scene, randomized initial conditions, instructions, a success predicate and an expert."""

from __future__ import annotations

import abc
from typing import ClassVar, Protocol

import numpy as np

from vla_sdk.sim.physics import Physics


class Expert(Protocol):
    """A scripted policy with privileged access to the simulator: ``act() -> action [A]``, one call per step."""

    def act(self) -> np.ndarray: ...


class Task(abc.ABC):
    """One task on one robot. Subclasses set the class attributes and implement the three methods.

    A task instance belongs to one environment and reads/writes its :class:`Physics`. ``randomize`` must draw every
    random choice from the generator it is given, so one seed gives one episode.
    """

    robot: ClassVar[str]  # robots/<robot>
    name: ClassVar[str]  # the task's short name; the full name is "<robot>/<name>"
    scene: ClassVar[str]  # MJCF file under sim/<robot>/
    max_steps: ClassVar[int]  # time limit in control steps
    instructions: ClassVar[tuple[str, ...]]  # phrasings; str.format templates over randomize()'s variables
    language_conditioned: ClassVar[bool] = False  # True when the instruction is needed to succeed
    # True for a held-out task: a skill no base policy is trained on, kept for measuring fine-tuning from a few
    # demonstrations (a tool that builds a base's training mix leaves these out: ``list_tasks(held_out=False)``)
    held_out: ClassVar[bool] = False
    summary: ClassVar[str] = ""
    # randomize()'s variables a user may fix (`vla eval --task-var color=blue`) and the values each may take
    choices: ClassVar[dict[str, tuple]] = {}

    def __init__(self, physics: Physics):
        self.physics = physics
        self.variables: dict = {}

    @classmethod
    def full_name(cls) -> str:
        return f"{cls.robot}/{cls.name}"

    @abc.abstractmethod
    def randomize(self, rng: np.random.Generator) -> dict:
        """Place the objects for a new episode (the robot is already at home); return the instruction variables."""

    @abc.abstractmethod
    def success(self) -> bool:
        """Whether the task's goal holds in the current state."""

    @abc.abstractmethod
    def make_expert(self) -> Expert:
        """A scripted expert for the episode that was just reset."""

    def instruction(self, rng: np.random.Generator) -> str:
        return self.instructions[int(rng.integers(len(self.instructions)))].format(**self.variables)
