"""Franka FR3 tasks and their scripted experts.

World frame: table top z = 0; the arm's base at the origin, facing +x. The hand is driven by its ``tcp`` site
(tool z = approach, tool y = finger axis); at home the tcp is at (0.46, 0, 0.40), pointing down with the fingers
along world -y. The finger pads reach 0.012 m beyond the tcp and 0.052 m either side of it when open.
"""

from __future__ import annotations

import numpy as np

from vla_sdk.sim.expert import Waypoint, WaypointExpert, top_down
from vla_sdk.sim.ik import EndEffectorIK
from vla_sdk.sim.task import Task
from vla_sdk.sim.tasks.common import (
    body_yaw,
    free_speed,
    in_frame,
    nearest_grasp_yaw,
    sample_layout,
    set_mocap,
    yaw_quat,
)

DOWN = np.array([0.0, 0.0, -1.0])
HOME_YAW = -np.pi / 2  # finger-axis yaw of the hand at home
GRIPPER = ("fr3_leftfinger", "fr3_rightfinger", "fr3_hand")
CUBE_HALF = 0.025
REST_SPEED = 0.05  # m/s: below this an object counts as resting

# The bin (sim/fr3/pick_place.xml, pick_color.xml): a mocap body at the bin centre on the table.
BIN_INNER_HALF = 0.08
BIN_FLOOR_TOP = 0.01
BIN_WALL_TOP = 0.06
BIN_GEOMS = ("bin_floor", "bin_wall_px", "bin_wall_nx", "bin_wall_py", "bin_wall_ny")
BIN_XY = ([0.42, -0.18], [0.58, 0.18])  # where the bin centre is drawn
CUBE_XY = ([0.35, -0.22], [0.65, 0.22])  # where cube centres are drawn
BIN_CLEAR = 0.20  # min distance cube centre - bin centre: the open hand never touches the bin while grasping
CUBE_CLEAR = 0.12  # min distance between cube centres: open finger pads miss the neighbours


def _hand(yaw: float) -> np.ndarray:
    return top_down(yaw, DOWN, tool_axis="z")


def _wrap(angle: float, period: float) -> float:
    """``angle`` wrapped into [-period / 2, period / 2)."""
    return float((angle + period / 2) % period - period / 2)


class PickPlaceExpert:
    """Grasps a free body top-down, lifts it, then carries it so that its centre reaches ``goal`` (optionally at
    yaw ``goal_yaw`` modulo the cube's quarter-turn symmetry), lowers it, releases it and backs off.

    The place phase is planned when the lift ends, from the object's measured pose in the hand, so a grasp that
    is off-centre or a cube that slipped still lands where it should.
    """

    GRASP_DEPTH = 0.003  # the tcp goes this far below the object's centre: pad tips 0.01 m above the table
    CARRY_Z = 0.17  # object centre height while carrying: clears bin walls and other objects

    def __init__(self, task: Task, body: str, goal: np.ndarray, goal_yaw: float | None = None, align: bool = True):
        self.physics, self.body = task.physics, body
        self.goal, self.goal_yaw = np.asarray(goal, float), goal_yaw
        p = self.physics
        c = p.body_pos(body)
        # align=False keeps the home hand yaw: the open fingers (0.104 m) span a 0.05 m cube at any yaw (diagonal
        # 0.071 m) and closing squares it between the pads. Demonstrations then depend on where the cube is, not
        # on its orientation, which a small policy cannot read from a few pixels.
        self.yaw = nearest_grasp_yaw(body_yaw(p.body_xmat(body)), HOME_YAW) if align else HOME_YAW
        grasp = _hand(self.yaw)
        grasp_pos = c + [0.0, 0.0, -self.GRASP_DEPTH]
        wps = [
            Waypoint(1.2, {"hand": (grasp_pos + [0.0, 0.0, 0.12], grasp)}, {"gripper": 1.0}),
            Waypoint(1.8, {"hand": (grasp_pos, grasp)}),
            Waypoint(2.2, {}, {"gripper": 0.0}),
            Waypoint(2.4, {}),
            Waypoint(2.9, {"hand": (grasp_pos + [0.0, 0.0, self.CARRY_Z - c[2]], grasp)}),
        ]
        self.inner = WaypointExpert(EndEffectorIK(p.embodiment), p.dt, p.state(), wps)
        self.placing = False

    def _place_waypoints(self) -> list[Waypoint]:
        p = self.physics
        tcp, rot = p.site_pos("tcp"), p.site_xmat("tcp")
        offset = rot.T @ (p.body_pos(self.body) - tcp)  # the object's centre in the tool frame
        yaw = self.yaw
        if self.goal_yaw is not None:  # turn the hand so the held cube ends at goal_yaw (mod a quarter turn)
            yaw += _wrap(self.goal_yaw - body_yaw(p.body_xmat(self.body)), np.pi / 2)
        rot = _hand(yaw)
        place = self.goal - rot @ offset  # tcp position that puts the object's centre at the goal
        above = place + [0.0, 0.0, self.CARRY_Z - self.goal[2]]
        return [
            Waypoint(1.1, {"hand": (above, rot)}),
            Waypoint(1.7, {"hand": (place, rot)}),
            Waypoint(2.1, {}, {"gripper": 1.0}),
            Waypoint(2.6, {"hand": (place + [0.0, 0.0, 0.10], rot)}),
        ]

    def act(self) -> np.ndarray:
        if not self.placing and self.inner.done:
            self.placing = True
            self.inner.plan(self._place_waypoints())
        return self.inner.act()


