"""One simulated robot in a scene: the MuJoCo model/data plus the embodiment's action and state mapping."""

from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np

from vla_sdk.embodiment import Embodiment
from vla_sdk.errors import InputError


class Physics:
    """MuJoCo model + data for a scene, driven by embodiment actions at the embodiment's control rate.

    ``apply(action)`` takes a validated action [A] in embodiment units; ``state()`` returns [A] in the same units.
    """

    def __init__(self, xml_path: Path, embodiment: Embodiment, control_hz: float | None = None):
        self.embodiment = embodiment
        self.model = mujoco.MjModel.from_xml_path(str(xml_path))
        self.data = mujoco.MjData(self.model)
        self.control_hz = float(control_hz or embodiment.control_hz)
        self.n_substeps = max(1, round(1.0 / (self.control_hz * self.model.opt.timestep)))
        if abs(self.n_substeps * self.model.opt.timestep * self.control_hz - 1) > 1e-6:
            step = self.model.opt.timestep
            raise InputError(f"control rate {self.control_hz:g} Hz is not a whole number of {step} s physics steps")
        m = self.model
        self._act_ids = np.array([_id(m, mujoco.mjtObj.mjOBJ_ACTUATOR, d.actuator, xml_path) for d in embodiment.dims])
        self._qadr = np.array(
            [m.jnt_qposadr[_id(m, mujoco.mjtObj.mjOBJ_JOINT, d.joint, xml_path)] for d in embodiment.dims]
        )
        self._mirror_qadr = {
            i: m.jnt_qposadr[_id(m, mujoco.mjtObj.mjOBJ_JOINT, d.mirror_joint, xml_path)]
            for i, d in enumerate(embodiment.dims)
            if d.mirror_joint
        }
        self._body_geoms: dict[str, frozenset[int]] = {}
        # the scene's objects: bodies on a free joint (what the robot moves) and mocap bodies (what a task places)
        free = {int(m.jnt_bodyid[j]) for j in range(m.njnt) if m.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE}
        self._objects = [b for b in range(m.nbody) if b in free or m.body_mocapid[b] >= 0]
        grip = embodiment.gripper_indices
        self._grip = np.array(grip, dtype=int)
        self._f0 = np.array([embodiment.dims[i].finger_range[0] for i in grip])
        self._f1 = np.array([embodiment.dims[i].finger_range[1] for i in grip])

    @property
    def dt(self) -> float:
        """Seconds per control step."""
        return self.n_substeps * self.model.opt.timestep

    def to_ctrl(self, action: np.ndarray) -> np.ndarray:
        """Embodiment action [A] -> actuator targets [A] (grippers mapped to finger positions in metres)."""
        ctrl = np.asarray(action, dtype=np.float64).copy()
        ctrl[self._grip] = self._f0 + ctrl[self._grip] * (self._f1 - self._f0)
        return ctrl

    def reset(self, action: np.ndarray) -> None:
        """Reset the whole scene and put the robot at rest at ``action`` (joint positions and gripper openings)."""
        mujoco.mj_resetData(self.model, self.data)
        target = self.to_ctrl(action)
        self.data.qpos[self._qadr] = target
        for i, adr in self._mirror_qadr.items():
            self.data.qpos[adr] = target[i]
        self.data.ctrl[self._act_ids] = target
        mujoco.mj_forward(self.model, self.data)

    def apply(self, action: np.ndarray) -> None:
        """Set the actuator targets from ``action`` [A] and advance one control period."""
        self.data.ctrl[self._act_ids] = self.to_ctrl(action)
        mujoco.mj_step(self.model, self.data, nstep=self.n_substeps)

    def state(self) -> np.ndarray:
        """Robot state [A]: joint positions (rad) and gripper openings (normalized like the action)."""
        q = self.data.qpos[self._qadr].astype(np.float64)
        q[self._grip] = (q[self._grip] - self._f0) / (self._f1 - self._f0)
        return q

    def state_bounds(self, margin: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
        """Bounds [A] that ``state()`` stays within: the MJCF joint ranges in state units, widened by ``margin``
        (joint limits are soft in MuJoCo and may be exceeded by a little under load)."""
        jids = [self.model.joint(d.joint).id for d in self.embodiment.dims]
        lo, hi = self.model.jnt_range[jids, 0].copy(), self.model.jnt_range[jids, 1].copy()
        span = self._f1 - self._f0
        lo[self._grip], hi[self._grip] = (lo[self._grip] - self._f0) / span, (hi[self._grip] - self._f0) / span
        return lo - margin, hi + margin

    def object_names(self) -> list[str]:
        """Names of :meth:`object_positions`' entries: ``<body>.x``, ``<body>.y``, ``<body>.z`` per object."""
        return [f"{self.model.body(b).name}.{axis}" for b in self._objects for axis in "xyz"]

    def object_positions(self) -> np.ndarray:
        """World positions of the scene's objects (free-jointed and mocap bodies, in model order), flat [3K]:
        privileged simulator state, recorded as ``observation.environment_state`` for training-only targets."""
        return self.data.xpos[self._objects].reshape(-1).copy()

    # ---- scene helpers used by tasks and experts -------------------------------------------------------------
    def body_pos(self, name: str) -> np.ndarray:
        return self.data.body(name).xpos.copy()

    def body_xmat(self, name: str) -> np.ndarray:
        return self.data.body(name).xmat.reshape(3, 3).copy()

    def site_pos(self, name: str) -> np.ndarray:
        return self.data.site(name).xpos.copy()

    def site_xmat(self, name: str) -> np.ndarray:
        return self.data.site(name).xmat.reshape(3, 3).copy()

    def set_free_body(self, joint: str, pos, quat=(1.0, 0.0, 0.0, 0.0)) -> None:
        """Place a free-jointed body (world position, wxyz quaternion) at rest."""
        j = self.model.joint(joint)
        adr, vadr = j.qposadr[0], j.dofadr[0]
        self.data.qpos[adr : adr + 3] = pos
        self.data.qpos[adr + 3 : adr + 7] = quat
        self.data.qvel[vadr : vadr + 6] = 0.0

    def body_geoms(self, body: str) -> frozenset[int]:
        """Geom ids of a body (cached: success predicates ask every step, the model never changes)."""
        if body not in self._body_geoms:
            bid = self.model.body(body).id
            self._body_geoms[body] = frozenset(np.flatnonzero(self.model.geom_bodyid == bid).tolist())
        return self._body_geoms[body]

    def touching(self, geoms_a: set[int], geoms_b: set[int]) -> bool:
        for c in self.data.contact[: self.data.ncon]:
            if (c.geom1 in geoms_a and c.geom2 in geoms_b) or (c.geom2 in geoms_a and c.geom1 in geoms_b):
                return True
        return False


def _id(model: mujoco.MjModel, kind: mujoco.mjtObj, name: str, xml_path: Path) -> int:
    i = mujoco.mj_name2id(model, kind, name)
    if i < 0:
        raise InputError(f"{xml_path}: the embodiment names {kind.name[6:].lower()} {name!r}, which the model lacks")
    return i
