"""--finetune lora: base weights stay frozen, adapters and the action head learn, merging starts from the base."""

import jax
import numpy as np
from flax import nnx

from vla_sdk.model import VLA, fake_batch, get_preset
from vla_sdk.train import lora
from vla_sdk.train.config import TrainConfig
from vla_sdk.train.step import Stepper, make_mesh


def test_lora_trains_adapters_and_head_only():
    cfg = get_preset("vla-tiny")
    model = VLA(cfg, rngs=nnx.Rngs(0))
    base = jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    st = Stepper(
        model,
        TrainConfig(data=("x",), out="x", preset="vla-tiny", finetune="lora", lora_rank=4, lr=1e-2, warmup_steps=0),
        10,
        make_mesh(),
    )
    state = st.init_state(base)
    assert lora.targets(base) and all(k[0] != "head" for k in lora.targets(base))
    merged0 = lora.merge(jax.device_get(state["params"]))
    for a, b in zip(jax.tree.leaves(merged0), jax.tree.leaves(base), strict=True):
        np.testing.assert_array_equal(a, b)  # B = 0: training starts exactly from the base
    batch = jax.tree.map(np.asarray, fake_batch(cfg, 4).__dict__)
    for _ in range(3):
        state, _ = st.train_step(state, batch)
    p = jax.device_get(state["params"])
    for k in base:
        same = all(
            np.array_equal(x, y) for x, y in zip(jax.tree.leaves(p["base"][k]), jax.tree.leaves(base[k]), strict=True)
        )
        assert same == (k != "head"), k
    assert any(np.abs(ad["b"]).max() > 0 for ad in p["lora"].values())
