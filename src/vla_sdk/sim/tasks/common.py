"""Helpers shared by task definitions: sampling poses and reading object state."""

from __future__ import annotations

import numpy as np


def yaw_quat(yaw: float) -> np.ndarray:
    """wxyz quaternion of a rotation by ``yaw`` about world z."""
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


def body_yaw(xmat: np.ndarray) -> float:
    """Yaw (about z) of a body whose z axis is near vertical."""
    return float(np.arctan2(xmat[1, 0], xmat[0, 0]))


def nearest_grasp_yaw(object_yaw: float, preferred: float, symmetry: float = np.pi / 2) -> float:
    """The finger yaw equivalent to ``object_yaw`` under the object's symmetry that is closest to ``preferred``."""
    k = np.round((preferred - object_yaw) / symmetry)
    return float(object_yaw + k * symmetry)


def sample_separated(rng: np.random.Generator, n: int, low, high, min_dist: float, tries: int = 1000) -> np.ndarray:
    """``n`` points uniformly in the box [low, high] (2-D), pairwise at least ``min_dist`` apart."""
    low, high = np.asarray(low, float), np.asarray(high, float)
    for _ in range(tries):
        pts = rng.uniform(low, high, size=(n, len(low)))
        d = np.linalg.norm(pts[:, None] - pts[None], axis=-1) + np.eye(n) * 1e9
        if d.min() >= min_dist:
            return pts
    raise RuntimeError(f"could not place {n} objects {min_dist} m apart in {low}..{high}")