class _Fr3Task(Task):
    """Shared checks for FR3 tasks with free cubes."""

    robot = "fr3"

    def released(self, body: str) -> bool:
        p = self.physics
        hand = set().union(*(p.body_geoms(b) for b in GRIPPER))
        return not p.touching(p.body_geoms(body), hand)

    def resting(self, body: str) -> bool:
        """Still and not held by the gripper."""
        return free_speed(self.physics, body) < REST_SPEED and self.released(body)


class _BinTask(_Fr3Task):
    """A task with the bin of sim/fr3/pick_place.xml."""

    def inside_bin(self, body: str) -> bool:
        """``body``'s centre is inside the bin's inner volume (up to one cube above the walls)."""
        x, y, z = in_frame(self.physics, body, "bin")
        return bool(max(abs(x), abs(y)) < BIN_INNER_HALF and BIN_FLOOR_TOP < z < BIN_WALL_TOP + CUBE_HALF)

    def in_bin(self, body: str) -> bool:
        """``body`` lies in the bin: its centre below the wall tops, touching the bin, still and released."""
        p = self.physics
        bin_geoms = {p.model.geom(g).id for g in BIN_GEOMS}
        return (
            self.inside_bin(body)
            and in_frame(p, body, "bin")[2] < BIN_WALL_TOP
            and p.touching(p.body_geoms(body), bin_geoms)
            and self.resting(body)
        )

    def bin_goal(self) -> np.ndarray:
        """Where the expert releases a cube: its centre 0.01 m above the middle of the bin floor."""
        return self.physics.body_pos("bin") + [0.0, 0.0, BIN_FLOOR_TOP + CUBE_HALF + 0.01]


class PickPlace(_BinTask):
    """Pick up the red cube and put it into the bin."""

    name, scene = "pick_place", "pick_place.xml"
    max_steps = 130
    instructions = (
        "put the cube in the bin",
        "pick up the red cube and place it in the bin",
        "place the block into the container",
        "move the red block into the bin",
        "drop the cube into the box",
    )
    summary = "pick up a cube and put it into a bin (both at random positions)"

    def randomize(self, rng):
        bin_xy, cube_xy = sample_layout(rng, [BIN_XY[0], CUBE_XY[0]], [BIN_XY[1], CUBE_XY[1]], [[0, BIN_CLEAR]] * 2)
        set_mocap(self.physics, "bin", [bin_xy[0], bin_xy[1], 0.0])
        self.physics.set_free_body("cube", [cube_xy[0], cube_xy[1], CUBE_HALF], yaw_quat(rng.uniform(-np.pi, np.pi)))
        return {}

    def success(self):
        return self.in_bin("cube")

    def make_expert(self):
        return PickPlaceExpert(self, "cube", self.bin_goal(), align=False)


