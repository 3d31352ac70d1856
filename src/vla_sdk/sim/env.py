"""Gymnasium environments for every registered task.

Observation: ``{"images": {camera: uint8[h, w, 3]}, "state": float32[A], "instruction": str}`` with only the
cameras asked for, at the size asked for (no "images" key when no camera is asked for). Action: the embodiment's
action vector [A] (absolute joint positions in radians, gripper openings in [0, 1]). Actions beyond the declared
limits are clipped to them (``info["clipped"]`` says when); a wrong shape or a non-finite value raises
``ValueError``. The same seed gives the same episode, bit for bit. An episode terminates on success (reward 1) and
is truncated at the task's time limit.
"""

from __future__ import annotations

import string
from collections.abc import Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from vla_sdk.assets import sim_dir
from vla_sdk.embodiment import load_embodiment
from vla_sdk.episode import tile
from vla_sdk.errors import InputError, RuntimeFailure
from vla_sdk.sim.physics import Physics
from vla_sdk.sim.render import CameraRenderer
from vla_sdk.sim.tasks import get_task

INSTRUCTION_CHARSET = string.ascii_letters + string.digits + " .,;:'!?-()"


class VlaEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"]}

    def __init__(
        self,
        task: str = "aloha2/transfer_cube",
        cameras: Sequence[str] | None = None,  # None: all of the embodiment's cameras; []: no images
        image_size: tuple[int, int] | None = None,  # (height, width); None: the embodiment's default
        render_mode: str | None = None,
        render_size: tuple[int, int] = (240, 320),  # per-camera size of render() frames
        control_hz: float | None = None,  # None: the embodiment's control rate
        variables: dict | None = None,  # task variables fixed for every episode (Task.choices), e.g. {"color": "blue"}
        instruction: str | None = None,  # the instruction of every episode instead of a random phrasing: a
        # str.format template over the task's variables ("put the {color} cube away")
    ):
        task_cls = get_task(task)
        self.spec_name = task_cls.full_name()
        self.embodiment = emb = load_embodiment(task_cls.robot)
        self.physics = Physics(sim_dir() / task_cls.robot / task_cls.scene, emb, control_hz)
        self.control_hz = self.physics.control_hz
        self.task = task_cls(self.physics)
        self.fixed_variables = _check_variables(task_cls, variables or {})
        self.fixed_instruction = _check_instruction(task_cls, instruction)
        self.cameras = tuple(emb.cameras if cameras is None else cameras)
        unknown = [c for c in self.cameras if c not in emb.cameras]
        if unknown:
            raise InputError(f"{self.spec_name}: unknown camera(s) {unknown}; {emb.name} has {list(emb.cameras)}")
        self.image_size = tuple(image_size or emb.image_size)
        if render_mode not in (None, "rgb_array"):
            raise InputError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode, self.render_size = render_mode, tuple(render_size)
        self._renderer = CameraRenderer(self.physics.model, self.cameras, self.image_size)
        self._video_renderer: CameraRenderer | None = None
        self.metadata = {**self.metadata, "render_fps": self.control_hz}

        h, w = self.image_size
        lo, hi = self.physics.state_bounds()
        obs_spaces = {
            "state": spaces.Box(lo.astype(np.float32), hi.astype(np.float32), dtype=np.float32),
            "instruction": spaces.Text(max_length=256, min_length=1, charset=INSTRUCTION_CHARSET),
        }
        if self.cameras:  # no "images" key when no camera is asked for
            obs_spaces["images"] = spaces.Dict({c: spaces.Box(0, 255, (h, w, 3), np.uint8) for c in self.cameras})
        self.observation_space = spaces.Dict(obs_spaces)
        self.action_space = spaces.Box(emb.low.astype(np.float32), emb.high.astype(np.float32), dtype=np.float32)
        # the time limit is in seconds of the task's design; in steps it scales with the control rate
        self.max_steps = round(task_cls.max_steps * self.control_hz / emb.control_hz)
        self.steps = 0
        self.instruction = ""

    # ---- gymnasium API ------------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.physics.reset(np.array(self.embodiment.home))
        # the scene is drawn as always (the same seed, the same layout); fixed variables then replace the drawn ones
        self.task.variables = {**(self.task.randomize(self.np_random) or {}), **self.fixed_variables}
        self.instruction = self.task.instruction(self.np_random)  # drawn either way: the rng stays in step
        if self.fixed_instruction is not None:
            self.instruction = self.fixed_instruction.format(**self.task.variables)
        import mujoco

        mujoco.mj_forward(self.physics.model, self.physics.data)
        self.steps = 0
        return self._obs(), {"success": False, "instruction": self.instruction}

    def step(self, action):
        action, clipped = self.check_action(action)
        self.physics.apply(action)
        self.steps += 1
        if not np.all(np.isfinite(self.physics.data.qpos)):
            raise RuntimeFailure(f"{self.spec_name}: the simulation diverged (non-finite state) at step {self.steps}")
        success = bool(self.task.success())
        truncated = self.steps >= self.max_steps and not success
        info = {"success": success, "is_success": success, "clipped": clipped, "step": self.steps}
        return self._obs(), float(success), success, truncated, info

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        return self.render_frame()

    def close(self):
        self._renderer.close()
        if self._video_renderer is not None:
            self._video_renderer.close()

    # ---- helpers ------------------------------------------------------------------------------------------------
    def check_action(self, action) -> tuple[np.ndarray, bool]:
        """Validate an action: shape [A], finite; clip to the declared limits. Returns (action, was_clipped)."""
        a = np.asarray(action, dtype=np.float64)
        emb = self.embodiment
        if a.shape != (emb.action_dim,):
            raise InputError(
                f"{self.spec_name}: action must have shape ({emb.action_dim},) "
                f"[{', '.join(emb.names)}], got shape {a.shape}"
            )
        bad = ~np.isfinite(a)
        if bad.any():
            names = [emb.names[i] for i in np.flatnonzero(bad)]
            raise InputError(
                f"{self.spec_name}: action has non-finite values in {names}; expected shape "
                f"({emb.action_dim},) of finite numbers"
            )
        clipped = np.clip(a, emb.low, emb.high)
        return clipped, bool(np.any(clipped != a))

    def render_frame(self, cameras: tuple[str, ...] | None = None) -> np.ndarray:
        """Cameras (default: all of the embodiment's) at ``render_size``, tiled into one uint8 frame (for videos)."""
        cameras = tuple(cameras or self.embodiment.cameras)
        if self._video_renderer is None or self._video_renderer.cameras != cameras:
            if self._video_renderer is not None:
                self._video_renderer.close()
            self._video_renderer = CameraRenderer(self.physics.model, cameras, self.render_size)
        imgs = self._video_renderer.render(self.physics.data)
        return tile([imgs[c] for c in cameras])

    def make_expert(self):
        """The task's scripted expert for the current episode (call after reset)."""
        return self.task.make_expert()

    def success(self) -> bool:
        return bool(self.task.success())

    def _obs(self) -> dict:
        obs = {"state": self.physics.state().astype(np.float32), "instruction": self.instruction}
        if self.cameras:
            obs["images"] = self._renderer.render(self.physics.data)
        return obs


