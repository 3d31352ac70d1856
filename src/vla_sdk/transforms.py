"""One path from raw robot data to model inputs, used by training and at deployment (so they cannot drift).

Raw observation: ``{"images": {camera: uint8[h, w, 3]}, "state": [A_robot], "instruction": str}`` (or batched with
a leading B). Model input: :class:`vla_sdk.model.Observation` fields as numpy arrays: images uint8 [B, H, W, 3] at the
model's size (resized with antialiased bilinear interpolation, ``jax.image.resize(method="linear")``), state
normalized with the checkpoint's statistics and zero-padded to the model's width with a mask, instruction tokens.
Actions go the same way (normalize + pad) for training and back (slice + unnormalize) at inference.
Delta actions (``delta_mask``, openpi's choice for joint-space arms): the masked dims of every action in a chunk are
stored relative to the state the chunk was predicted from (``a - s``) and the state is added back at inference;
grippers stay absolute. The statistics of ``"action"`` are then those of the deltas.
Cameras are bound by name: a missing or extra camera is an error listing expected and given names.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import jax
import numpy as np

from vla_sdk.errors import InputError
from vla_sdk.model.config import ModelConfig, image_hw
from vla_sdk.model.tokenizer import ByteTokenizer
from vla_sdk.schema import ENV_STATE

STD_FLOOR = 1e-3  # dimensions that never moved in the data are scaled as if their std were this


def state_offset(state: np.ndarray, delta_mask: np.ndarray) -> np.ndarray:
    """What delta actions are relative to: the state [..., A_robot] in the masked dims, zeros elsewhere, as
    [..., 1, A_robot] so it broadcasts over a chunk's steps."""
    return np.where(delta_mask, np.asarray(state, np.float32), 0.0)[..., None, :].astype(np.float32)


@dataclass(frozen=True)
class Normalizer:
    """(x - mean) / std per dimension; statistics come from the training split and travel with checkpoints."""

    mean: np.ndarray  # [D]
    std: np.ndarray  # [D]

    @classmethod
    def from_stats(cls, stats: dict, key: str) -> Normalizer:
        if key not in stats:
            raise InputError(f"normalization statistics have no {key!r} entry (have {sorted(stats)})")
        s = stats[key]
        return cls(np.asarray(s["mean"], np.float32), np.maximum(np.asarray(s["std"], np.float32), STD_FLOOR))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, np.float32) - self.mean) / self.std).astype(np.float32)

    def inverse(self, y: np.ndarray) -> np.ndarray:
        return (np.asarray(y, np.float32) * self.std + self.mean).astype(np.float32)


