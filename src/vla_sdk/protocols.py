"""The interfaces the layers meet at, stated as checkable protocols (flax-free core).

A :class:`Policy` is what a runner drives: the checkpoint policy (:class:`vla_sdk.policy.Policy`) and the exported
artifact (:class:`vla_sdk.export.runtime.ArtifactPolicy`) both implement it, and the runner, evaluation, export gate
and `vla run` use nothing else of them.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Policy(Protocol):
    """``policy(obs) -> actions`` float [H, A] for one raw observation

        obs = {"images": {camera: uint8[h, w, 3]}, "state": float[A], "instruction": str}

    in the robot's own units and joint order (A = the embodiment's action size, H = ``horizon``)."""

    @property
    def cameras(self) -> tuple[str, ...]:
        """Camera names the policy reads, in its order; ``obs["images"]`` must hold exactly these."""
        ...

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) each camera image is resized to (pixels)."""
        ...

    @property
    def horizon(self) -> int:
        """Actions per predicted chunk (H)."""
        ...

    @property
    def robot(self) -> str | None:
        """Name of the embodiment it was trained for (None: unknown, e.g. an old checkpoint)."""
        ...

    @property
    def execute(self) -> int | None:
        """Actions of each chunk a runner should execute before replanning, as trained (None: not set)."""
        ...

    def reset(self, seed: int) -> None:
        """Start an episode: the policy's sampling noise is a function of ``seed`` from here on."""
        ...

    def __call__(self, obs: dict) -> np.ndarray: ...
