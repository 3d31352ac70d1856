import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vla_sdk.export.quantize import (
    dequantize,
    keep_float_reason,
    quantize_params,
    quantize_tensor,
    to_bf16_bits,
)


@pytest.mark.parametrize("shape", [(64, 256), (100, 70), (3, 3, 16, 96), (4, 4, 16, 64)])
@pytest.mark.parametrize("mode", ["bf16", "int8", "int4"])
def test_dequantize_in_graph_matches_numpy_and_error_is_small(shape, mode):
    w = (0.05 * np.random.default_rng(0).standard_normal(shape)).astype(np.float32)
    arrays, info = quantize_tensor("blk.fc.kernel", w, mode)
    host = dequantize(info, arrays, np)
    graph = np.asarray(jax.jit(lambda a: dequantize(info, a))(arrays))  # in a graph, as in the exported function
    assert graph.shape == w.shape and graph.dtype == np.float32
    np.testing.assert_array_equal(graph, host)
    bound = {"bf16": 0.004, "int8": 0.01, "int4": 0.15}[mode]  # relative RMS error of symmetric quantization
    assert info["rel_rms_error"] < bound
    stored = sum(a.nbytes for a in arrays.values())
    assert stored <= {"bf16": 0.5, "int8": 0.27, "int4": 0.19}[mode] * w.nbytes  # (100, 70): int4 pads 100 -> 128


def test_int4_packing_is_exact_for_representable_values():
    q = np.random.default_rng(1).integers(-7, 8, (130, 40))
    q[0::64] = 7  # every (group, channel) has absmax 7: scales are exactly 1 and values round-trip exactly
    arrays, info = quantize_tensor("x.kernel", q.astype(np.float32), "int4")
    assert arrays["q"].dtype == np.uint8 and arrays["q"].shape == (192 // 2, 40)  # 130 rows padded to 3 groups of 64
    assert arrays["scale"].shape == (3, 40) and np.all(arrays["scale"] == 1)
    np.testing.assert_array_equal(np.asarray(jax.jit(lambda a: dequantize(info, a))(arrays)), q)


def test_bf16_bits_round_to_nearest_even_and_zero_channels_are_safe():
    w = np.random.default_rng(2).standard_normal((64, 80)).astype(np.float32)
    assert np.array_equal(to_bf16_bits(w), np.asarray(jnp.asarray(w).astype(jnp.bfloat16)).view(np.uint16))
    z = np.zeros((64, 80), np.float32)  # zero-initialized kernels (adaLN gates) have zero channels
    for mode in ("int8", "int4"):
        arrays, info = quantize_tensor("m.kernel", z, mode)
        assert np.all(np.isfinite(arrays["scale"])) and not dequantize(info, arrays, np).any()


def test_float_kept_layers_and_unknown_mode():
    kernel = np.zeros((64, 64), np.float32)
    assert keep_float_reason("encoder.ln.scale", np.zeros(64)) == "norm"
    assert keep_float_reason("a.fc1.bias", np.zeros(64)) == "bias"
    assert keep_float_reason("token_embed.embedding", np.zeros((259, 64))) is None  # large tables are quantized
    assert keep_float_reason("token_embed.embedding", np.zeros((8, 64))).startswith("small")
    assert keep_float_reason("camera_embed", np.zeros((2, 64))) == "embedding/position table"
    assert keep_float_reason("head.action_in.kernel", np.zeros((16, 32))).startswith("small")
    assert keep_float_reason("head.queries", np.zeros((20, 96))) is None  # tables of >= 1024 elements: quantized
    assert keep_float_reason("token_pos", np.zeros((8, 64))) == "embedding/position table"
    assert keep_float_reason("head.action_out.kernel", np.zeros((256, 32))) == "final action projection"
    assert keep_float_reason("a.qkv.kernel", kernel) is None
    stored, meta = quantize_params([("a.qkv.kernel", kernel), ("a.qkv.bias", np.zeros(64))], "int8")
    assert sorted(stored) == ["a.qkv.bias.w", "a.qkv.kernel.q", "a.qkv.kernel.scale"]
    assert meta["float_kept"] == {"a.qkv.bias": "bias"} and stored["a.qkv.kernel.q"].dtype == np.int8
    with pytest.raises(ValueError, match=r"unknown quantization mode 'int3'.*none, bf16, int8, int4"):
        quantize_params([], "int3")


def test_int4_groups_divide_the_rows_when_they_can():
    """A 96-row kernel (d_model 96) takes one group of 96: no padding, a third fewer bytes than groups of 64."""
    w = np.random.default_rng(3).standard_normal((96, 64)).astype(np.float32)
    arrays, info = quantize_tensor("x.kernel", w, "int4")
    assert info["group_size"] == 96 and arrays["q"].shape == (48, 64) and arrays["scale"].shape == (1, 64)
    assert info["rel_rms_error"] < 0.15
    np.testing.assert_allclose(np.asarray(jax.jit(lambda a: dequantize(info, a))(arrays)), dequantize(info, arrays, np))


def test_small_even_kernels_are_one_int4_group_and_scales_are_float16():
    w = np.random.default_rng(4).standard_normal((18, 96)).astype(np.float32)  # vla-xs keypoint projection
    arrays, info = quantize_tensor("vision.proj.kernel", w, "int4")
    assert info["group_size"] == 18 and arrays["q"].shape == (9, 96) and arrays["scale"].shape == (1, 96)
    for mode in ("int8", "int4"):
        arrays, info = quantize_tensor("x.kernel", w, mode)
        assert arrays["scale"].dtype == np.float16
        # values were rounded against the float16 scale: the measured error is the stored one, and it is small
        err = np.sqrt(np.mean((dequantize(info, arrays, np) - w) ** 2)) / np.sqrt(np.mean(w**2))
        assert abs(err - info["rel_rms_error"]) < 1e-6 and err < {"int8": 0.01, "int4": 0.15}[mode]
    tiny = np.full((64, 32), 1e-9, np.float32)  # below float16's normal range: dequantizes to ~0, not inf/nan
    arrays, info = quantize_tensor("t.kernel", tiny, "int8")
    assert np.all(np.isfinite(dequantize(info, arrays, np))) and np.abs(dequantize(info, arrays, np)).max() < 1e-4


def test_int4_scales_minimize_the_group_error_not_just_cover_the_absmax():
    """Clipping the few largest weights of a group to +-7 gives all the others a finer step: less total error."""
    w = np.random.default_rng(5).standard_normal((128, 64)).astype(np.float32)
    _, info = quantize_tensor("x.kernel", w, "int4")
    absmax_scale = (np.abs(w).max(0) / 7).astype(np.float16).astype(np.float32)  # one group of 128 rows
    absmax_err = np.sqrt(np.mean((np.clip(np.round(w / absmax_scale), -7, 7) * absmax_scale - w) ** 2))
    assert info["rel_rms_error"] < 0.95 * absmax_err / np.sqrt(np.mean(w**2))
