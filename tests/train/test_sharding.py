"""A 2-device data-parallel step equals a 1-device step (CPU devices forced with XLA_FLAGS in a subprocess)."""

import os
import subprocess
import sys

SCRIPT = r"""
import jax, numpy as np
from flax import nnx
from vla_sdk.model import VLA, get_preset, fake_batch
from vla_sdk.train.config import TrainConfig
from vla_sdk.train.step import Stepper, make_mesh
assert len(jax.devices()) == 2, jax.devices()
cfg = TrainConfig(data=("unused",), out="unused", preset="vla-tiny", augment=True)
model = VLA(get_preset("vla-tiny"), rngs=nnx.Rngs(0))
batch = jax.tree.map(np.asarray, fake_batch(get_preset("vla-tiny"), 8, rng=3, pad_steps=2).__dict__)
out = []
for devices in (jax.devices()[:1], jax.devices()):
    st = Stepper(model, cfg, 100, make_mesh(devices))
    state = st.init_state(nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    for _ in range(3):
        state, m = st.train_step(state, batch)
    out.append((float(m["loss"]), jax.tree.map(np.asarray, jax.device_get(state["params"]))))
(l1, p1), (l2, p2) = out
assert abs(l1 - l2) < 1e-4 * max(1, abs(l1)), (l1, l2)
diff = max(float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p2)))
assert diff < 1e-4, diff
print("OK", l1, l2, diff)
"""


def test_two_device_step_equals_one_device_step():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    r = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "OK" in r.stdout, r.stdout + r.stderr
