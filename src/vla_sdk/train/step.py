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


def make_optimizer(cfg: TrainConfig, total_steps: int, params: dict) -> tuple[optax.GradientTransformation, object]:
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, cfg.lr, cfg.warmup_steps, max(total_steps, cfg.warmup_steps + 1), end_value=cfg.lr * cfg.final_lr_fraction
    )
    tx = optax.chain(optax.clip_by_global_norm(cfg.grad_clip), optax.adamw(schedule, weight_decay=cfg.weight_decay))
    if cfg.finetune == "head":  # only the action head learns; everything else is frozen
        labels = {k: jax.tree.map(lambda _, k=k: "train" if k == "head" else "freeze", v) for k, v in params.items()}
        tx = optax.multi_transform({"train": tx, "freeze": optax.set_to_zero()}, labels)
    elif cfg.finetune == "lora":  # low-rank adapters on the backbone + the action head
        tx = optax.multi_transform({"train": tx, "freeze": optax.set_to_zero()}, lora.labels(params))
    return tx, schedule


class Stepper:
    """Jitted train and eval steps for one model structure on one device mesh."""

    def __init__(self, model: VLA, cfg: TrainConfig, total_steps: int, mesh: Mesh):
        self.graphdef, params, self.rest = nnx.split(model, nnx.Param, ...)
        self.template = params
        self.cfg, self.mesh = cfg, mesh
        self.tx, self.schedule = make_optimizer(cfg, total_steps, self.trainable(nnx.to_pure_dict(params)))
        self.replicated = NamedSharding(mesh, PartitionSpec())
        self.data_sharding = NamedSharding(mesh, PartitionSpec("data"))
        self._train = jax.jit(self._train_step, donate_argnums=0)
        self._loss = jax.jit(self._eval_loss)

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
    def _train_step(self, state: dict, batch: dict):
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
        updates, opt_state = self.tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        d = cfg.ema_decay
        ema = jax.tree.map(lambda e, p: d * e + (1.0 - d) * p, state["ema"], params)
        metrics = {**metrics, "grad_norm": optax.global_norm(grads), "lr": self.schedule(state["step"])}
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
        return self._train(state, self.shard_batch(batch))

    def eval_loss(self, params: dict, batch: dict, seed: int = 0) -> float:
        return float(self._loss(params, self.shard_batch(batch), jax.random.key(seed)))


def make_mesh(devices=None) -> Mesh:
    """A 1-D mesh over all local devices (multi-host: call jax.distributed.initialize() first; see docs/training.md)."""
    devices = np.array(devices if devices is not None else jax.devices())
    return Mesh(devices, ("data",))