class Stack(_Fr3Task):
    """Stack the small red cube on the larger green cube."""

    name, scene = "stack", "stack.xml"
    max_steps = 130
    instructions = (
        "stack the red block on the green block",
        "put the red cube on top of the green cube",
        "place the small red cube onto the big green one",
        "stack the red cube on the green cube",
        "pick up the red block and set it on the green block",
    )
    summary = "stack a small red cube on a larger green cube (both at random positions)"
    GREEN_HALF = 0.03

    def randomize(self, rng):
        red, green = sample_layout(rng, [CUBE_XY[0]] * 2, [CUBE_XY[1]] * 2, [[0, 0.15], [0.15, 0]])
        p = self.physics
        p.set_free_body("red_cube", [red[0], red[1], CUBE_HALF], yaw_quat(rng.uniform(-np.pi, np.pi)))
        p.set_free_body("green_cube", [green[0], green[1], self.GREEN_HALF], yaw_quat(rng.uniform(-np.pi, np.pi)))
        return {}

    def success(self):
        p = self.physics
        x, y, z = in_frame(p, "red_cube", "green_cube")
        on_top = max(abs(x), abs(y)) < self.GREEN_HALF and abs(z - (self.GREEN_HALF + CUBE_HALF)) < 0.01
        table = {p.model.geom("table").id}
        green_down = abs(p.body_pos("green_cube")[2] - self.GREEN_HALF) < 0.005 and p.touching(
            p.body_geoms("green_cube"), table
        )
        return bool(
            on_top
            and green_down
            and p.touching(p.body_geoms("red_cube"), p.body_geoms("green_cube"))
            and not p.touching(p.body_geoms("red_cube"), table)
            and self.resting("red_cube")
            and self.resting("green_cube")
        )

    def make_expert(self):
        p = self.physics
        goal = p.body_pos("green_cube") + [0.0, 0.0, self.GREEN_HALF + CUBE_HALF + 0.004]
        return PickPlaceExpert(self, "red_cube", goal, goal_yaw=body_yaw(p.body_xmat("green_cube")))


class PickColor(_BinTask):
    """Put the cube of the named colour (one of three) into the bin."""

    name, scene = "pick_color", "pick_color.xml"
    max_steps = 130
    language_conditioned = True
    instructions = (
        "put the {color} block in the bin",
        "pick up the {color} cube and place it in the bin",
        "move the {color} block into the container",
        "place the {color} cube into the box",
        "drop the {color} block into the bin",
    )
    summary = "put the cube of the named colour (red, green or blue) into the bin; the others stay out"
    COLORS = ("red", "green", "blue")
    choices = {"color": COLORS}

    def randomize(self, rng):
        n = len(self.COLORS)
        dist = np.full((n + 1, n + 1), CUBE_CLEAR)
        dist[0, :] = dist[:, 0] = BIN_CLEAR
        pts = sample_layout(rng, [BIN_XY[0]] + [CUBE_XY[0]] * n, [BIN_XY[1]] + [CUBE_XY[1]] * n, dist)
        set_mocap(self.physics, "bin", [pts[0, 0], pts[0, 1], 0.0])
        for color, xy in zip(self.COLORS, pts[1:], strict=True):
            self.physics.set_free_body(f"{color}_cube", [xy[0], xy[1], CUBE_HALF], yaw_quat(rng.uniform(-np.pi, np.pi)))
        return {"color": self.COLORS[int(rng.integers(n))]}

    def success(self):
        target = f"{self.variables['color']}_cube"
        others = [f"{c}_cube" for c in self.COLORS if f"{c}_cube" != target]
        return self.in_bin(target) and not any(self.inside_bin(b) for b in others)

    def make_expert(self):
        return PickPlaceExpert(self, f"{self.variables['color']}_cube", self.bin_goal())


