"""Exported policies: one self-contained artifact file per policy (`vla export`), runnable without flax.

* :mod:`vla_sdk.export.build` — checkpoint -> artifact (quantize, trace with ``jax.export``, accuracy gate, latency)
* :mod:`vla_sdk.export.quantize` — bf16 / int8 / int4 weight storage and in-graph dequantization
* :mod:`vla_sdk.export.artifact` — the file format (zip: manifest.json, weights.npz, sample.stablehlo) and checks
* :mod:`vla_sdk.export.runtime` — ``load_artifact(path)`` -> a policy for the runner (numpy + jax only)

Nothing is imported here, so ``import vla_sdk.export.runtime`` stays free of flax, optax and orbax.
"""
