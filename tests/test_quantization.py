import numpy as np
import pytest

from schemas import quantization


def test_dequantize_is_bit_exact_with_the_official_formula_on_all_256_codes():
    codes = np.arange(256, dtype=np.uint8)
    expected = codes.astype(np.float32) * np.float32(4.0 / 255.0) + np.float32(4.0 / 512.0 - 2.0)
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