class PushExpert:
    """Pushes a cube across the table, non-prehensile, until its centre is at ``goal`` [2] (closed loop).

    The fingers, a little open, form a two-pad paddle (pads 0.036 m apart, centre to centre) held across the push
    direction, pad tips 0.018 m above the table. The hand comes down behind the cube, pushes it along the line
    from its centre to the goal, then measures where it went: when it is more than ``TOL`` from the goal (it slid
    sideways or turned), the hand backs off, lifts, goes round behind the cube for the new direction and pushes
    again (at most ``MAX_PUSHES`` pushes), then lifts clear so the cube rests free.
    """

    PADDLE = 0.3  # gripper opening while pushing: each finger 0.012 m out, pads at +-0.018 m
    PAD_HALF = 0.009  # half thickness of a finger pad along the push
    PUSH_Z = 0.03  # tcp height while pushing (pad tips at 0.018 m, pads up to 0.062 m: the cube's face)
    ABOVE_Z = 0.12  # tcp height when moving round the cube
    STANDOFF = 0.025  # gap between pads and cube face before a push
    SPEED = 0.15  # m/s of the hand along a push
    TOL = 0.012  # the expert pushes again when the cube's centre is farther than this from the goal
    MAX_PUSHES = 4

    def __init__(self, task: Task, body: str, goal: np.ndarray):
        self.physics, self.body = task.physics, body
        self.goal = np.asarray(goal, float)[:2]
        p = self.physics
        self.inner = WaypointExpert(EndEffectorIK(p.embodiment), p.dt, p.state(), [])
        self.pushes = 0
        self.phase = "approach"
        pre, rot = self._behind()
        self.inner.plan(
            [
                Waypoint(1.3, {"hand": (pre + [0.0, 0.0, self.ABOVE_Z - self.PUSH_Z], rot)}, {"gripper": self.PADDLE}),
                Waypoint(1.9, {"hand": (pre, rot)}),
            ]
        )

    def _direction(self) -> np.ndarray:
        d = self.goal - self.physics.body_pos(self.body)[:2]
        return np.array([*(d / max(np.linalg.norm(d), 1e-9)), 0.0])

    def _behind(self) -> tuple[np.ndarray, np.ndarray]:
        """The tcp pose from which a push toward the goal starts: behind the cube, pads across the push."""
        c, d = self.physics.body_pos(self.body), self._direction()
        pre = c - d * (CUBE_HALF + self.PAD_HALF + self.STANDOFF)
        pre[2] = self.PUSH_Z
        # finger axis across the push, the pads being symmetric: the yaw within a half turn of the home yaw (a push
        # along world y would be the tie between two hand yaws half a turn apart; the layouts avoid it)
        yaw = np.arctan2(d[1], d[0]) + np.pi / 2
        return pre, _hand(nearest_grasp_yaw(yaw, HOME_YAW, np.pi))

    def _error(self) -> float:
        return float(np.linalg.norm(self.goal - self.physics.body_pos(self.body)[:2]))

    def _push(self) -> list[Waypoint]:
        p = self.physics
        d = self._direction()
        start, rot = self.inner.ik.pose("hand")
        # the pads end where the cube's face is when its centre is at the goal; the arm's tracking error (commanded
        # minus actual tcp) is taken out so that the pads, not the command, get there
        end = np.array([*self.goal, self.PUSH_Z]) - d * (CUBE_HALF + self.PAD_HALF)
        end += (start - p.site_pos("tcp")) * [1.0, 1.0, 0.0]
        duration = max(0.4, float(np.linalg.norm((end - start)[:2])) / self.SPEED)
        self.pushes += 1
        return [Waypoint(duration, {"hand": (end, rot)}), Waypoint(duration + 0.3, {})]

    def _next(self) -> list[Waypoint]:
        pos, rot = self.inner.ik.pose("hand")
        if self.phase in ("approach", "reapproach"):
            self.phase = "push"
            return self._push()
        if self.phase == "push" and self._error() > self.TOL and self.pushes < self.MAX_PUSHES:
            self.phase = "reapproach"
            back = pos - self._toward_cube(pos) * 0.02  # off the cube before lifting: no drag
            pre, new_rot = self._behind()
            lift = [0.0, 0.0, self.ABOVE_Z - self.PUSH_Z]
            return [
                Waypoint(0.3, {"hand": (back, rot)}),
                Waypoint(0.8, {"hand": (back + lift, rot)}),
                Waypoint(1.6, {"hand": (pre + lift, new_rot)}),
                Waypoint(2.2, {"hand": (pre, new_rot)}),
            ]
        if self.phase == "push":
            self.phase = "retreat"
            return [Waypoint(0.8, {"hand": (pos + [0.0, 0.0, 0.10], rot)})]
        return []

    def _toward_cube(self, pos: np.ndarray) -> np.ndarray:
        """Unit horizontal vector from the hand at ``pos`` toward the cube: backing off moves against it."""
        v = (self.physics.body_pos(self.body) - pos) * [1.0, 1.0, 0.0]
        return v / max(np.linalg.norm(v), 1e-9)

    def act(self) -> np.ndarray:
        if self.inner.done and self.phase != "done":
            wps = self._next()
            if wps:
                self.inner.plan(wps)
            else:
                self.phase = "done"
        return self.inner.act()


