"""Third-party gymnasium environments through a small mapping, so `vla eval` can run policies in them.

A mapping (JSON file or dict) names which observation keys hold camera images and the joint state:

    {"env_id": "MyEnv-v0",                      # gymnasium id (or give the env object directly)
     "env_kwargs": {},                           # passed to gymnasium.make
     "import": "my_package.envs",                # optional module that registers the env
     "cameras": {"pixels/front": "cam_external", "pixels/wrist": "cam_wrist"},   # obs key (a/b = nested) -> camera
     "state": "agent_pos",                       # obs key of the joint state
     "action_dim": 8,                            # size of the env's action vector
     "instruction": "put the cube in the bin",  # used when the env gives none
     "success_key": "is_success",                # info key that says the episode succeeded (at any step)
     "end_on_success": false,                    # true: end the episode at the first successful step
     "max_steps": 300,                           # optional cap on control steps (`vla eval --max-steps` wins)
     "control_hz": 10,                           # optional: the env's control rate (default: the robot's)
     # joint order and units, when the env's differ from the policy's robot (all optional):
     "state_index": [1, 0, 2],                   # policy state[i] = env state[state_index[i]] * state_scale[i]
     "state_scale": 0.0174533,                   #                   + state_offset[i]   (here: degrees -> rad)
     "state_offset": 0.0,
     "action_index": [1, 0, 2],                  # env action[j] = policy action[action_index[j]] * action_scale[j]
     "action_scale": 57.2958,                    #                 + action_offset[j]    (here: rad -> degrees)
     "action_offset": 0.0}

A scale or offset is one number (every dimension) or a list with one per dimension: per policy state dimension
(``len(state_index)``, else the env state's size) for ``state_*``, per env action dimension (``action_dim``) for
``action_*``. Success is counted at any step, as LeRobot counts ``is_success``: an episode that succeeded once
is a success even when the env keeps running.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import gymnasium as gym
import numpy as np

from vla_sdk.errors import InputError, NotFound, UsageError

REQUIRED = ("cameras", "state", "action_dim")
KNOWN = (
    *REQUIRED,
    "env_id",
    "env_kwargs",
    "import",
    "instruction",
    "success_key",
    "end_on_success",
    "max_steps",
    "control_hz",
    "state_index",
    "state_scale",
    "state_offset",
    "action_index",
    "action_scale",
    "action_offset",
)


def load_mapping(spec: str | Path | dict) -> dict:
    if isinstance(spec, dict):
        mapping, where = spec, "mapping"
    else:
        where = str(spec)
        try:
            mapping = json.loads(Path(spec).read_text())
        except FileNotFoundError:
            raise NotFound(f"--env-map {spec}: no such file") from None
        except json.JSONDecodeError as e:
            raise UsageError(f"--env-map {spec}: not valid JSON ({e})") from None
    validate(mapping, where)
    return mapping


def _is_int(x) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool)


def _index(mapping: dict, field: str, where: str) -> np.ndarray | None:
    value = mapping.get(field)
    if value is None:
        return None
    if not isinstance(value, list | tuple) or not value or not all(_is_int(i) and i >= 0 for i in value):
        raise InputError(f"{where}: {field!r} must be a non-empty list of indices >= 0, got {value!r}")
    return np.asarray(value, int)


def _affine(mapping: dict, field: str, where: str, size: int | None) -> np.ndarray | float:
    value = mapping.get(field, 1.0 if field.endswith("_scale") else 0.0)
    try:
        arr = np.asarray(value, np.float64) if isinstance(value, int | float | list | tuple) else None
    except (TypeError, ValueError):  # a list of strings or of lists of different lengths
        arr = None
    if arr is None or isinstance(value, bool) or arr.ndim > 1 or not np.all(np.isfinite(arr)):
        raise InputError(f"{where}: {field!r} must be a finite number or a list of finite numbers, got {value!r}")
    if field.endswith("_scale") and np.any(arr == 0):
        raise InputError(f"{where}: {field!r} must not contain 0 (it would erase a joint), got {value!r}")
    if arr.ndim == 1 and size is not None and len(arr) != size:
        raise InputError(f"{where}: {field!r} has {len(arr)} values; it needs one number or {size} (one per dimension)")
    return arr if arr.ndim else float(arr)


def validate(mapping: dict, where: str = "mapping") -> None:
    """Types and sizes of every field that can be checked without the env; errors name the field."""
    if not isinstance(mapping, dict):
        raise InputError(f"{where}: a mapping is a JSON object, got {type(mapping).__name__}")
    missing = [k for k in REQUIRED if k not in mapping]
    if missing:
        raise InputError(f"{where}: missing field(s) {missing}; a mapping needs {list(REQUIRED)}")
    unknown = sorted(k for k in set(mapping) - set(KNOWN) if not str(k).startswith("_"))  # "_note": a comment
    if unknown:
        raise InputError(f"{where}: unknown field(s) {unknown}; a mapping knows {list(KNOWN)}")
    if not isinstance(mapping["cameras"], dict) or not mapping["cameras"]:
        raise InputError(f"{where}: 'cameras' must map observation keys to camera names")
    if not _is_int(mapping["action_dim"]) or mapping["action_dim"] < 1:
        raise InputError(f"{where}: 'action_dim' must be an integer >= 1, got {mapping['action_dim']!r}")
    for field in ("max_steps",):
        if field in mapping and (not _is_int(mapping[field]) or mapping[field] < 1):
            raise InputError(f"{where}: {field!r} must be an integer >= 1, got {mapping[field]!r}")
    if "control_hz" in mapping and not (
        isinstance(mapping["control_hz"], int | float) and not isinstance(mapping["control_hz"], bool)
    ):
        raise InputError(f"{where}: 'control_hz' must be a number, got {mapping['control_hz']!r}")
    if "control_hz" in mapping and not mapping["control_hz"] > 0:
        raise InputError(f"{where}: 'control_hz' must be > 0, got {mapping['control_hz']!r}")
    if not isinstance(mapping.get("end_on_success", False), bool):
        raise InputError(f"{where}: 'end_on_success' must be true or false, got {mapping['end_on_success']!r}")
    state_index = _index(mapping, "state_index", where)
    for field in ("state_scale", "state_offset"):
        _affine(mapping, field, where, None if state_index is None else len(state_index))
    action_index = _index(mapping, "action_index", where)
    if action_index is not None and len(action_index) != mapping["action_dim"]:
        raise InputError(
            f"{where}: 'action_index' has {len(action_index)} entries; it needs one per env action dimension "
            f"(action_dim {mapping['action_dim']})"
        )
    for field in ("action_scale", "action_offset"):
        _affine(mapping, field, where, mapping["action_dim"])


def _get(obs: dict, key: str):
    cur = obs
    for part in key.split("/"):
        if not isinstance(cur, dict) or part not in cur:
            raise KeyError(part)
        cur = cur[part]
    return cur


class MappedEnv:
    """Wraps a third-party env: ``reset/step`` return this SDK's raw observation {"images", "state", "instruction"}."""

    def __init__(self, mapping: dict, env: gym.Env | None = None):
        validate(mapping)
        self.mapping = mapping
        if env is None:
            if mapping.get("import"):
                importlib.import_module(mapping["import"])
            if "env_id" not in mapping:
                raise InputError("the mapping needs 'env_id' (or pass an env object)")
            env = gym.make(mapping["env_id"], **mapping.get("env_kwargs", {}))
        self.env = env
        self.cameras = tuple(mapping["cameras"].values())
        self.action_dim = int(mapping["action_dim"])
        shape = getattr(env.action_space, "shape", None)
        if shape != (self.action_dim,):
            raise InputError(f"the mapping says action_dim {self.action_dim}; the env's action space has shape {shape}")
        self.success_key = mapping.get("success_key", "is_success")
        self.end_on_success = bool(mapping.get("end_on_success", False))
        self.max_steps = mapping.get("max_steps")  # None: until the env terminates or truncates
        # joint order and units: env -> policy for the state, policy -> env for actions (None: as they are)
        self.state_index, self.action_index = _index(mapping, "state_index", ""), _index(mapping, "action_index", "")
        self.state_scale = _affine(mapping, "state_scale", "", None)
        self.state_offset = _affine(mapping, "state_offset", "", None)
        self.action_scale = _affine(mapping, "action_scale", "", None)
        self.action_offset = _affine(mapping, "action_offset", "", None)

    def check(self, policy_cameras, state_dim: int) -> None:
        """Fail before any episode when the mapping cannot feed the policy."""
        missing = sorted(set(policy_cameras) - set(self.cameras))
        if missing:
            raise InputError(f"the policy needs camera(s) {missing}; the mapping provides {list(self.cameras)}")
        obs, _ = self.env.reset(seed=0)
        env_state = self._env_state(obs)
        if env_state.ndim != 1:
            raise InputError(
                f"mapping 'state' ({self.mapping['state']}) gives shape {env_state.shape}; expected a vector"
            )
        if self.state_index is not None and self.state_index.max() >= len(env_state):
            raise InputError(
                f"mapping 'state_index' {self.state_index.tolist()} refers to index {self.state_index.max()}; the env "
                f"state ({self.mapping['state']}) has {len(env_state)} values"
            )
        size = len(env_state) if self.state_index is None else len(self.state_index)
        for field in ("state_scale", "state_offset"):
            value = getattr(self, field)
            if np.ndim(value) and len(value) != size:
                raise InputError(f"mapping {field!r} has {len(value)} values; the mapped state has {size}")
        raw = self.convert(obs)
        if raw["state"].shape != (state_dim,):
            via = "" if self.state_index is None else f" through 'state_index' {self.state_index.tolist()}"
            raise InputError(
                f"mapping 'state' ({self.mapping['state']}){via} gives shape {raw['state'].shape}; the policy "
                f"expects ({state_dim},)"
            )
        if self.action_index is None and self.action_dim != state_dim:
            raise InputError(
                f"the env takes {self.action_dim}-D actions; the policy produces {state_dim}-D actions (map them with "
                f"'action_index')"
            )
        if self.action_index is not None and self.action_index.max() >= state_dim:
            raise InputError(
                f"mapping 'action_index' {self.action_index.tolist()} refers to index {self.action_index.max()}; the "
                f"policy produces {state_dim}-D actions"
            )

    def _env_state(self, obs: dict) -> np.ndarray:
        try:
            return np.asarray(_get(obs, self.mapping["state"]), np.float64)
        except KeyError:
            raise InputError(f"mapping state key {self.mapping['state']!r} is not in the observation") from None

    def to_env_action(self, action) -> np.ndarray:
        """The policy's action [A] -> the env's action [action_dim] (order, then scale and offset)."""
        a = np.asarray(action, np.float64)
        if self.action_index is not None:
            a = a[self.action_index]
        return a * self.action_scale + self.action_offset

    def convert(self, obs: dict) -> dict:
        images = {}
        for key, cam in self.mapping["cameras"].items():
            try:
                img = np.asarray(_get(obs, key))
            except KeyError:
                raise InputError(f"mapping camera key {key!r} is not in the observation (keys: {list(obs)})") from None
            if img.ndim != 3 or img.shape[-1] != 3 or img.dtype != np.uint8:
                raise InputError(
                    f"observation {key!r} must be uint8 [h, w, 3] for camera {cam!r}, got {img.dtype} {img.shape}"
                )
            images[cam] = img
        state = self._env_state(obs)
        if self.state_index is not None:
            state = state[self.state_index]
        state = state * self.state_scale + self.state_offset
        instruction = obs.get("instruction") if isinstance(obs, dict) else None
        return {"images": images, "state": state, "instruction": instruction or self.mapping.get("instruction", "")}

    def reset(self, seed: int):
        obs, info = self.env.reset(seed=seed)
        return self.convert(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(self.to_env_action(action).astype(np.float32))
        return self.convert(obs), reward, terminated, truncated, info

    def success(self, info: dict) -> bool:
        return bool(info.get(self.success_key, info.get("success", False)))

    def close(self) -> None:
        self.env.close()
