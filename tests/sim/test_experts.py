"""Every task's scripted expert solves it (a few seeds here; tools/bench_experts.py measures 100 seeds)."""

import pytest

from vla_sdk.sim import list_tasks
from vla_sdk.sim.rollout import run_episodes


@pytest.mark.parametrize("task", list_tasks())
def test_expert_succeeds(task):
    summary = run_episodes(task, "scripted", episodes=2, seed=1000, progress=False)
    assert summary["success_rate"] == 1.0, summary["per_episode"]


def test_doing_nothing_fails():
    summary = run_episodes("aloha2/transfer_cube", "hold", episodes=1, seed=0, progress=False)
    assert summary["success_rate"] == 0.0 and summary["per_episode"][0]["steps"] == 450
