"""Third-party gymnasium environments through a small mapping, so `vla eval` can run policies in them.

A mapping (JSON file or dict) names which observation keys hold camera images and the joint state:

    {"env_id": "MyEnv-v0",                      # gymnasium id (or give the env object directly)
     "env_kwargs": {},                           # passed to gymnasium.make
     "import": "my_package.envs",                # optional module that registers the env
     "cameras": {"pixels/front": "cam_external", "pixels/wrist": "cam_wrist"},   # obs key (a/b = nested) -> camera
     "state": "agent_pos",                       # obs key of the joint state
     "action_dim": 8,                            # size of the env's action vector
     "instruction": "put the cube in the bin",  # used when the env gives none
     "success_key": "is_success"}                # info key that says the episode succeeded
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import gymnasium as gym
import numpy as np

from vla_sdk.errors import InputError, NotFound, UsageError

REQUIRED = ("cameras", "state", "action_dim")


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
    missing = [k for k in REQUIRED if k not in mapping]
    if missing:
        raise InputError(f"{where}: missing field(s) {missing}; a mapping needs {list(REQUIRED)}")
    if not isinstance(mapping["cameras"], dict) or not mapping["cameras"]:
        raise InputError(f"{where}: 'cameras' must map observation keys to camera names")
    return mapping


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

    def check(self, policy_cameras, state_dim: int) -> None:
        """Fail before any episode when the mapping cannot feed the policy."""
        missing = sorted(set(policy_cameras) - set(self.cameras))
        if missing:
            raise InputError(f"the policy needs camera(s) {missing}; the mapping provides {list(self.cameras)}")
        obs, _ = self.env.reset(seed=0)
        raw = self.convert(obs)
        if raw["state"].shape != (state_dim,):
            raise InputError(
                f"mapping 'state' ({self.mapping['state']}) gives shape {raw['state'].shape}; the policy "
                f"expects ({state_dim},)"
            )
        if self.action_dim != state_dim:
            raise InputError(f"the env takes {self.action_dim}-D actions; the policy produces {state_dim}-D actions")

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
        try:
            state = np.asarray(_get(obs, self.mapping["state"]), np.float64)
        except KeyError:
            raise InputError(f"mapping state key {self.mapping['state']!r} is not in the observation") from None
        instruction = obs.get("instruction") if isinstance(obs, dict) else None
        return {"images": images, "state": state, "instruction": instruction or self.mapping.get("instruction", "")}

    def reset(self, seed: int):
        obs, info = self.env.reset(seed=seed)
        return self.convert(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(np.asarray(action, np.float32))
        return self.convert(obs), reward, terminated, truncated, info

    def success(self, info: dict) -> bool:
        return bool(info.get(self.success_key, info.get("success", False)))

    def close(self) -> None:
        self.env.close()
