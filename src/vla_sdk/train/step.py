"""The pure training step, the optimizer, and data-parallel sharding.

Parameters live as plain nested dicts (``nnx.to_pure_dict``) so optax, orbax and jax.sharding treat them as ordinary
pytrees. ``train_step(state, batch)`` is pure: its randomness is ``fold_in(key(seed), step)``, so one seed gives one
run, and a resumed run continues the same loss curve.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from vla_sdk.checkpoint import is_lora
from vla_sdk.errors import UsageError
from vla_sdk.model.vla import VLA
from vla_sdk.train import lora
from vla_sdk.train.augment import augment_images, drop_state, noisy_state
from vla_sdk.train.config import TrainConfig


def schedule_inputs(cfg: TrainConfig, total_steps: int) -> dict[str, np.ndarray]:
    """The learning-rate schedule of a run of ``total_steps`` steps as float32 scalars, inputs of the jitted step
    (a --time-budget refit, another --steps, --lr or --warmup-steps change no XLA program): linear warmup from 0 to
    ``cfg.lr`` over ``cfg.warmup_steps``, then cosine decay to ``lr * final_lr_fraction`` at ``total_steps``, i.e.
    ``optax.warmup_cosine_decay_schedule(0, lr, warmup, max(total_steps, warmup + 1), lr * final_lr_fraction)``.

    The values are those XLA folds that schedule's constants into when it compiles them into the program (as this
    trainer did before; tests/train/test_schedule.py holds them to it): ``pi / decay`` as ``pi * (1 / decay)``, ``0.5``
    times ``1 - alpha``, ``1 / warmup``, each rounded to float32 as XLA does, so the learning rate of every step, and
    with it the loss curve of a run and of a run resumed from older checkpoints, stays the same bit for bit."""
    f32 = np.float32
    lr, warmup = float(cfg.lr), cfg.warmup_steps
    alpha = (lr * cfg.final_lr_fraction) / lr  # as optax computes it (in float64), not final_lr_fraction itself
    decay = max(total_steps, warmup + 1) - warmup  # steps of the cosine part
    return {
        "lr": f32(lr),
        "neg_lr": f32(0.0 - lr),
        "warmup": np.int32(warmup),
        "inv_warmup": f32(1) / f32(max(warmup, 1)),  # unused without a warmup (the cosine starts at step 0)
        "decay": f32(decay),
        "cos_scale": f32(np.pi) * (f32(1) / f32(decay)),
        "half_one_minus_alpha": f32(0.5) * f32(1.0 - alpha),
        "alpha": f32(alpha),
    }


def lr_schedule(count, hp: dict):
    """The learning rate at step ``count`` (int32) of the schedule whose :func:`schedule_inputs` are ``hp``."""
    warm = (1 - jnp.clip(count, 0, hp["warmup"]) * hp["inv_warmup"]) * hp["neg_lr"] + hp["lr"]
    t = jnp.minimum(count - hp["warmup"], hp["decay"])
    decayed = (jnp.cos(t * hp["cos_scale"]) + 1) * hp["half_one_minus_alpha"] + hp["alpha"]
    return jnp.where(count < hp["warmup"], warm, decayed * hp["lr"])


def make_optimizer(cfg: TrainConfig, schedule, params: dict) -> optax.GradientTransformation:
    """AdamW with ``schedule`` (step -> learning rate), gradient clipping, and the frozen parts of ``params`` (only
    its structure is read) for --finetune head/lora. The optimizer state's structure does not depend on the
    schedule: ``tx.init`` with one schedule gives the state ``tx.update`` with another continues."""
    tx = optax.chain(optax.clip_by_global_norm(cfg.grad_clip), optax.adamw(schedule, weight_decay=cfg.weight_decay))
    if cfg.finetune == "head":  # only the action head learns; everything else is frozen
        labels = {k: jax.tree.map(lambda _, k=k: "train" if k == "head" else "freeze", v) for k, v in params.items()}
        tx = optax.multi_transform({"train": tx, "freeze": optax.set_to_zero()}, labels)
    elif cfg.finetune == "lora":  # low-rank adapters on the backbone + the action head
        tx = optax.multi_transform({"train": tx, "freeze": optax.set_to_zero()}, lora.labels(params))
    return tx


class Stepper:
    """Jitted train and eval steps for one model structure on one device mesh. The learning-rate schedule over
    ``total_steps`` is an input of the train step, not part of its program: :meth:`set_total_steps` changes it
    without compiling again."""

    def __init__(self, model: VLA, cfg: TrainConfig, total_steps: int, mesh: Mesh):
        self.graphdef, params, self.rest = nnx.split(model, nnx.Param, ...)
        self.template = params
        self.cfg, self.mesh = cfg, mesh
        self.replicated = NamedSharding(mesh, PartitionSpec())
        self.set_total_steps(total_steps)
        self.tx = make_optimizer(cfg, self.lr, self.trainable(nnx.to_pure_dict(params)))  # for init_state
        self.data_sharding = NamedSharding(mesh, PartitionSpec("data"))
        self._train = jax.jit(self._train_step, donate_argnums=0)
        self._loss = jax.jit(self._eval_loss)

    def set_total_steps(self, total_steps: int) -> None:
        """Decay the learning rate over ``total_steps`` from now on (a --time-budget refit): the same state, the
        same compiled step."""
        self.total_steps = total_steps
        self.hparams = jax.device_put(schedule_inputs(self.cfg, total_steps), self.replicated)

    def lr(self, step):
        """The learning rate at ``step`` (host or traced) of the schedule over the current total steps."""
        return lr_schedule(step, self.hparams)

    # ---- state -------------------------------------------------------------------------------------------------
    def trainable(self, params: dict) -> dict:
        """The params pytree the optimizer sees: the model's, or {"base", "lora"} for --finetune lora."""
        if self.cfg.finetune == "lora" and not is_lora(params):
            return {"base": params, "lora": lora.init(params, self.cfg.lora_rank, self.cfg.seed)}
        return params

    def init_state(self, params: dict) -> dict:
        params = self.trainable(params)
        params = jax.tree.map(np.array, params)  # host copies: the step donates its buffers, the caller keeps its own
        ema = jax.tree.map(np.array, params)
        state = {"step": jnp.zeros((), jnp.int32), "params": params, "ema": ema, "opt_state": self.tx.init(params)}
        return jax.device_put(state, self.replicated)

    def model(self, params: dict) -> VLA:
        p = jax.tree.map(lambda x: x, self.template)
        nnx.replace_by_pure_dict(p, lora.merge(params))
        return nnx.merge(self.graphdef, p, self.rest)

    # ---- steps -------------------------------------------------------------------------------------------------
    def _train_step(self, state: dict, batch: dict, hparams: dict):
        cfg = self.cfg
        rng = jax.random.fold_in(jax.random.key(cfg.seed), state["step"])
        k_aug, k_loss = jax.random.split(rng)  # as before --state-noise existed: older runs resume on the same keys
        if cfg.augment:
            batch = {**batch, "images": augment_images(k_aug, batch["images"], cfg.max_shift)}
        if cfg.state_noise > 0:
            k_state = jax.random.fold_in(rng, 2)
            batch = {**batch, "state": noisy_state(k_state, batch["state"], batch["state_mask"], cfg.state_noise)}
        if cfg.state_dropout > 0:
            k_drop = jax.random.fold_in(rng, 3)
            batch = {**batch, "state_mask": drop_state(k_drop, batch["state_mask"], cfg.state_dropout)}

        def loss_fn(params):
            return self.model(params).loss(batch, k_loss, cfg.env_state_weight)

        (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
        tx = make_optimizer(cfg, lambda count: lr_schedule(count, hparams), state["params"])
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        d = cfg.ema_decay
        ema = jax.tree.map(lambda e, p: d * e + (1.0 - d) * p, state["ema"], params)
        metrics = {**metrics, "grad_norm": optax.global_norm(grads), "lr": lr_schedule(state["step"], hparams)}
        return {"step": state["step"] + 1, "params": params, "ema": ema, "opt_state": opt_state}, metrics

    def _eval_loss(self, params: dict, batch: dict, rng):
        return self.model(params).loss(batch, rng)[0]

    def shard_batch(self, batch: dict) -> dict:
        """Place a batch on the mesh, split over the batch axis. With several processes (multi-host), each passes
        its own slice of the global batch and the global arrays are assembled from them."""
        if jax.process_count() > 1:
            return jax.tree.map(lambda x: jax.make_array_from_process_local_data(self.data_sharding, x), batch)
        n = self.mesh.size
        b = len(batch["state"])
        if b % n:
            raise UsageError(f"--batch-size {b} must be divisible by the number of devices ({n})")
        return jax.device_put(batch, self.data_sharding)

    def train_step(self, state: dict, batch: dict) -> tuple[dict, dict]:
        return self._train(state, self.shard_batch(batch), self.hparams)

    def eval_loss(self, params: dict, batch: dict, seed: int = 0) -> float:
        return float(self._loss(params, self.shard_batch(batch), jax.random.key(seed)))


def make_mesh(devices=None) -> Mesh:
    """A 1-D mesh over all local devices (multi-host: call jax.distributed.initialize() first; see docs/training.md)."""
    devices = np.array(devices if devices is not None else jax.devices())
    return Mesh(devices, ("data",))
