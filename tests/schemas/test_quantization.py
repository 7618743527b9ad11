import numpy as np
import pytest

from schemas import quantization


def _formula(codes: np.ndarray) -> np.ndarray:
    return codes.astype(np.float32) * np.float32(4.0 / 255.0) + np.float32(4.0 / 512.0 - 2.0)


def test_dequantize_is_bit_exact_with_the_official_formula_on_all_256_codes():
    codes = np.arange(256, dtype=np.uint8)
    expected = _formula(codes)
    got = quantization.dequantize(codes, "float32")
    assert got.dtype == np.float32
    assert np.array_equal(got.view(np.uint32), expected.view(np.uint32))


def test_dequantize_codes_sit_at_bin_centres():
    # The formula's bias puts each code at the centre of its bin: code 0 is -2 + 4/512.
    values = quantization.dequantize(np.array([0, 128, 255], np.uint8))
    assert values[0] == np.float32(-1.9921875)
    assert values[1] == pytest.approx(128 * 4 / 255 - 1.9921875, abs=1e-6)
    assert values[2] == pytest.approx(2.0078125, abs=1e-6)


def test_float16_storage_is_the_float32_value_rounded_once():
    codes = np.arange(256, dtype=np.uint8).reshape(16, 16)
    assert np.array_equal(
        quantization.dequantize(codes, "float16"),
        quantization.dequantize(codes, "float32").astype(np.float16),
    )


def test_quantize_inverts_dequantize():
    codes = np.arange(256, dtype=np.uint8)
    assert np.array_equal(quantization.quantize(quantization.dequantize(codes)), codes)


def test_quantize_clips_out_of_range_values():
    assert quantization.quantize(np.array([-5.0, 5.0])).tolist() == [0, 255]


def test_uint8_storage_keeps_codes_unchanged():
    codes = np.array([[0, 7, 255]], np.uint8)
    assert np.array_equal(quantization.store_frames(codes, "uint8"), codes)


def test_unknown_dtype_is_refused():
    with pytest.raises(ValueError, match="cannot dequantize"):
        quantization.dequantize(np.zeros(3, np.uint8), "int8")


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_two_codes_at_a_time_match_the_formula_for_every_byte_pair(dtype):
    # Even-width frames take the two-codes-per-gather table: check all 65,536 pairs.
    pairs = np.stack(np.meshgrid(np.arange(256), np.arange(256), indexing="ij"), -1).astype(np.uint8)
    pairs = pairs.reshape(-1, 2)
    got = quantization.dequantize(pairs, dtype)
    assert got.dtype == np.dtype(dtype) and got.shape == pairs.shape
    assert np.array_equal(got, _formula(pairs).astype(dtype))


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_odd_widths_and_strided_inputs_dequantize_the_same(dtype):
    codes = np.random.default_rng(3).integers(0, 256, (4, 6, 10), dtype=np.uint8)
    for view in (codes[..., :7], codes[:, ::2, :], codes[..., ::2], np.uint8(9), codes[0, 0, :1]):
        got = quantization.dequantize(view, dtype)
        assert got.shape == np.shape(view) and np.array_equal(got, _formula(np.asarray(view)).astype(dtype))