def make(task: str, **kwargs) -> VlaEnv:
    """Construct the environment for ``ROBOT/TASK`` (same as ``gymnasium.make("vla_sdk/ROBOT/TASK")``, unwrapped)."""
    return VlaEnv(task, **kwargs)


def _check_variables(task_cls, variables: dict) -> dict:
    """``variables`` checked against the task's :attr:`Task.choices` (names and values)."""
    name = task_cls.full_name()
    for key, value in variables.items():
        if key not in task_cls.choices:
            known = ", ".join(task_cls.choices) or "none"
            raise InputError(f"{name}: no task variable {key!r} to set (settable: {known})")
        if value not in task_cls.choices[key]:
            raise InputError(f"{name}: variable {key!r} must be one of {list(task_cls.choices[key])}, got {value!r}")
    return dict(variables)


def _check_instruction(task_cls, template: str | None) -> str | None:
    """An instruction template that formats with the task's variables (any of their values)."""
    if template is None:
        return None
    sample = {k: v[0] for k, v in task_cls.choices.items()}
    try:
        text = template.format(**sample)
    except (KeyError, IndexError, ValueError) as e:
        known = ", ".join("{" + k + "}" for k in task_cls.choices) or "none"
        raise InputError(
            f"--instruction {template!r}: cannot fill it for {task_cls.full_name()} ({type(e).__name__}: {e}); "
            f"its placeholders: {known}"
        ) from e
    if not text.strip():
        raise InputError("--instruction: the instruction is empty")
    return template
