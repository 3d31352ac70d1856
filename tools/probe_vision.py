"""Can a policy's vision encoder learn where the task's object is, from a given camera?

Before spending hours training a policy, check that its camera and encoder can see what the task is about: this
renders the task's first frame for ``--frames`` random layouts (real MuJoCo), then trains the model's own vision
encoder (the preset's, with any ``--model`` changes) plus one linear layer to regress the object body's table
position (x, y) from one camera's image, and reports the error on held-out layouts. A normalised MSE near 1.0 means
the encoder learned nothing about the object in ``--steps`` steps (it predicts the average layout); near 0 means
the object is found. The policy gets the same pixels but a weaker signal (the action loss), so a camera that fails
here will not teach the policy where the object is.

    python tools/probe_vision.py --task aloha2/transfer_cube --body cube --camera cam_high --image-size 240 320
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402

from vla_sdk.model.config import get_preset, image_hw  # noqa: E402
from vla_sdk.model.vision import make_vision_encoder  # noqa: E402
from vla_sdk.sim.env import VlaEnv  # noqa: E402
from vla_sdk.train.config import parse_model_fields  # noqa: E402


def layouts(task: str, camera: str, body: str, size, frames: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """First-frame images ``[N, H, W, 3]`` uint8 of ``frames`` layouts (``size``: (H, W) or one int for a square)
    and the body's (x, y) ``[N, 2]``."""
    env = VlaEnv(task, cameras=[camera], image_size=image_hw(size))
    try:
        env.physics.body_pos(body)
    except KeyError:
        raise SystemExit(f"--body: {task} has no body named {body!r}") from None
    images, xy = [], []
    for k in range(frames):
        obs, _ = env.reset(seed=seed + k)
        images.append(obs["images"][camera])
        xy.append(env.physics.body_pos(body)[:2])
    env.close()
    return np.stack(images), np.stack(xy).astype(np.float32)


class Probe(nnx.Module):
    """The vision encoder and one linear layer from all its tokens to (x, y)."""

    def __init__(self, config, rngs: nnx.Rngs):
        self.encoder = make_vision_encoder(config, rngs)
        self.out = nnx.Linear(config.tokens_per_camera * config.d_model, 2, rngs=rngs)

    def __call__(self, images):
        tokens = self.encoder(images)
        return self.out(tokens.reshape(tokens.shape[0], -1).astype(jnp.float32))


def probe(
    images: np.ndarray, xy: np.ndarray, config, steps: int, batch: int, lr: float, seed: int, n_train: int | None = None
) -> dict:
    """Train on the first ``n_train`` layouts (default 80 %), report on the rest: normalised MSE and RMS error in cm
    on the held-out layouts, and the RMS error on the training ones (far below it: memorised, not learned)."""
    x = images.astype(np.float32) / 127.5 - 1.0
    mean, std = xy.mean(0), xy.std(0) + 1e-6
    y = (xy - mean) / std
    n_train = int(0.8 * len(x)) if n_train is None else n_train
    model = Probe(config, nnx.Rngs(seed))
    opt = nnx.Optimizer(model, optax.adam(lr), wrt=nnx.Param)

    @nnx.jit
    def step(model, opt, xb, yb):
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(xb) - yb) ** 2))(model)
        opt.update(model, grads)
        return loss

    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for _ in range(steps):
        idx = rng.integers(0, n_train, batch)
        step(model, opt, x[idx], y[idx])
    seconds = time.perf_counter() - start
    pred = np.concatenate([np.asarray(model(x[i : i + 64])) for i in range(0, len(x), 64)])
    err = (pred - y) * std
    rms = lambda e: float(100 * np.sqrt(np.mean(np.sum(e**2, axis=1))))  # noqa: E731
    return {
        "training_layouts": n_train,
        "held_out_layouts": len(x) - n_train,
        "normalised_mse": float(np.mean((pred[n_train:] - y[n_train:]) ** 2)),
        "rms_error_cm": rms(err[n_train:]),
        "training_rms_error_cm": rms(err[:n_train]),
        "layout_spread_cm": float(100 * np.sqrt(np.sum(std**2))),
        "train_seconds": round(seconds, 1),
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--task", default="aloha2/transfer_cube", help="ROBOT/TASK (default aloha2/transfer_cube)")
    ap.add_argument("--body", default="cube", help="the object's body name in the task's scene (default cube)")
    ap.add_argument("--camera", nargs="+", default=["cam_high"], help="camera(s) to probe, one at a time")
    ap.add_argument(
        "--image-size",
        type=int,
        nargs="+",
        default=[96],
        metavar="PX",
        help="H W, or one side for a square (default 96)",
    )
    ap.add_argument("--preset", default="vla-xs", help="model preset whose vision encoder is probed (default vla-xs)")
    ap.add_argument("--model", nargs="*", default=[], metavar="FIELD=VALUE", help="change preset fields")
    ap.add_argument("--frames", type=int, default=1000, help="layouts rendered; 20 %% held out (default 1000)")
    ap.add_argument(
        "--train-layouts",
        type=int,
        help="train on the first N layouts, hold out the rest (default 80 %% of --frames); e.g. --frames 250\n"
        "--train-layouts 50 asks what a policy sees with 50 demonstrations",
    )
    ap.add_argument("--steps", type=int, default=1000, help="training steps per camera (default 1000)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=10000, help="first layout seed (default 10000, unlike recordings)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args(argv)
    if args.frames < 10:
        raise SystemExit(f"--frames must be at least 10 (8 to train, 2 held out), got {args.frames}")
    if args.train_layouts is not None and not 1 <= args.train_layouts <= args.frames - 2:
        raise SystemExit(
            f"--train-layouts must be 1..{args.frames - 2} (--frames minus 2 held out), got {args.train_layouts}"
        )
    if len(args.image_size) > 2:
        raise SystemExit(f"--image-size takes H W or one side, got {args.image_size}")
    size = image_hw(args.image_size if len(args.image_size) == 2 else args.image_size[0])
    fields = parse_model_fields(args.model)
    for name in ("image_size", "cameras"):
        if name in fields:
            raise SystemExit(f"--model {name}: the probe sets it (from --image-size / --camera); give it there")
    results = []
    for camera in args.camera:
        config = get_preset(args.preset).replace(cameras=(camera,), image_size=size, **fields)
        images, xy = layouts(args.task, camera, args.body, size, args.frames, args.seed)
        row = {
            "camera": camera,
            **probe(images, xy, config, args.steps, args.batch_size, args.lr, 0, args.train_layouts),
        }
        results.append(row)
        if not args.json:
            print(
                f"{camera}: held-out normalised MSE {row['normalised_mse']:.3f} (1.0 = learned nothing), "
                f"RMS error {row['rms_error_cm']:.1f} cm over a {row['layout_spread_cm']:.1f} cm spread "
                f"(training layouts: {row['training_rms_error_cm']:.1f} cm; {row['training_layouts']} of them, "
                f"{args.steps} steps, {row['train_seconds']:.0f} s)",
                flush=True,
            )
    out = {
        "task": args.task,
        "body": args.body,
        "preset": args.preset,
        "model": args.model,
        "image_size": list(size),
        "frames": args.frames,
        "steps": args.steps,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {jax.devices()[0].platform}",
        "results": results,
    }
    if args.json:
        print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
