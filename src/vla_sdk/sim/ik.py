"""Differential inverse kinematics for an embodiment's end effectors, with mink on the robot-only model.

The IK keeps its own configuration (the commanded joint positions), so consecutive solves along a smooth Cartesian
path give smooth joint targets. Objects in the scene never enter the IK problem: it runs on ``robots/<name>`` alone.
"""

from __future__ import annotations

import mink
import mujoco
import numpy as np

from vla_sdk.embodiment import Embodiment


class EndEffectorIK:
    """``solve({ee_name: (pos[3], rot[3, 3])}) -> joint targets`` for the embodiment's joint dimensions."""

    def __init__(
        self,
        embodiment: Embodiment,
        position_cost: float = 1.0,
        orientation_cost: float = 0.5,
        posture_cost: float = 1e-3,
        iterations: int = 4,
        joint_posture_costs: dict[str, float] | None = None,
    ):
        """``joint_posture_costs`` (joint name -> cost) holds chosen joints closer to their start than the rest:
        it settles redundancies (e.g. a forearm roll against a wrist rotation) the same way in every episode."""
        self.embodiment = embodiment
        self.model = mujoco.MjModel.from_xml_path(str(embodiment.model_path))
        self.configuration = mink.Configuration(self.model)
        self.iterations = iterations
        self.tasks = {
            ee.name: mink.FrameTask(
                ee.site, "site", position_cost=position_cost, orientation_cost=orientation_cost, lm_damping=1e-3
            )
            for ee in embodiment.end_effectors
        }
        cost = np.full(self.model.nv, posture_cost)
        for name, value in (joint_posture_costs or {}).items():
            cost[self.model.jnt_dofadr[self.model.joint(name).id]] = value  # KeyError names an unknown joint
        self.posture = mink.PostureTask(self.model, cost=cost)
        self.limits = [mink.ConfigurationLimit(self.model)]
        self._qadr = {d.name: self.model.jnt_qposadr[self.model.joint(d.joint).id] for d in embodiment.dims}

    def reset(self, joint_positions: np.ndarray) -> None:
        """Start from the robot's current state [A] (gripper entries are ignored)."""
        q = self.configuration.q.copy()
        for i, d in enumerate(self.embodiment.dims):
            if d.kind == "joint":
                q[self._qadr[d.name]] = joint_positions[i]
        self.configuration.update(q)
        self.posture.set_target(q)

    def pose(self, ee: str) -> tuple[np.ndarray, np.ndarray]:
        """The end effector's pose (pos[3], rot[3, 3]) in the IK's current configuration."""
        site = next(e.site for e in self.embodiment.end_effectors if e.name == ee)
        T = self.configuration.get_transform_frame_to_world(site, "site")
        return T.translation(), T.rotation().as_matrix()

    def solve(self, targets: dict[str, tuple[np.ndarray, np.ndarray]], dt: float) -> np.ndarray:
        """Move the IK configuration toward ``targets``; return the joint positions [A] (grippers left at 0)."""
        for name, (pos, rot) in targets.items():
            self.tasks[name].set_target(mink.SE3.from_rotation_and_translation(mink.SO3.from_matrix(rot), pos))
        tasks = [self.tasks[n] for n in targets] + [self.posture]
        for _ in range(self.iterations):
            vel = mink.solve_ik(self.configuration, tasks, dt, solver="daqp", damping=1e-3, limits=self.limits)
            self.configuration.integrate_inplace(vel, dt)
        q = self.configuration.q
        out = np.zeros(self.embodiment.action_dim)
        for i, d in enumerate(self.embodiment.dims):
            if d.kind == "joint":
                out[i] = q[self._qadr[d.name]]
        return out
