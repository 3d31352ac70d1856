"""The exported-policy file: one zip archive; the JSON manifest and the StableHLO are deflated, the weights stored.

  manifest.json     format, format_version, model config, embodiment schema, normalization statistics, tokenizer,
                    rng convention, the exported function's inputs/outputs, quantization metadata per tensor and the
                    float-kept layers, a latency profile and accuracy report from export time, and ``parts``: the
                    SHA-256 and size of each other entry. ``manifest_sha256`` is the SHA-256 of the manifest's
                    canonical JSON (sorted keys, no spaces) without that field.
  weights.npz       numpy arrays only (``np.load(..., allow_pickle=False)``): float32 / uint16 (bfloat16 bits) /
                    int8 / uint8 (packed int4) values and float32 scales, named ``<tensor>.<w|q|scale>``
  sample.stablehlo  ``jax.export`` serialization of the inference function (see :mod:`vla_sdk.export.build`)

An ONNX artifact (``vla export --format onnx``; ``manifest["function"]["format"] == "onnx"``) holds ``model.onnx``
instead of both: the graph with its weights as initializers (see :mod:`vla_sdk.export.onnx_build`).

Reading checks, in order: a readable zip with all its entries, the format name, the format version (newer than
:data:`FORMAT_VERSION` is refused), the manifest's own hash, then every part's hash. Any failure is an
:class:`ArtifactError` naming the file and what failed. Imports numpy and the standard library only.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vla_sdk.errors import InputError, NotFound

FORMAT = "vla-sdk-artifact"
FORMAT_VERSION = 1
MANIFEST, WEIGHTS, FUNCTION = "manifest.json", "weights.npz", "sample.stablehlo"
ONNX_FUNCTION = "model.onnx"
PARTS = (WEIGHTS, FUNCTION)
ONNX_PARTS = (ONNX_FUNCTION,)
# Every part is deflated: the manifest ~7x, the graph ~2x, quantized weights 10-15 % (small integers and the npy
# headers of ~100 arrays), float32 weights ~8 %. Inflating costs milliseconds at load.
COMPRESS = {WEIGHTS: zipfile.ZIP_DEFLATED, FUNCTION: zipfile.ZIP_DEFLATED, ONNX_FUNCTION: zipfile.ZIP_DEFLATED}


def parts_of(manifest: dict) -> tuple[str, ...]:
    """The entries besides the manifest: by the function's format (StableHLO when the manifest names none)."""
    return ONNX_PARTS if (manifest.get("function") or {}).get("format") == "onnx" else PARTS


class ArtifactError(InputError):
    """An artifact that cannot be used: damaged, modified, truncated, or from a newer vla-sdk."""


@dataclass
class Artifact:
    manifest: dict
    weights: dict[str, np.ndarray]
    function: bytes  # serialized jax.export.Exported (or the ONNX model, whose weights are inside: weights {})


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical(manifest: dict) -> bytes:
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def weights_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def load_weights(data: bytes, where: str = WEIGHTS) -> dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile) as e:
        raise ArtifactError(f"{where}: cannot read the weights ({e})") from e


def seal(manifest: dict, parts: dict[str, bytes]) -> dict:
    """The manifest with ``parts`` hashes and its own ``manifest_sha256`` filled in."""
    manifest = {**manifest, "parts": {n: {"sha256": sha256(b), "bytes": len(b)} for n, b in parts.items()}}
    manifest["manifest_sha256"] = sha256(canonical(manifest))
    return manifest


def write_artifact(path: str | Path, manifest: dict, parts: dict[str, bytes]) -> dict:
    """Write the archive atomically (temp file + rename); returns the sealed manifest."""
    path = Path(path)
    missing = sorted(set(parts_of(manifest)) - set(parts))
    if missing:
        raise InputError(f"artifact parts missing: {missing}")
    manifest = seal(manifest, parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as z:
            text = json.dumps(manifest, indent=1, sort_keys=True, allow_nan=False)
            z.writestr(MANIFEST, text, compress_type=zipfile.ZIP_DEFLATED)  # ~5x smaller
            for name in parts_of(manifest):
                z.writestr(name, parts[name], compress_type=COMPRESS.get(name, zipfile.ZIP_STORED))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return manifest


def _read_entry(z: zipfile.ZipFile, path: Path, name: str) -> bytes:
    try:
        return z.read(name)
    except KeyError:
        raise ArtifactError(f"{path}: not a complete vla-sdk artifact (no {name} inside)") from None
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
        raise ArtifactError(f"{path}: part {name} is damaged ({e}); re-export or copy the file again") from e


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number (an artifact never holds one)")


def read_manifest(path: str | Path) -> tuple[dict, zipfile.ZipFile]:
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"{path}: no such artifact file")
    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise ArtifactError(f"{path}: not a readable vla-sdk artifact, the file is truncated or not one ({e})") from e
    try:
        text = _read_entry(z, path, MANIFEST)
    except ArtifactError:
        z.close()
        raise
    try:
        manifest = json.loads(text, parse_constant=_no_constant)
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, NaN / Infinity (never written: allow_nan=False)
        z.close()
        raise ArtifactError(f"{path}: {MANIFEST} is not valid JSON ({e})") from e
    problem = None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        problem = f"not a vla-sdk artifact ({MANIFEST} does not say format {FORMAT!r})"
    elif not isinstance(manifest.get("format_version"), int):
        problem = f"{MANIFEST} has no integer format_version"
    elif manifest["format_version"] > FORMAT_VERSION:
        problem = (
            f"format_version {manifest['format_version']} is newer than this vla-sdk reads ({FORMAT_VERSION}); "
            "upgrade vla-sdk or re-export with this version"
        )
    elif manifest.get("manifest_sha256") != sha256(canonical(manifest)):
        problem = f"{MANIFEST} failed its SHA-256 check: the manifest was modified or damaged"
    if problem:
        z.close()
        raise ArtifactError(f"{path}: {problem}")
    return manifest, z


def read_artifact(path: str | Path) -> Artifact:
    """Read and verify an artifact (see the module docstring for the checks)."""
    path = Path(path)
    manifest, z = read_manifest(path)
    with z:
        data = {}
        for name in parts_of(manifest):
            data[name] = _read_entry(z, path, name)
            want = manifest.get("parts", {}).get(name, {}).get("sha256")
            got = sha256(data[name])
            if got != want:
                raise ArtifactError(
                    f"{path}: part {name} failed its SHA-256 check (manifest {want}, file {got}): "
                    "the artifact was modified or damaged; re-export it"
                )
    if ONNX_FUNCTION in data:
        return Artifact(manifest, {}, data[ONNX_FUNCTION])
    return Artifact(manifest, load_weights(data[WEIGHTS], f"{path}: {WEIGHTS}"), data[FUNCTION])
