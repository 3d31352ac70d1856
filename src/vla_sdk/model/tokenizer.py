"""Byte-level UTF-8 instruction tokenizer: no vocabulary file, nothing to download.

Ids 0..255 are the UTF-8 bytes of the normalized text; :data:`PAD`, :data:`BOS` and :data:`EOS` follow. Text is
normalized (stripped, lower-cased, inner whitespace collapsed to one space), then encoded as
``[BOS, bytes..., EOS, PAD...]`` of a fixed length; long texts lose their tail bytes (never a partial character)
and keep the EOS.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vla_sdk.errors import InputError

PAD, BOS, EOS = 256, 257, 258
VOCAB_SIZE = 259


def normalize(text: str) -> str:
    """Lower-case, strip, and collapse runs of whitespace to one space."""
    return " ".join(text.lower().split())


def _cut_utf8(data: bytes, limit: int) -> bytes:
    """``data[:limit]``, shortened further so that no multi-byte character is split."""
    if len(data) <= limit:
        return data
    end = limit
    while end > 0 and (data[end] & 0xC0) == 0x80:  # data[end] continues the character that starts before it
        end -= 1
    return data[:end]


class ByteTokenizer:
    """Fixed-length byte tokenizer. ``encode(text) -> (ids [L] int32, mask [L] bool)`` with ``L = max_len``."""

    pad_id, bos_id, eos_id, vocab_size = PAD, BOS, EOS, VOCAB_SIZE

    def __init__(self, max_len: int):
        if max_len < 2:
            raise InputError(f"max_len must be >= 2 (room for BOS and EOS), got {max_len}")
        self.max_len = max_len

    def lost_bytes(self, text: str) -> int:
        """How many bytes of ``text`` (normalized) do not fit: 0 when it is encoded whole."""
        data = normalize(text).encode("utf-8")
        return len(data) - len(_cut_utf8(data, self.max_len - 2))

    def encode(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Token ids ``[L]`` (int32) and mask ``[L]`` (bool, True = real token)."""
        body = _cut_utf8(normalize(text).encode("utf-8"), self.max_len - 2)
        ids = np.full(self.max_len, PAD, dtype=np.int32)
        n = len(body) + 2
        ids[0], ids[n - 1] = BOS, EOS
        ids[1 : n - 1] = np.frombuffer(body, dtype=np.uint8)
        mask = np.arange(self.max_len) < n
        return ids, mask

    def encode_batch(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Ids ``[B, L]`` and mask ``[B, L]`` for a list of texts."""
        if isinstance(texts, str):
            raise TypeError("encode_batch takes a sequence of strings; use encode() for one string")
        pairs = [self.encode(t) for t in texts]
        if not pairs:
            return np.zeros((0, self.max_len), np.int32), np.zeros((0, self.max_len), bool)
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])

    def decode(self, ids, mask=None) -> str:
        """The text of one id sequence; special tokens and masked positions are dropped."""
        ids = np.asarray(ids).reshape(-1)
        keep = ids < 256
        if mask is not None:
            keep &= np.asarray(mask, bool).reshape(-1)
        return bytes(ids[keep].astype(np.uint8).tolist()).decode("utf-8", errors="replace")