class PushToTarget(_Fr3Task):
    """Push the cube (without grasping it) until its centre lies inside the target disc drawn on the table."""

    name, scene = "push_to_target", "push_to_target.xml"
    max_steps = 200
    held_out = True
    instructions = (
        "push the red cube onto the green target",
        "slide the block into the green circle",
        "push the cube to the target on the table",
        "move the red block onto the green disc by pushing it",
        "nudge the cube until it sits on the green mark",
    )
    summary = "push a cube (not grasping it) into a target disc drawn on the table (both at random positions)"
    TARGET_RADIUS = 0.04  # the disc of sim/fr3/push_to_target.xml
    XY = ([0.38, -0.20], [0.62, 0.20])  # where cube and target centres are drawn
    DISTANCE = (0.15, 0.28)  # cube-to-target distance range: every episode needs a real push
    # the push direction stays this far (rad) from world +-y, where the expert's hand yaw would jump by a half
    # turn between neighbouring layouts (the two-pad paddle is symmetric): demonstrations take one route
    AWAY_FROM_Y = np.deg2rad(15.0)

    def randomize(self, rng):
        for _ in range(1000):
            cube, target = rng.uniform(self.XY[0], self.XY[1], size=(2, 2))
            d = target - cube
            dist = np.linalg.norm(d)
            if self.DISTANCE[0] <= dist <= self.DISTANCE[1] and abs(d[0]) > dist * np.sin(self.AWAY_FROM_Y):
                break
        else:
            raise RuntimeError("could not place the cube and the target")
        set_mocap(self.physics, "target", [target[0], target[1], 0.0])
        self.physics.set_free_body("cube", [cube[0], cube[1], CUBE_HALF], yaw_quat(rng.uniform(-np.pi, np.pi)))
        return {}

    def on_target(self) -> bool:
        """The cube's centre is over the target disc."""
        p = self.physics
        return bool(np.linalg.norm((p.body_pos("cube") - p.body_pos("target"))[:2]) < self.TARGET_RADIUS)

    def success(self):
        p = self.physics
        flat = abs(p.body_pos("cube")[2] - CUBE_HALF) < 0.005 and p.touching(
            p.body_geoms("cube"), {p.model.geom("table").id}
        )
        return bool(self.on_target() and flat and self.resting("cube"))

    def make_expert(self):
        return PushExpert(self, "cube", self.physics.body_pos("target"))


TASKS = (PickPlace, Stack, PickColor, PushToTarget)
