"""The official YouTube-8M 8-bit quantization of frame features.

Dequantize: x = q * 4/255 + (4/512 - 2), computed in float32 as the starter code
does. A 256-entry table holds that formula's value for every byte, so converting a
frame is one gather, bit-exact with the formula, and float16 storage is the table
rounded once.
"""

import numpy as np

MAX_QUANTIZED_VALUE = 2.0
MIN_QUANTIZED_VALUE = -2.0
_RANGE = MAX_QUANTIZED_VALUE - MIN_QUANTIZED_VALUE
SCALE = np.float32(_RANGE / 255.0)
BIAS = np.float32(_RANGE / 512.0 + MIN_QUANTIZED_VALUE)

DEQUANTIZE_TABLE_F32 = np.arange(256, dtype=np.float32) * SCALE + BIAS
DEQUANTIZE_TABLE_F16 = DEQUANTIZE_TABLE_F32.astype(np.float16)

FRAME_DTYPES = ("float16", "float32", "uint8")


def _pair_table(table: np.ndarray, pair_dtype) -> np.ndarray:
    """The table for two codes at once: entry `u` holds the values of the two bytes of
    uint16 `u` (in memory order, so any byte order works), as one `pair_dtype` word."""
    byte_pairs = np.arange(1 << 16, dtype=np.uint16).view(np.uint8).reshape(-1, 2)
    return np.ascontiguousarray(table[byte_pairs]).view(pair_dtype).reshape(-1)


# One gather per two codes: measured 1.8x (float16) and 1.5x (float32) the speed of
# one per code, and the values are the same table entries.
_PAIR_TABLES = {
    "float16": _pair_table(DEQUANTIZE_TABLE_F16, np.uint32),
    "float32": _pair_table(DEQUANTIZE_TABLE_F32, np.uint64),
}
_TABLES = {"float16": DEQUANTIZE_TABLE_F16, "float32": DEQUANTIZE_TABLE_F32}


def dequantize(quantized: np.ndarray, dtype: str = "float32") -> np.ndarray:
    """Dequantize uint8 codes to `dtype` (float32 exact; float16 rounds the float32)."""
    if dtype not in _TABLES:
        raise ValueError(f"cannot dequantize to {dtype!r}; expected float16 or float32")
    quantized = np.asarray(quantized, dtype=np.uint8)
    if quantized.ndim and quantized.shape[-1] % 2 == 0:
        quantized = np.ascontiguousarray(quantized)  # the uint16 view needs contiguous rows
        pairs = np.take(_PAIR_TABLES[dtype], quantized.view(np.uint16))
        return pairs.view(_TABLES[dtype].dtype).reshape(quantized.shape)
    # np.take measured 1.7x faster than fancy indexing for a uint8 index array.
    return np.take(_TABLES[dtype], quantized)


def dequantize_tf(quantized):
    """TensorFlow twin of `dequantize` to float32: the same table, gathered in the graph."""
    import tensorflow as tf

    return tf.gather(tf.constant(DEQUANTIZE_TABLE_F32), tf.cast(quantized, tf.int32))


def quantize(values: np.ndarray) -> np.ndarray:
    """Inverse of `dequantize`: nearest code, clipped to [0, 255]."""
    codes = np.rint((np.asarray(values, dtype=np.float32) - BIAS) / SCALE)
    return np.clip(codes, 0, 255).astype(np.uint8)


def store_frames(quantized: np.ndarray, frame_dtype: str) -> np.ndarray:
    """Convert quantized frames to the dataset's storage dtype."""
    if frame_dtype == "uint8":
        return np.asarray(quantized, dtype=np.uint8)
    return dequantize(quantized, frame_dtype)
