"""A small fr3 checkpoint for export tests, written directly (no training: saves ~30 s of train-step compile).

A copy of the committed fr3 sample (demos/sample_fr3_pick_place: 3 recorded episodes, 32 px) is the "training data"
the accuracy gate reads. The weights are vla-tiny's initialization plus N(0, 0.02) noise on every tensor: like trained
weights, the zero-initialized adaLN gates of the flow expert are open, so every kernel reaches the actions and
quantization error is measurable (after 4 real training steps they are still ~0, and int4 would look exact).
"""

import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

from vla_sdk.data.reader import Dataset
from vla_sdk.data.stats import vector_stats
from vla_sdk.model import VLA, get_preset
from vla_sdk.train.checkpoint import CHECKPOINT_FORMAT, Checkpoints
from vla_sdk.train.config import TrainConfig


def _str_keys(tree):
    return {str(k): _str_keys(v) for k, v in tree.items()} if isinstance(tree, dict) else tree


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, fr3_sample) -> Path:
    root = tmp_path_factory.mktemp("export_run")
    demos, run = root / "demos", root / "run"
    shutil.copytree(fr3_sample, demos)
    ds = Dataset(demos)
    ep = ds.episode(0, decode_video=False)
    cfg = get_preset("vla-tiny").replace(text_patch=2)  # merged instruction bytes, as vla-m and vla-base have
    params = _str_keys(nnx.to_pure_dict(nnx.state(VLA(cfg, rngs=nnx.Rngs(0)), nnx.Param)))
    leaves, treedef = jax.tree.flatten(params)
    rng = np.random.default_rng(0)
    leaves = [(np.asarray(x) + 0.02 * rng.standard_normal(x.shape)).astype(np.float32) for x in leaves]
    params = jax.tree.unflatten(treedef, leaves)
    meta = {
        "format_version": CHECKPOINT_FORMAT,
        "train_config": TrainConfig(
            data=(str(demos),), out=str(run), preset="vla-tiny", model={"text_patch": 2}, steps=4
        ).to_dict(),
        "model_config": cfg.to_dict(),
        "stats": {k: vector_stats(ep[k]) for k in ("observation.state", "action")},
        "embodiment": ds.info["vla"].get("embodiment") or {"name": ds.info.get("robot_type")},
        "action_names": ds.features["action"]["names"],
        "metrics": {"step": 4},
    }
    ckpts = Checkpoints(run, keep=1)
    ckpts.save(4, {"step": np.int32(4), "params": params, "ema": params}, meta)
    ckpts.close()
    return root


@pytest.fixture(scope="session")
def reference(tiny_run):
    """The float checkpoint policy (compiled once, shared by every export as the accuracy reference)."""
    from vla_sdk.policy import Policy

    return Policy.load(tiny_run / "run")


RUNTIME_SCRIPT = """
import json, sys
import numpy as np
from vla_sdk.export.runtime import load_artifact
policy = load_artifact(sys.argv[1], seed=7)
data = np.load(sys.argv[2], allow_pickle=False)
cams = [k[4:] for k in data.files if k.startswith("img:")]
out = [policy({"images": {c: data["img:" + c][i] for c in cams}, "state": data["state"][i],
               "instruction": str(data["instruction"][i])}) for i in range(len(data["state"]))]
np.save(sys.argv[3], np.stack(out))
heavy = ("flax", "optax", "orbax", "vla_sdk.policy", "vla_sdk.train",
         *(f"vla_sdk.model.{m}" for m in ("vla", "batch", "heads", "vision", "transformer")))
print(json.dumps(sorted(m for m in sys.modules if m.startswith(heavy))))
"""


def frames(reference, n=4) -> list[dict]:
    from vla_sdk.export.gate import gate_frames

    return gate_frames(reference.meta, reference.config, n)[0]


@pytest.fixture(scope="session")
def exported(tiny_run, reference, tmp_path_factory) -> dict:
    """mode -> (artifact path, summary, in-memory ArtifactPolicy), and "runtime": a subprocess running the none
    artifact from its file (started at once, so it overlaps the int8/int4 compiles) with the expected actions.
    none and bf16 skip the in-process accuracy gate (no compile here); int8 and int4 run it."""
    from vla_sdk.checkpoint import read_checkpoint
    from vla_sdk.export.build import export_policy

    out = tmp_path_factory.mktemp("artifacts")
    params, meta = read_checkpoint(tiny_run / "run")
    result = {}
    for mode in ("none", "bf16", "int8", "int4"):
        gate = mode in ("int8", "int4")
        summary, _, policy = export_policy(
            params,
            meta,
            out / f"tiny_{mode}.vla",
            mode,
            source=str(tiny_run / "run"),
            reference=reference,
            gate_count=32 if gate else 0,
            latency_runs=10 if gate else 0,
        )
        result[mode] = (out / f"tiny_{mode}.vla", summary, policy)
        if mode == "none":
            fs = frames(reference)
            np.savez(
                out / "frames.npz",
                **{f"img:{c}": np.stack([f["images"][c] for f in fs]) for c in reference.cameras},
                state=np.stack([f["state"] for f in fs]),
                instruction=np.array([f["instruction"] for f in fs]),
            )
            args = [str(out / "tiny_none.vla"), str(out / "frames.npz"), str(out / "runtime_out.npy")]
            proc = subprocess.Popen(
                [sys.executable, "-c", RUNTIME_SCRIPT, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            reference.reset(7)
            result["runtime"] = (proc, np.stack([reference(f) for f in fs]), out / "runtime_out.npy")
    return result