def resize_images(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 [..., h, w, 3] -> uint8 [..., H, W, 3] for ``size`` (H, W) (antialiased bilinear); a no-op at the right
    size. An image of another aspect ratio is stretched, as in training: the frame cache resizes the same way."""
    size = image_hw(size)  # an int is a square
    if images.shape[-3:-1] == size:
        return images
    shape = (*images.shape[:-3], *size, images.shape[-1])
    out = jax.image.resize(np.asarray(images, np.float32), shape, method="linear", antialias=True)
    return np.clip(np.round(np.asarray(out)), 0, 255).astype(np.uint8)


class PolicyTransform:
    """Raw observations/actions of one robot <-> inputs/outputs of one model. See the module docstring."""

    def __init__(self, config: ModelConfig, action_names: list[str], stats: dict, delta_mask=None, cameras=None):
        self.config = config
        # the robot's cameras: the model's camera slots it fills (a multi-robot model has slots other robots fill;
        # those are masked out, never fed as images)
        self.cameras = tuple(config.cameras if cameras is None else cameras)
        unknown = sorted(set(self.cameras) - set(config.cameras))
        if unknown or not self.cameras:
            raise InputError(f"cameras {list(self.cameras)}: the model's camera slots are {list(config.cameras)}")
        self.action_names = list(action_names)
        self.robot_dim = len(self.action_names)
        self.delta_mask = None if delta_mask is None or not any(delta_mask) else np.asarray(delta_mask, bool)
        if self.delta_mask is not None and self.delta_mask.shape != (self.robot_dim,):
            raise InputError(f"delta_mask has {self.delta_mask.shape[0]} entries, the robot has {self.robot_dim} dims")
        for width, what in ((config.state_dim, "state_dim"), (config.action_dim, "action_dim")):
            if self.robot_dim > width:
                raise InputError(
                    f"the robot has {self.robot_dim} action/state dimensions, the model's {what} is only {width}"
                )
        self.state_norm = Normalizer.from_stats(stats, "observation.state")
        self.action_norm = Normalizer.from_stats(stats, "action")
        for norm, key in ((self.state_norm, "observation.state"), (self.action_norm, "action")):
            if norm.mean.shape != (self.robot_dim,):
                raise InputError(
                    f"statistics for {key!r} have {norm.mean.shape[0]} dimensions, the robot has {self.robot_dim}"
                )
        self.env_norm = Normalizer.from_stats(stats, ENV_STATE) if ENV_STATE in stats else None
        self.tokenizer = ByteTokenizer(config.max_tokens)
        self._reported: set[str] = set()  # instructions already reported as truncated

    def check_cameras(self, given) -> None:
        expected = list(self.cameras)
        if sorted(given) != sorted(expected):
            raise InputError(
                f"cameras do not match the policy: expected {expected}, given {sorted(given)} "
                f"(missing {sorted(set(expected) - set(given))}, extra {sorted(set(given) - set(expected))})"
            )

    def observation(self, images: dict, state: np.ndarray, instruction) -> dict:
        """Model inputs (numpy, batched) from one raw observation or a batch of them."""
        self.check_cameras(images)
        state = np.asarray(state, np.float32)
        single = state.ndim == 1
        if single:
            state, images, instruction = state[None], {c: np.asarray(v)[None] for c, v in images.items()}, [instruction]
        if state.shape[-1] != self.robot_dim:
            raise InputError(
                f"state has {state.shape[-1]} dimensions, expected {self.robot_dim} ({', '.join(self.action_names)})"
            )
        b = state.shape[0]
        for c in self.cameras:
            img = np.asarray(images[c])
            if img.dtype != np.uint8 or img.ndim != 4 or img.shape[0] != b or img.shape[-1] != 3:
                want = "one uint8 image [h, w, 3]" if single else f"uint8 images [{b}, h, w, 3]"
                got = f"{img.dtype}{list(img.shape[1:] if single else img.shape)}"
                raise InputError(f"camera {c!r}: expected {want}, got {got}")
        self.report_truncation(instruction)
        tokens, token_mask = self.tokenizer.encode_batch(list(instruction))
        return {
            "images": {c: resize_images(np.asarray(images[c]), self.config.image_size) for c in self.cameras},
            "image_masks": {c: np.ones((b,), bool) for c in self.cameras},
            "state": self.pad(self.state_norm(state), self.config.state_dim),
            "state_mask": np.broadcast_to(self.dim_mask(self.config.state_dim), (b, self.config.state_dim)).copy(),
            "tokens": tokens,
            "token_mask": token_mask,
            "action_mask": np.broadcast_to(self.dim_mask(self.config.action_dim), (b, self.config.action_dim)).copy(),
        }

    def report_truncation(self, instructions) -> None:
        """Warn (once per text) about an instruction longer than the model takes: its tail is cut off."""
        for text in instructions:
            if text in self._reported:
                continue
            lost = self.tokenizer.lost_bytes(text)
            if lost:
                self._reported.add(text)
                cut = self.tokenizer.decode(*self.tokenizer.encode(text))
                warnings.warn(
                    f"instruction {text!r} is {lost} byte(s) longer than the model takes (max_tokens "
                    f"{self.config.max_tokens}, BOS and EOS included): it is cut to {cut!r}",
                    stacklevel=3,
                )

    def actions(self, actions: np.ndarray, state: np.ndarray | None = None) -> np.ndarray:
        """Raw action chunks [..., T, A_robot] (and the states [..., A_robot] they start from) -> normalized,
        zero-padded [..., T, A]."""
        return self.pad(self.action_norm(self.to_delta(actions, state)), self.config.action_dim)

    def unactions(self, model_actions, state: np.ndarray | None = None) -> np.ndarray:
        """Model output [..., T, A] (and the state [..., A_robot] it was predicted from) -> raw [..., T, A_robot]."""
        raw = self.action_norm.inverse(np.asarray(model_actions, np.float32)[..., : self.robot_dim])
        return raw if self.delta_mask is None else raw + self._offset(state)

    def env_state(self, env_state: np.ndarray) -> np.ndarray:
        """Raw object positions [..., E] -> the normalized training target of ``--env-state-weight``."""
        if self.env_norm is None:
            raise InputError(f"the statistics have no {ENV_STATE!r} entry to normalize the environment state with")
        return self.env_norm(env_state)

    def to_delta(self, actions: np.ndarray, state: np.ndarray | None) -> np.ndarray:
        """Absolute action chunks [..., T, A_robot] -> what the model predicts (deltas in the masked dims)."""
        actions = np.asarray(actions, np.float32)
        return actions if self.delta_mask is None else actions - self._offset(state)

    def _offset(self, state) -> np.ndarray:
        if state is None:
            raise InputError("this policy predicts actions relative to the state (delta actions): pass the state")
        return state_offset(state, self.delta_mask)

    def dim_mask(self, width: int) -> np.ndarray:
        return np.arange(width) < self.robot_dim

    @staticmethod
    def pad(x: np.ndarray, width: int) -> np.ndarray:
        out = np.zeros((*x.shape[:-1], width), np.float32)
        out[..., : x.shape[-1]] = x
        return out
