"""The model side of the normalization chain: the Keras layer gives the numpy chain's values."""

import json

import keras
import numpy as np
import pytest

from schemas.normalization import l2_normalize
from trainer.models.normalization import FrameNormalization


def _frames(dtype=np.float32, seed=0):
    """[2, 5, 12] frames with lengths 5 and 3; one real frame is all zero."""
    rng = np.random.default_rng(seed)
    frames = (rng.normal(size=(2, 5, 12)) * 4).astype(dtype)
    frames[0, 2] = 0.0
    mask = (np.arange(5)[None, :] < np.array([5, 3])[:, None]).astype(np.float32)
    return frames, mask


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_the_layer_gives_the_same_values_as_schemas_l2_normalize_on_the_same_frames(dtype):
    frames, mask = _frames(dtype)
    out = keras.ops.convert_to_numpy(FrameNormalization()(frames, mask))
    expected = l2_normalize(frames) * mask[..., None]
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-7)
    assert np.array_equal(out[0, 2], np.zeros(12, np.float32))  # the all-zero frame stays zero


def test_padding_frames_are_exactly_zero_whatever_they_held():
    frames, mask = _frames()
    frames[1, 3:] = 1e3
    out = keras.ops.convert_to_numpy(FrameNormalization(np.ones(12), np.full(12, 0.5))(frames, mask))
    assert np.array_equal(out[1, 3:], np.zeros((2, 12), np.float32))
    assert np.all(out[1, :3] != 0)


def test_the_zscore_applies_per_dimension_after_the_l2_step():
    frames, mask = _frames(seed=1)
    mean = np.linspace(-0.2, 0.2, 12).astype(np.float32)
    std = np.linspace(0.5, 2.0, 12).astype(np.float32)
    out = keras.ops.convert_to_numpy(FrameNormalization(mean, std)(frames, mask))
    expected = (l2_normalize(frames) - mean) / std * mask[..., None]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_the_config_round_trips_through_json_with_its_zscore_and_refuses_another_width():
    frames, mask = _frames(seed=2)
    layer = FrameNormalization(np.full(12, 0.1), np.full(12, 3.0), name="norm")
    config = json.loads(json.dumps(layer.get_config()))
    clone = FrameNormalization.from_config(config)
    assert clone.name == "norm"
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(clone(frames, mask)), keras.ops.convert_to_numpy(layer(frames, mask))
    )
    with pytest.raises(ValueError, match="z-score parameters have 12 dims, frames 7"):
        FrameNormalization(np.zeros(12), np.ones(12))(np.ones((1, 2, 7), np.float32), np.ones((1, 2)))
