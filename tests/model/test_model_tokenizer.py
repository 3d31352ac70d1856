import numpy as np
import pytest

from vla_sdk.model.tokenizer import BOS, EOS, PAD, VOCAB_SIZE, ByteTokenizer


def test_encode_layout_and_round_trip():
    tok = ByteTokenizer(32)
    ids, mask = tok.encode("  Pick up   the RED cube \n")
    assert ids.shape == mask.shape == (32,) and ids.dtype == np.int32 and mask.dtype == bool
    text = "pick up the red cube"
    assert ids[0] == BOS and ids[len(text) + 1] == EOS
    assert list(ids[1 : len(text) + 1]) == list(text.encode())
    assert (ids[len(text) + 2 :] == PAD).all()
    assert mask.sum() == len(text) + 2 and mask[: len(text) + 2].all()
    assert tok.decode(ids) == text
    assert ids.max() < VOCAB_SIZE == tok.vocab_size


def test_non_ascii_round_trip():
    tok = ByteTokenizer(40)
    ids, mask = tok.encode("Greif den Würfel → links")
    assert tok.decode(ids, mask) == "greif den würfel → links"


def test_truncation_keeps_eos_and_whole_characters():
    tok = ByteTokenizer(8)
    ids, mask = tok.encode("abcdefghijkl")
    assert mask.all() and ids[0] == BOS and ids[-1] == EOS
    assert tok.decode(ids) == "abcdef"
    ids, mask = tok.encode("ééé")  # 2 bytes each: 6 body bytes fit 3 characters exactly; 5 fit 2 characters
    assert tok.decode(ids) == "ééé"
    ids, mask = ByteTokenizer(7).encode("ééé")
    assert ByteTokenizer(7).decode(ids) == "éé" and mask.sum() == 6


def test_encode_batch_and_empty_text():
    tok = ByteTokenizer(16)
    ids, mask = tok.encode_batch(["stack", "", "a much longer instruction than fits"])
    assert ids.shape == mask.shape == (3, 16)
    assert mask.sum(axis=1).tolist() == [7, 2, 16]
    assert [tok.decode(row) for row in ids] == ["stack", "", "a much longer "]
    with pytest.raises(TypeError):
        tok.encode_batch("not a list")
    with pytest.raises(ValueError, match="max_len"):
        ByteTokenizer(1)
