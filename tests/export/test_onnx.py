"""`vla export --format onnx`: the ONNX graph of the inference function, run by onnxruntime (docs/export.md)."""

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from tests.export.conftest import RUNTIME_SCRIPT, frames

pytest.importorskip("jax2onnx")
pytest.importorskip("onnxruntime")

FLOAT_ATOL = 1e-4  # ONNX float vs the StableHLO float artifact, same noise (measured ~1e-6)
INT8_RATIO = 1.5  # the ONNX int8 error (vs float) may be at most this times the StableHLO int8 error


@pytest.fixture(scope="module")
def pair(tiny_run, reference, tmp_path_factory):
    """(format, mode) -> (path, summary, in-memory policy) for the StableHLO and ONNX exports of none and int8.
    The ONNX none export also runs the accuracy gate and latency profile (the manifest's full contract)."""
    from vla_sdk.checkpoint import read_checkpoint
    from vla_sdk.export.build import export_policy

    out = tmp_path_factory.mktemp("onnx_artifacts")
    params, meta = read_checkpoint(tiny_run / "run")
    result = {}
    for fmt in ("stablehlo", "onnx"):
        for mode in ("none", "int8"):
            full = (fmt, mode) == ("onnx", "none")
            path = out / f"tiny_{fmt}_{mode}.vla"
            summary, _, policy = export_policy(
                params,
                meta,
                path,
                mode,
                source=str(tiny_run / "run"),
                reference=reference,
                gate_count=8 if full else 0,
                latency_runs=5 if full else 0,
                format=fmt,
                platforms=("cpu",),
            )
            result[fmt, mode] = (path, summary, policy)
    return result


def _actions(policy, fs, seed=7):
    policy.reset(seed)
    return np.stack([policy(f) for f in fs])


def test_onnx_float_matches_the_stablehlo_artifact(pair, reference):
    """Same observation, same seed: the ONNX graph (noise drawn by the runtime as the JAX function draws it) gives
    the StableHLO artifact's actions; loading the file dispatches to onnxruntime."""
    from vla_sdk.export.runtime import OnnxArtifactPolicy, load_artifact
    from vla_sdk.policy import Policy

    fs = frames(reference, 4)
    jax_float = _actions(pair["stablehlo", "none"][2], fs)
    loaded = Policy.load(pair["onnx", "none"][0], seed=7)  # the path `vla eval` / `vla run` / `vla serve` take
    assert isinstance(loaded, OnnxArtifactPolicy)
    got = _actions(loaded, fs)
    assert got.shape == jax_float.shape == (4, reference.horizon, 8)
    np.testing.assert_allclose(got, jax_float, atol=FLOAT_ATOL, rtol=0)
    np.testing.assert_allclose(_actions(load_artifact(pair["onnx", "none"][0]), fs), jax_float, atol=FLOAT_ATOL)
    for name in ("cameras", "image_size", "horizon", "robot", "execute"):
        assert getattr(loaded, name) == getattr(reference, name), name


def test_onnx_int8_is_qdq_and_as_accurate_as_the_stablehlo_int8(pair, reference):
    import onnx

    from vla_sdk.export.artifact import read_artifact

    fs = frames(reference, 8)
    base = _actions(pair["stablehlo", "none"][2], fs)
    err = {fmt: np.abs(_actions(pair[fmt, "int8"][2], fs) - base) for fmt in ("stablehlo", "onnx")}
    jax_err, onnx_err = (float(err[f].mean()) for f in ("stablehlo", "onnx"))
    print(f"int8 mean abs error vs float: stablehlo {jax_err:.3e}, onnx {onnx_err:.3e}")
    assert 0 < onnx_err <= INT8_RATIO * jax_err
    assert err["onnx"].max() <= INT8_RATIO * err["stablehlo"].max()

    art = read_artifact(pair["onnx", "int8"][0])
    model = onnx.load_from_string(art.function)
    int8_inits = [i for i in model.graph.initializer if i.data_type == onnx.TensorProto.INT8]
    dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    q = art.manifest["function"]["dequantize_linear"]
    assert len(dq) == len(int8_inits) == q["weights"] == q["int8_tensors"] > 0  # every int8 weight: one DQ node
    assert art.manifest["quantization"]["tensors"]["encoder.blocks.0.mlp.fc1.kernel"]["mode"] == "int8"
    sizes = {m: pair["onnx", m][0].stat().st_size for m in ("none", "int8")}
    assert sizes["int8"] < 0.45 * sizes["none"], sizes


