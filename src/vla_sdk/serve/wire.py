"""The wire format of openpi's policy server, written from its description (numpy + msgpack only; no pickle).

Every websocket message is one msgpack value. A numpy array travels as a map with bytes keys, as openpi's
``openpi_client.msgpack_numpy`` writes and reads it::

    {b"__ndarray__": True, b"data": <raw bytes, C order>, b"dtype": "<f4", b"shape": [h, w, 3]}
    {b"__npgeneric__": True, b"data": <python scalar>, b"dtype": "<f8"}          (a numpy scalar)

so openpi's ``unpackb`` decodes what :func:`pack` writes and :func:`unpack` decodes what openpi's ``Packer`` writes.
Decoding checks what it is given: only plain numeric and bool dtypes (never object arrays, whose bytes would be
pointers), a shape of non-negative ints and exactly as many bytes as shape and dtype need.
"""

from __future__ import annotations

import math

import msgpack
import numpy as np

# dtype kinds an array may have on the wire: bool, signed/unsigned int, float (openpi refuses V, O and c too)
_KINDS = frozenset("biuf")


class WireError(ValueError):
    """A message that is not msgpack, or an array entry that does not describe a plain numeric array."""


def _encode(obj):
    if isinstance(obj, np.ndarray | np.generic) and obj.dtype.kind not in _KINDS:
        raise TypeError(f"cannot send a numpy {obj.dtype} value (only bool, integer and float arrays)")
    if isinstance(obj, np.ndarray):
        a = np.ascontiguousarray(obj)
        return {b"__ndarray__": True, b"data": a.tobytes(), b"dtype": a.dtype.str, b"shape": list(a.shape)}
    if isinstance(obj, np.generic):
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"cannot send a {type(obj).__name__}")


def _dtype(raw) -> np.dtype:
    if not isinstance(raw, str | bytes):
        raise WireError(f"array dtype must be a string, got {type(raw).__name__}")
    try:
        dt = np.dtype(raw.decode() if isinstance(raw, bytes) else raw)
    except (TypeError, ValueError, UnicodeDecodeError) as e:
        raise WireError(f"array dtype {raw!r} is not a numpy dtype") from e
    if dt.kind not in _KINDS or dt.fields is not None or dt.subdtype is not None:
        raise WireError(f"array dtype {raw!r} is not allowed (only bool, integer and float)")
    return dt


def _decode(obj: dict):
    if b"__ndarray__" in obj:
        dt, data, shape = _dtype(obj.get(b"dtype")), obj.get(b"data"), obj.get(b"shape")
        if not isinstance(shape, list | tuple) or not all(isinstance(n, int) and n >= 0 for n in shape):
            raise WireError(f"array shape must be a list of non-negative ints, got {shape!r}")
        if not isinstance(data, bytes) or len(data) != math.prod(shape) * dt.itemsize:
            size = len(data) if isinstance(data, bytes) else type(data).__name__
            raise WireError(
                f"array of shape {list(shape)} and dtype {dt.str} needs {math.prod(shape) * dt.itemsize} "
                f"bytes of data, got {size}"
            )
        return np.frombuffer(data, dtype=dt).reshape(shape)
    if b"__npgeneric__" in obj:
        dt, value = _dtype(obj.get(b"dtype")), obj.get(b"data")
        if not isinstance(value, bool | int | float):
            raise WireError(f"numpy scalar data must be a number, got {type(value).__name__}")
        try:
            return dt.type(value)
        except (OverflowError, ValueError) as e:
            raise WireError(f"numpy scalar {value!r} does not fit {dt.str}") from e
    return obj


def pack(obj) -> bytes:
    """One message: dicts, lists, str, numbers, None, bytes and numpy arrays/scalars (bool, int, float)."""
    return msgpack.packb(obj, default=_encode, use_bin_type=True)


MAX_ITEMS = 2**16  # entries of one msgpack array or map: a 16 MiB message of 1-byte items would be 16 M objects


def unpack(data: bytes, max_depth: int = 32, max_items: int = MAX_ITEMS):
    """Decode one message (arrays come back read-only, viewing the message's bytes). Raises :class:`WireError`.

    Bulk data travels as array entries (bytes); a msgpack array or map of more than ``max_items`` entries is
    refused, so a small message cannot unfold into millions of Python objects."""
    try:
        out = msgpack.unpackb(data, object_hook=_decode, raw=False, max_array_len=max_items, max_map_len=max_items)
    except WireError:
        raise
    except (msgpack.exceptions.StackError, RecursionError) as e:
        raise WireError("not a msgpack message we accept: it nests too deeply") from e
    except ValueError as e:
        if "exceeds max_" in str(e):  # msgpack's max_array_len / max_map_len
            raise WireError(f"not a msgpack message we accept: an array or map of more than {max_items} entries") from e
        raise WireError(f"not a msgpack message ({type(e).__name__}: {e})") from e
    except (msgpack.UnpackException, TypeError) as e:
        raise WireError(f"not a msgpack message ({type(e).__name__}: {e})") from e
    _check_depth(out, max_depth)
    return out


def _check_depth(obj, left: int) -> None:
    if left < 0:
        raise WireError("message nests too deeply")
    if isinstance(obj, dict):
        for v in obj.values():
            _check_depth(v, left - 1)
    elif isinstance(obj, list):
        for v in obj:
            _check_depth(v, left - 1)
