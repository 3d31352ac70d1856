"""ALOHA 2 tasks and their scripted experts.

World frame: table top z = 0; the left arm's base at x = -0.469, the right arm's at x = +0.469, both at y = -0.019.
Grippers are driven by their ``left``/``right`` end-effector sites (tool x = approach, tool y = finger axis).
"""

from __future__ import annotations

import numpy as np

from vla_sdk.sim.expert import Waypoint, WaypointExpert, top_down
from vla_sdk.sim.ik import EndEffectorIK
from vla_sdk.sim.task import Task
from vla_sdk.sim.tasks.common import body_yaw, nearest_grasp_yaw, yaw_quat

DOWN = np.array([0.0, 0.0, -1.0])
TO_LEFT = np.array([-1.0, 0.0, 0.0])  # the right arm's horizontal approach
TO_RIGHT = np.array([1.0, 0.0, 0.0])  # the left arm's horizontal approach


def _expert(task: Task, waypoints: list[Waypoint]) -> WaypointExpert:
    p = task.physics
    return WaypointExpert(EndEffectorIK(p.embodiment), p.dt, p.state(), waypoints)


class TransferCube(Task):
    """The right arm picks up the cube and hands it to the left arm, which holds it in the air."""

    robot, name, scene = "aloha2", "transfer_cube", "transfer_cube.xml"
    max_steps = 450
    instructions = (
        "transfer the cube to the left arm",
        "pick up the red cube with the right arm and hand it to the left arm",
        "hand the cube over from the right gripper to the left gripper",
        "pass the block from right to left",
    )
    summary = "right arm picks the cube, hands it to the left arm (bimanual)"
    HALF = 0.02

    def randomize(self, rng):
        xy = rng.uniform([0.05, -0.10], [0.20, 0.10])
        self.physics.set_free_body("cube", [xy[0], xy[1], self.HALF], yaw_quat(rng.uniform(-0.5, 0.5)))
        return {}

    def success(self):
        p = self.physics
        cube = p.body_geoms("cube")
        left = p.body_geoms("left/left_finger_link") | p.body_geoms("left/right_finger_link")
        right = p.body_geoms("right/left_finger_link") | p.body_geoms("right/right_finger_link")
        table = {p.model.geom("table").id}
        return (
            p.body_pos("cube")[2] > 0.10
            and p.touching(cube, left)
            and not p.touching(cube, right)
            and not p.touching(cube, table)
        )

    def make_expert(self):
        p = self.physics
        c = p.body_pos("cube")
        yaw = nearest_grasp_yaw(body_yaw(p.body_xmat("cube")), np.pi / 2)
        grasp = top_down(yaw, DOWN)
        meet = np.array([0.0, 0.0, 0.22])  # cube centre at the handover
        r_hand = top_down(np.pi / 2, TO_LEFT)  # fingers along y, pointing at the left arm
        l_hand = top_down(np.pi / 2 + np.pi / 2, TO_RIGHT)  # fingers vertical: grip the cube's top and bottom
        depth = 0.01  # the cube centre sits this far beyond the site along the approach
        wps = [
            Waypoint(
                1.2,
                {"right": (c + [0, 0, 0.10], grasp), "left": (meet + [-0.20, 0, 0], l_hand)},
                {"right/gripper": 1.0, "left/gripper": 1.0},
            ),
            Waypoint(1.8, {"right": (c + [0, 0, depth], grasp)}),
            Waypoint(2.3, {}, {"right/gripper": 0.0}),
            Waypoint(2.8, {"right": (c + [0, 0, 0.12], grasp)}),
            Waypoint(3.8, {"right": (meet - depth * TO_LEFT, r_hand)}),
            Waypoint(4.3, {"left": (meet - 0.08 * TO_RIGHT, l_hand)}),
            Waypoint(4.9, {"left": (meet - depth * TO_RIGHT, l_hand)}),
            Waypoint(5.4, {}, {"left/gripper": 0.0}),
            Waypoint(5.9, {}, {"right/gripper": 1.0}),
            Waypoint(6.6, {"right": (meet + [0.15, 0, 0.05], r_hand)}),
            Waypoint(7.4, {"left": (meet + [-0.10, 0, 0.03], l_hand)}),
        ]
        return _expert(self, wps)


TASKS = (TransferCube,)