def test_onnx_manifest_and_hashes(pair, reference, tmp_path):
    from vla_sdk.export.artifact import ArtifactError, read_artifact
    from vla_sdk.export.runtime import load_artifact

    path, summary, _ = pair["onnx", "none"]
    m = read_artifact(path).manifest
    assert set(m["parts"]) == {"model.onnx"} and len(m["manifest_sha256"]) == 64
    assert m["function"]["format"] == "onnx" and m["function"]["inputs"][-1]["name"] == "noise"
    assert m["model_config"] == reference.config.to_dict() and set(m["stats"]) >= {"observation.state", "action"}
    assert m["latency_ms"]["p99"] >= m["latency_ms"]["p50"] > 0 and m["latency_ms"]["platform"] == "onnxruntime"
    assert m["accuracy"]["frames"] == 8 and m["accuracy"]["max_abs"] < FLOAT_ATOL
    assert summary["format"] == "onnx" and m["onnxruntime_version"]

    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("model.onnx")
    raw[info.header_offset + 30 + len(info.filename) + info.compress_size // 2] ^= 0xFF  # one byte, in place
    (tmp_path / "flipped.vla").write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match=r"flipped\.vla: part model\.onnx"):
        load_artifact(tmp_path / "flipped.vla")

    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(tmp_path / "edited.vla", "w") as zout:
        for e in zin.infolist():  # a different model.onnx, consistently zipped: only the SHA-256 can tell
            data = zin.read(e.filename)
            zout.writestr(e.filename, data + b"\x00" if e.filename == "model.onnx" else data)
    with pytest.raises(ArtifactError, match=r"edited\.vla: part model\.onnx failed its SHA-256 check"):
        load_artifact(tmp_path / "edited.vla")


def test_onnx_runtime_imports_no_flax_optax_orbax(pair, reference, tmp_path):
    """A fresh process loads the ONNX artifact from its file and matches the checkpoint policy; it imports no
    flax, optax, orbax (nor the model's flax modules, vla_sdk.policy, vla_sdk.train), and not jax2onnx."""
    fs = frames(reference, 4)
    np.savez(
        tmp_path / "frames.npz",
        **{f"img:{c}": np.stack([f["images"][c] for f in fs]) for c in reference.cameras},
        state=np.stack([f["state"] for f in fs]),
        instruction=np.array([f["instruction"] for f in fs]),
    )
    script = RUNTIME_SCRIPT + "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'jax2onnx')))\n"
    args = [str(pair["onnx", "none"][0]), str(tmp_path / "frames.npz"), str(tmp_path / "out.npy")]
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    heavy, converter = (json.loads(line) for line in proc.stdout.strip().splitlines()[-2:])
    assert heavy == [] and converter == []
    reference.reset(7)
    expected = np.stack([reference(f) for f in fs])
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, atol=FLOAT_ATOL, rtol=0)


def test_vla_eval_runs_the_onnx_artifact(pair, capsys):
    from vla_sdk.cli import main

    capsys.readouterr()
    path = pair["onnx", "int8"][0]
    assert main(["eval", str(path), "--task", "fr3/pick_place", "--episodes", "1", "--max-steps", "6", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == 1


def test_a_layer_jax2onnx_cannot_express_is_a_clear_error(tiny_run, reference, tmp_path, monkeypatch):
    """A custom primitive (as a hand-written kernel would be) in the flow head: the error names it, its source line,
    and the default format; nothing is written."""
    from jax.extend.core import Primitive

    from vla_sdk.checkpoint import read_checkpoint
    from vla_sdk.export.build import export_policy
    from vla_sdk.export.onnx_build import OnnxUnsupported
    from vla_sdk.model.heads import FlowHead

    opaque = Primitive("opaque_test_kernel")
    opaque.def_impl(lambda x: x)
    opaque.def_abstract_eval(lambda x: x)
    velocity = FlowHead.velocity
    monkeypatch.setattr(FlowHead, "velocity", lambda self, *a: opaque.bind(velocity(self, *a)))
    params, meta = read_checkpoint(tiny_run / "run")
    out = tmp_path / "x.vla"
    with pytest.raises(OnnxUnsupported, match=r"primitive 'opaque_test_kernel' \(used at .*test_onnx\.py.*--format "):
        export_policy(params, meta, out, "none", reference=reference, gate_count=0, latency_runs=0, format="onnx")
    assert not out.exists()


def test_missing_extra_and_unsupported_modes_are_clear_errors(tiny_run, tmp_path, monkeypatch):
    from vla_sdk.errors import InputError, RuntimeFailure
    from vla_sdk.export.build import export_checkpoint

    with pytest.raises(InputError, match=r"--format onnx supports --quantize none or int8, not 'int4'"):
        export_checkpoint(tiny_run / "run", tmp_path / "x.vla", "int4", format="onnx")
    with pytest.raises(InputError, match=r"unknown export format 'tflite'; valid formats: stablehlo, onnx"):
        export_checkpoint(tiny_run / "run", tmp_path / "x.vla", "none", format="tflite")
    monkeypatch.setitem(sys.modules, "jax2onnx", None)  # as if the extra were not installed
    with pytest.raises(RuntimeFailure, match=r"needs jax2onnx .*pip install 'vla-sdk\[onnx\]'"):
        export_checkpoint(tiny_run / "run", tmp_path / "x.vla", "none", format="onnx")
    assert not (tmp_path / "x.vla").exists()


def test_onnx_runtime_without_onnxruntime_says_what_to_install(pair, monkeypatch):
    from vla_sdk.errors import RuntimeFailure
    from vla_sdk.export import onnx_runtime
    from vla_sdk.export.runtime import load_artifact

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    monkeypatch.setattr(onnx_runtime, "_SESSIONS", {})  # no cached session
    with pytest.raises(RuntimeFailure, match=r"needs onnxruntime.*pip install 'vla-sdk\[onnx\]'"):
        load_artifact(pair["onnx", "none"][0])
