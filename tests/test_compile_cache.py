"""The persistent XLA cache the `vla` command turns on: a second process loads what the first compiled."""

import os
import subprocess
import sys

from vla_sdk import compile_cache

PROGRAM = """
import jax, jax.numpy as jnp
print(float(jax.jit(lambda x: jnp.tanh(x) * 3.0 + 1.0)(jnp.arange(7.0)).sum()))
"""


def test_second_process_loads_from_the_cache(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    env["XDG_CACHE_HOME"] = str(tmp_path)
    run = [sys.executable, "-c", f"from vla_sdk import compile_cache; compile_cache.enable()\n{PROGRAM}"]
    first = subprocess.run(run, env=env, capture_output=True, text=True, check=True).stdout
    cache = tmp_path / "vla-sdk" / "xla"
    entries = sorted(p.name for p in cache.iterdir())
    assert entries, "nothing was written to the cache"
    second = subprocess.run(run, env=env, capture_output=True, text=True, check=True).stdout
    assert second == first and sorted(p.name for p in cache.iterdir()) == entries  # hit: no new entry


def test_an_explicit_folder_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "mine"))
    assert compile_cache.enable() == str(tmp_path / "mine")
