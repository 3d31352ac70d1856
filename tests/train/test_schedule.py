"""The learning-rate schedule is an input of the jitted train step, not a constant of its program: a --time-budget
refit (a new total step count) compiles nothing again, runs with another --steps/--lr/--warmup-steps share one XLA
program, and the learning rate of every step is bit for bit what the schedule compiled with constants gave."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from vla_sdk.model import VLA, fake_batch, get_preset
from vla_sdk.train.config import TrainConfig
from vla_sdk.train.step import Stepper, lr_schedule, make_mesh, schedule_inputs


def compiled_constant_schedule(cfg: TrainConfig, total: int, steps) -> np.ndarray:
    """The schedule as the trainer built it before it became an input: optax's, its values constants of the program
    (XLA folds them, e.g. pi / decay into one float32)."""
    w = cfg.warmup_steps
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, cfg.lr, w, max(total, w + 1), end_value=cfg.lr * cfg.final_lr_fraction
    )
    return np.asarray(jax.jit(jax.vmap(schedule))(jnp.asarray(steps, jnp.int32)))


def bits(x) -> np.ndarray:
    return np.asarray(x, np.float32).view(np.uint32)


def test_lr_is_the_constant_schedule_bit_for_bit():
    run_time = jax.jit(jax.vmap(lr_schedule, in_axes=(0, None)))
    steps = np.arange(4400)  # warmup, decay and past the end of each
    for warmup in (0, 7, 200):
        for lr, fraction in ((3e-4, 0.05), (2e-3, 0.1), (7.3e-5, 0.0)):
            cfg = TrainConfig(data=("x",), out="x", lr=lr, warmup_steps=warmup, final_lr_fraction=fraction)
            for total in (1, 119, 4330):
                want = compiled_constant_schedule(cfg, total, steps)
                got = run_time(jnp.asarray(steps, jnp.int32), schedule_inputs(cfg, total))
                np.testing.assert_array_equal(bits(got), bits(want), err_msg=f"{warmup=} {lr=} {fraction=} {total=}")
    assert run_time._cache_size() == 1, "one program for every schedule"


def _tiny():
    mcfg = get_preset("vla-tiny").replace(cameras=("cam",), num_layers=1, expert_layers=1, head="l1")
    return mcfg, VLA(mcfg, rngs=nnx.Rngs(0))


def test_refit_and_other_schedules_compile_no_new_program():
    mcfg, model = _tiny()
    params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    batch = jax.tree.map(np.asarray, fake_batch(mcfg, 4).__dict__)
    cfg = TrainConfig(data=("x",), out="x", steps=50, warmup_steps=2, augment=False)
    st = Stepper(model, cfg, 50, make_mesh())
    state = st.init_state(params)
    lrs = []
    for total in (50, 50, 6, 6, 6, 3000):  # fitted down, then up, as --time-budget refits do
        st.set_total_steps(total)
        state, m = st.train_step(state, batch)
        step = int(state["step"]) - 1  # the learning rate of this step: the schedule at the step count before it
        lrs.append((float(m["lr"]), compiled_constant_schedule(cfg, total, [step])[0]))
    assert st._train._cache_size() == 1, "a new total step count compiled the train step again"
    got, want = zip(*lrs, strict=True)
    np.testing.assert_array_equal(bits(got), bits(want))
    assert got[3] < got[2] and got[5] > got[4]  # the refits did change the schedule
    # runs that differ in their schedule lower to the same program (one persistent-cache entry, one compile)
    other = TrainConfig(data=("x",), out="y", steps=7, lr=1e-2, warmup_steps=0, final_lr_fraction=0.5, augment=False)
    st2 = Stepper(model, other, 7, make_mesh())
    state2 = st2.init_state(params)
    sharded = st.shard_batch(batch)
    program = st._train.lower(state, sharded, st.hparams).as_text()
    assert st2._train.lower(state2, sharded, st2.hparams).as_text() == program
