"""Delta actions in the shared transform: arm dims relative to the state, grippers absolute, exact round trip."""

import numpy as np
import pytest

from vla_sdk.model import get_preset
from vla_sdk.transforms import PolicyTransform

NAMES = ["j1", "j2", "gripper"]
STATS = {k: {"mean": [0.1, -0.2, 0.5], "std": [0.3, 0.2, 0.4]} for k in ("observation.state", "action")}
MASK = [True, True, False]


def test_delta_round_trip_and_gripper_stays_absolute():
    t = PolicyTransform(get_preset("vla-tiny"), NAMES, STATS, MASK)
    rng = np.random.default_rng(0)
    state = rng.normal(size=(4, 3)).astype(np.float32)
    chunk = rng.normal(size=(4, 5, 3)).astype(np.float32)
    model = t.actions(chunk, state)
    assert model.shape == (4, 5, get_preset("vla-tiny").action_dim)
    np.testing.assert_allclose(t.unactions(model, state), chunk, atol=1e-5)
    absolute = PolicyTransform(get_preset("vla-tiny"), NAMES, STATS)
    # what the model sees: (a - s) in the arm dims, a in the gripper
    np.testing.assert_allclose(model[..., :3], absolute.actions(chunk - state[:, None] * MASK)[..., :3], atol=1e-5)
    shifted = t.unactions(model, state + 1.0) - t.unactions(model, state)
    np.testing.assert_allclose(shifted, np.broadcast_to([1.0, 1.0, 0.0], shifted.shape), atol=1e-5)


def test_delta_needs_the_state_and_a_fitting_mask():
    t = PolicyTransform(get_preset("vla-tiny"), NAMES, STATS, MASK)
    with pytest.raises(ValueError, match="relative to the state.*pass the state"):
        t.unactions(np.zeros((1, 5, 32)))
    with pytest.raises(ValueError, match="delta_mask has 2 entries, the robot has 3"):
        PolicyTransform(get_preset("vla-tiny"), NAMES, STATS, [True, False])
    # no mask (or all False): absolute actions, the state is not needed
    assert PolicyTransform(get_preset("vla-tiny"), NAMES, STATS, [False] * 3).delta_mask is None
