"""Scripted experts: Cartesian waypoints for each end effector, interpolated in time and tracked with IK.

An expert sees the privileged simulator state (object poses) when it plans; it then returns one embodiment action
per control step. Plans may be revised mid-episode (``replan``) from fresh object poses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mink
import numpy as np

from vla_sdk.sim.ik import EndEffectorIK


@dataclass
class Waypoint:
    """Where each end effector should be at time ``t`` (seconds from the plan's start)."""

    t: float
    poses: dict[str, tuple[np.ndarray, np.ndarray]]  # end effector -> (pos[3], rot[3, 3]); absent = hold
    grippers: dict[str, float] = field(default_factory=dict)  # gripper dim name -> opening in [0, 1]; absent = hold


def top_down(yaw: float = 0.0, approach=(0.0, 0.0, -1.0), tool_axis: str = "x") -> np.ndarray:
    """Rotation whose approach axis (tool ``x`` for ALOHA, ``z`` for Franka) points along ``approach`` and whose
    finger axis (tool ``y``) is the world x axis rotated by ``yaw`` about z."""
    a = np.asarray(approach, float) / np.linalg.norm(approach)
    f = np.array([np.cos(yaw), np.sin(yaw), 0.0])
    f = f - a * (f @ a)
    f /= np.linalg.norm(f)
    if tool_axis == "x":  # columns: x = approach, y = fingers, z = x cross y
        return np.column_stack([a, f, np.cross(a, f)])
    return np.column_stack([np.cross(f, a), f, a])  # z = approach, y = fingers, x = y cross z


class WaypointExpert:
    """Follows a list of waypoints; ``act(state)`` returns the next embodiment action [A]."""

    def __init__(self, ik: EndEffectorIK, dt: float, state: np.ndarray, waypoints: list[Waypoint]):
        self.ik, self.dt = ik, dt
        emb = ik.embodiment
        self.ik.reset(state)
        self.step_count = 0
        self.action = state.copy()
        start = Waypoint(
            0.0,
            {ee.name: ik.pose(ee.name) for ee in emb.end_effectors},
            {emb.dims[i].name: float(state[i]) for i in emb.gripper_indices},
        )
        self.grip_index = {emb.dims[i].name: i for i in emb.gripper_indices}
        self.plan(waypoints, start)

    def plan(self, waypoints: list[Waypoint], start: Waypoint | None = None, t0: float | None = None) -> None:
        """Replace the remaining plan; waypoint times are relative to ``t0`` (default: now)."""
        t0 = self.step_count * self.dt if t0 is None else t0
        if start is None:
            start = Waypoint(
                0.0,
                {n: self.ik.pose(n) for n in self.ik.tasks},
                {n: float(self.action[i]) for n, i in self.grip_index.items()},
            )
        full = [Waypoint(t0, start.poses, start.grippers)]
        for w in waypoints:  # fill holds so every waypoint is complete
            prev = full[-1]
            full.append(Waypoint(t0 + w.t, {**prev.poses, **w.poses}, {**prev.grippers, **w.grippers}))
        self.waypoints = full

    @property
    def done(self) -> bool:
        return self.step_count * self.dt >= self.waypoints[-1].t

    def act(self) -> np.ndarray:
        t = (self.step_count + 1) * self.dt
        self.step_count += 1
        wps = self.waypoints
        k = next((i for i in range(1, len(wps)) if wps[i].t >= t), len(wps) - 1)
        a, b = wps[k - 1], wps[k]
        alpha = 1.0 if b.t <= a.t else float(np.clip((t - a.t) / (b.t - a.t), 0.0, 1.0))
        alpha = 0.5 - 0.5 * np.cos(np.pi * alpha)  # ease in/out: zero velocity at each waypoint
        targets = {}
        for name in b.poses:
            (p0, r0), (p1, r1) = a.poses[name], b.poses[name]
            rot = mink.SO3.from_matrix(r0).interpolate(mink.SO3.from_matrix(r1), alpha).as_matrix()
            targets[name] = ((1 - alpha) * p0 + alpha * p1, rot)
        action = self.ik.solve(targets, self.dt)
        for name, i in self.grip_index.items():
            action[i] = (1 - alpha) * a.grippers[name] + alpha * b.grippers[name]
        self.action = action
        return action.copy()
