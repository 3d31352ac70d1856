"""Helpers shared by task definitions: sampling poses and reading object state."""

from __future__ import annotations

import numpy as np

from vla_sdk.errors import InputError


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


def body_in_frame(points: np.ndarray, pos: np.ndarray, xmat: np.ndarray) -> np.ndarray:
    """World ``points`` [..., 3] expressed in the frame of a body at ``pos`` with rotation ``xmat``."""
    return (np.asarray(points) - pos) @ xmat


def held_target(physics, expert, ee: str, site: str, body: str, pos, rot) -> tuple[np.ndarray, np.ndarray]:
    """The commanded pose for end effector ``ee`` that brings the ``body`` it holds to (``pos``, ``rot``).

    Uses the current grasp (site-to-body transform) and corrects for the arm's tracking error (commanded minus
    actual site pose), so the result is a pose to hand to a :class:`Waypoint`.
    """
    p_site, r_site = physics.site_pos(site), physics.site_xmat(site)
    p_body, r_body = physics.body_pos(body), physics.body_xmat(body)
    r_des = np.asarray(rot) @ r_body.T @ r_site  # the site rotation that gives the body ``rot``
    p_des = np.asarray(pos) + r_des @ (r_site.T @ (p_site - p_body))
    p_cmd, r_cmd = expert.ik.pose(ee)
    return p_des + (p_cmd - p_site), (r_cmd @ r_site.T) @ r_des


class StagedExpert:
    """A :class:`~vla_sdk.sim.expert.WaypointExpert` run in stages: each stage is a callable returning waypoints,
    planned from the simulator state at the moment the previous stage's waypoints are done (closed-loop replans)."""

    def __init__(self, expert, stages):
        self.expert, self.stages = expert, list(stages)

    def act(self) -> np.ndarray:
        while self.expert.done and self.stages:
            self.expert.plan(self.stages.pop(0)())
        return self.expert.act()


def sample_layout(rng: np.random.Generator, low, high, min_dist, tries: int = 1000) -> np.ndarray:
    """One 2-D point per row of ``low``/``high`` [n, 2], uniform in its own box, with points ``i`` and ``j`` at least
    ``min_dist[i][j]`` apart ([n, n]). Every draw comes from ``rng``."""
    low, high, min_dist = np.asarray(low, float), np.asarray(high, float), np.asarray(min_dist, float)
    n = len(low)
    for _ in range(tries):
        pts = rng.uniform(low, high)
        d = np.linalg.norm(pts[:, None] - pts[None], axis=-1) + np.eye(n) * 1e9
        if np.all(d >= min_dist):
            return pts
    raise RuntimeError(f"could not place {n} objects with separations {min_dist.tolist()} in {low}..{high}")


def set_mocap(physics, body: str, pos, quat=(1.0, 0.0, 0.0, 0.0)) -> None:
    """Place a mocap body (an immovable fixture such as a bin) at a world position and wxyz quaternion."""
    mid = physics.model.body(body).mocapid[0]
    if mid < 0:
        raise InputError(f"body {body!r} is not a mocap body")
    physics.data.mocap_pos[mid] = pos
    physics.data.mocap_quat[mid] = quat


def free_speed(physics, joint: str) -> float:
    """Linear speed (m/s) of a free-jointed body."""
    return float(np.linalg.norm(physics.data.joint(joint).qvel[:3]))


def in_frame(physics, body: str, frame: str) -> np.ndarray:
    """The position of ``body``'s origin in the frame of body ``frame``."""
    return physics.body_xmat(frame).T @ (physics.body_pos(body) - physics.body_pos(frame))
