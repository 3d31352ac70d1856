"""Model configuration (:class:`ModelConfig`) and named presets.

A config is a frozen, JSON-able dataclass: ``ModelConfig.from_dict(json.loads(s))`` round-trips ``to_dict()``.
Presets live in the plain dict :data:`PRESETS`; :func:`get_preset` names the valid ones when a name is unknown.
Adapt a preset to a robot with ``cfg.replace(cameras=("cam_high", "cam_left_wrist"), ...)``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import jax.numpy as jnp

from vla_sdk.errors import UsageError
from vla_sdk.registry import lookup

VISION = ("patches", "keypoints")  # image tokens: ViT patches, or spatial-softmax keypoints (few, precise)
HEADS = ("flow", "l1")  # action heads: flow matching action expert (pi0-style), L1 chunk regression (ACT-style)
DTYPES = ("float32", "bfloat16")  # compute dtypes; parameters are always float32
TIME_SAMPLING = ("beta", "uniform")  # flow-matching training time distribution


def image_hw(value) -> tuple[int, int]:
    """``96``, ``[240, 320]``, ``(240, 320)`` or ``"240x320"`` -> ``(height, width)``; anything else is refused."""
    if isinstance(value, str):
        parts = value.lower().split("x")
        if len(parts) == 2 and all(p.strip().isdigit() for p in parts):
            value = [int(p) for p in parts]
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    ok = isinstance(value, (tuple, list)) and len(value) == 2
    ok = ok and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
    if not ok:
        raise UsageError(
            f"ModelConfig.image_size must be a positive int, [height, width] or 'HxW' (e.g. 96, [240, 320] or "
            f"'240x320'), got {value!r}"
        )
    return int(value[0]), int(value[1])


@dataclass(frozen=True)
class ModelConfig:
    """Every size and choice of a :class:`vla_sdk.model.VLA`; validated on construction."""

    # --- inputs ---
    cameras: tuple[str, ...] = ("cam_external", "cam_wrist")  # camera names, in the order their tokens are laid out
    image_size: tuple[int, int] = (32, 32)  # (height, width) of input images [B, H, W, 3], values in [-1, 1]; an
    # int n (older checkpoints, --model image_size=96) means (n, n), "240x320" means (240, 320)
    state_dim: int = 32  # S: robot state padded to this width
    action_dim: int = 32  # A: actions padded to this width
    horizon: int = 8  # T: actions per predicted chunk
    max_tokens: int = 16  # L: instruction length in byte tokens (BOS and EOS included)
    text_patch: int = 1  # > 1: every text_patch consecutive bytes (each embedded with its position) are merged by
    # one linear layer into one prefix token, so an instruction costs L / text_patch tokens, not L: the whole
    # instruction of every phrasing is kept (no byte is dropped) at a fraction of the prefix transformer's cost
    # (a 20-token instruction beside 48 image tokens instead of 80). 1: a token per byte (earlier checkpoints)
    proprio: bool = True  # False: the model never sees the robot state (its token says "no state"); the cameras
    # carry everything. Delta actions still start from the state. Against a policy that recognises each training
    # episode by its state and replays it instead of looking (causal confusion / copycat)
    env_state_dim: int = 0  # > 0: a training-only readout regresses this many environment-state values (object
    # positions) from the image tokens (train --env-state-weight); actions never depend on it
    # --- vision encoder (shared by all cameras) ---
    stem_patch: int = 1  # > 1: the stem starts with a stem_patch x stem_patch patch embedding (stride stem_patch,
    # space-to-depth + one dense layer + GELU): a camera's native resolution at a fraction of a strided 3x3 conv's
    # cost on a CPU (a 3x3 conv over 3 colour channels vectorizes badly). 1: no patch embedding
    stem_layers: int = 1  # 3x3 stride-2 GELU convs after it (each halves the resolution)
    stem_channels: int = 16  # channels of the conv stem
    patch_size: int = 8  # total stride from pixels to tokens: (H / patch_size) * (W / patch_size) tokens per camera
    vision: str = "patches"  # one of VISION; "keypoints": `keypoints` tokens per camera, each where + what
    keypoints: int = 16  # vision="keypoints": spatial-softmax keypoints (= tokens) per camera
    keypoint_sharpness: float = 1.0  # vision="keypoints": the maps' logits are multiplied by this. A map at 1.0 can
    # stay diffuse over the whole image and barely move with a small object; at 10 it peaks where its feature
    # does (a feature that responds to a few-pixel object then moves a keypoint with it). Earlier checkpoints: 1.0
    # --- prefix transformer over [image tokens, state token, language tokens] ---
    d_model: int = 64  # width of the prefix transformer
    num_layers: int = 2  # pre-LN transformer blocks
    num_heads: int = 4  # attention heads (d_model must be divisible by it)
    mlp_ratio: float = 4.0  # MLP hidden width = mlp_ratio * width (GELU MLP)
    # --- action head ---
    head: str = "flow"  # one of HEADS
    expert_d_model: int = 64  # width of the action decoder (flow: action expert; l1: query decoder)
    expert_layers: int = 2  # decoder blocks: self-attention, cross-attention to the prefix, MLP
    expert_heads: int = 4  # decoder attention heads (expert_d_model must be divisible by it)
    flow_steps: int = 10  # flow head: Euler integration steps in sample_actions
    time_sampling: str = "beta"  # flow head: training time t ~ Beta(1.5, 1) (as pi0) or Uniform(0, 1)
    # --- numerics ---
    dtype: str = "float32"  # activation dtype, one of DTYPES ("bfloat16": bf16 matmuls, float32 params and loss)

    def __post_init__(self):
        object.__setattr__(self, "cameras", tuple(self.cameras))
        object.__setattr__(self, "image_size", image_hw(self.image_size))
        ints = ("stem_patch", "state_dim", "action_dim", "horizon", "max_tokens", "stem_channels", "patch_size")
        ints += ("keypoints", "d_model", "num_layers", "num_heads", "expert_d_model", "expert_layers", "expert_heads")
        ints += ("flow_steps", "text_patch")
        for name in ints:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UsageError(f"ModelConfig.{name} must be a positive int, got {value!r}")
        if not self.cameras:
            raise UsageError("ModelConfig.cameras must name at least one camera")
        if not isinstance(self.proprio, bool):
            raise UsageError(f"ModelConfig.proprio must be true or false, got {self.proprio!r}")
        if not (isinstance(self.keypoint_sharpness, (int, float)) and 0 < self.keypoint_sharpness <= 100):
            raise UsageError(f"ModelConfig.keypoint_sharpness must be in (0, 100], got {self.keypoint_sharpness!r}")
        if len(set(self.cameras)) != len(self.cameras):
            raise UsageError(f"ModelConfig.cameras has duplicate names: {self.cameras}")
        if not isinstance(self.env_state_dim, int) or isinstance(self.env_state_dim, bool) or self.env_state_dim < 0:
            raise UsageError(f"ModelConfig.env_state_dim must be an int >= 0, got {self.env_state_dim!r}")
        if not isinstance(self.stem_layers, int) or self.stem_layers < 0:
            raise UsageError(f"ModelConfig.stem_layers must be an int >= 0, got {self.stem_layers!r}")
        if self.max_tokens < 2:
            raise UsageError(f"ModelConfig.max_tokens must be >= 2 (BOS and EOS), got {self.max_tokens}")
        if self.max_tokens % self.text_patch:
            raise UsageError(
                f"ModelConfig.max_tokens ({self.max_tokens}) must be divisible by text_patch ({self.text_patch})"
            )
        if self.patch_size % self.stem_stride:
            raise UsageError(
                f"ModelConfig.patch_size ({self.patch_size}) must be divisible by the stem's stride, stem_patch * "
                f"2**stem_layers ({self.stem_stride})"
            )
        if self.vision == "keypoints" and any(side % self.stem_stride for side in self.image_size):
            raise UsageError(
                f"ModelConfig.image_size {self.image_size[0]}x{self.image_size[1]}: height and width must be "
                f"divisible by the stem's stride, stem_patch * 2**stem_layers ({self.stem_stride})"
            )
        if any(side % self.patch_size for side in self.image_size):
            raise UsageError(
                f"ModelConfig.image_size {self.image_size[0]}x{self.image_size[1]}: height and width must be "
                f"divisible by patch_size ({self.patch_size})"
            )
        if self.d_model % 4:
            raise UsageError(f"ModelConfig.d_model ({self.d_model}) must be divisible by 4 (2-D sincos positions)")
        if self.expert_d_model % 2:
            raise UsageError(f"ModelConfig.expert_d_model ({self.expert_d_model}) must be even (sincos time embedding)")
        if self.d_model % self.num_heads:
            raise UsageError(f"ModelConfig.d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})")
        if self.expert_d_model % self.expert_heads:
            raise UsageError(
                f"ModelConfig.expert_d_model ({self.expert_d_model}) must be divisible by "
                f"expert_heads ({self.expert_heads})"
            )
        if not self.mlp_ratio > 0:
            raise UsageError(f"ModelConfig.mlp_ratio must be > 0, got {self.mlp_ratio}")
        for name, valid in (("vision", VISION), ("head", HEADS), ("dtype", DTYPES), ("time_sampling", TIME_SAMPLING)):
            if getattr(self, name) not in valid:
                raise UsageError(f"ModelConfig.{name} must be one of {valid}, got {getattr(self, name)!r}")

    # --- derived sizes ---
    @property
    def stem_stride(self) -> int:
        """Pixels per cell of the stem's output feature map."""
        return self.stem_patch * 2**self.stem_layers

    @property
    def tokens_per_camera(self) -> int:
        """N: image tokens per camera."""
        if self.vision == "keypoints":
            return self.keypoints
        h, w = self.image_size
        return (h // self.patch_size) * (w // self.patch_size)

    @property
    def text_tokens(self) -> int:
        """Prefix tokens of the instruction: max_tokens bytes in groups of text_patch."""
        return self.max_tokens // self.text_patch

    @property
    def prefix_len(self) -> int:
        """Prefix tokens: all cameras' image tokens, one state token, the language tokens."""
        return len(self.cameras) * self.tokens_per_camera + 1 + self.text_tokens

    @property
    def compute_dtype(self):
        return jnp.bfloat16 if self.dtype == "bfloat16" else jnp.float32

    # --- (de)serialization ---
    def replace(self, **changes) -> ModelConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """JSON-able dict of every field (tuples become lists)."""
        out = dataclasses.asdict(self)
        out["cameras"] = list(self.cameras)
        out["image_size"] = list(self.image_size)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error that lists the valid ones."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise UsageError(f"unknown ModelConfig field(s) {unknown}; valid fields: {', '.join(sorted(names))}")
        return cls(**data)


PRESETS: dict[str, ModelConfig] = {
    # CPU-test size (~0.37M parameters): 2 cameras at 32x32 px -> 4x4 tokens each, d_model 64, 2 + 2 layers, horizon 8.
    "vla-tiny": ModelConfig(flow_steps=4),
    # The compact policy (~16.4M parameters): 2 cameras at 128 px -> 8x8 tokens each, horizon 50, 32-wide
    # state/action, 48 instruction bytes (177 prefix tokens), 5 flow steps. Sized for one chunk in well under
    # 150 ms on a 2-core CPU (about 105 ms p50 measured with the cores shared with other jobs; see bench.py).
    "vla-s": ModelConfig(
        image_size=128,
        horizon=50,
        max_tokens=48,
        stem_layers=2,
        stem_channels=32,
        patch_size=16,
        d_model=384,
        num_layers=6,
        num_heads=6,
        expert_d_model=256,
        expert_layers=3,
        expert_heads=4,
        flow_steps=5,
    ),
    # Trains on a laptop CPU (~0.6M parameters): spatial-softmax keypoints instead of patches (16 tokens per
    # camera that say where something is to sub-pixel precision and what it looks like), L1 chunk regression
    # (one forward pass per chunk), 64 px images, horizon 20. The preset of the first closed-loop results.
    "vla-xs": ModelConfig(
        image_size=64,
        horizon=20,
        max_tokens=16,
        stem_layers=2,
        stem_channels=16,
        vision="keypoints",
        keypoints=16,
        d_model=96,
        num_layers=2,
        num_heads=4,
        head="l1",
        expert_d_model=96,
        expert_layers=2,
        expert_heads=4,
    ),
    # Sees with the cameras users have (~1.3M parameters): a camera at its native 240x320 (4:3, not squashed), a
    # 4x4 patch-embedding stem (cheap on a CPU at full resolution) and one stride-2 conv, then 40-px patch tokens
    # (6 x 8 = 48 per camera) whose 5x5-cell patchify encodes where in the patch a feature is; the transformer
    # attends to them by content. From cam_high alone it places the 8-px transfer-cube cube within 0.5 cm, where
    # spatial-softmax keypoints had learned little after the same 1,000 probe steps (docs/training.md).
    # L1 chunk head, chunk 100 (ACT's; whole chunks executed: from cam_high alone, transfer cube 85 % against 52 % with
    # chunk 40, docs/results.md). 80 instruction bytes, merged 4 at a time into 20 tokens: every phrasing of every
    # shipped task fits whole (the longest is 72 bytes + BOS/EOS; tests/model/test_model_config.py checks), and the
    # train step is 1.29x faster than with 48 one-byte tokens (tools/bench_train.py, 2-core CPU).
    "vla-m": ModelConfig(
        image_size=(240, 320),
        horizon=100,
        max_tokens=80,
        text_patch=4,
        stem_patch=4,
        stem_layers=1,
        stem_channels=32,
        patch_size=40,
        vision="patches",
        d_model=128,
        num_layers=3,
        num_heads=4,
        head="l1",
        expert_d_model=128,
        expert_layers=2,
        expert_heads=4,
    ),
}
# The base policy (`vla train` fine-tunes it by default once shipped; tools/build_base.py trains it): vla-m's encoder
# (one fixed camera per robot at its native 240x320, 40-px patch tokens) and instruction (80 bytes in 20 tokens,
# every phrasing whole, so the instruction is a real input), with a wider and deeper transformer for seven tasks of
# two robots.
PRESETS["vla-base"] = PRESETS["vla-m"].replace(d_model=192, num_layers=4, num_heads=6)


def get_preset(name: str) -> ModelConfig:
    """The preset called ``name``; an unknown name raises an error listing the valid ones and close matches."""
    return lookup(PRESETS, "preset", name)
