"""The numpy l2 step of the normalization chain: tf.nn.l2_normalize's formula, in float32."""

import numpy as np
import pytest

from schemas.normalization import L2_EPSILON, l2_normalize


def test_l2_normalize_equals_tf_nn_l2_normalize_on_frames_including_an_all_zero_frame():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    frames = rng.normal(size=(2, 5, 1152)).astype(np.float32)
    frames[0, 3] = 0.0  # a padding frame
    frames[1, 0] *= 1e-7  # a frame whose squared norm is below the epsilon
    expected = tf.nn.l2_normalize(frames, axis=-1, epsilon=L2_EPSILON).numpy()
    out = l2_normalize(frames)
    assert out.shape == frames.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-7)
    assert np.array_equal(out[0, 3], np.zeros(1152, np.float32))
    np.testing.assert_allclose(np.linalg.norm(out[0, :3], axis=-1), 1.0, rtol=1e-6)


def test_a_frame_below_the_epsilon_is_divided_by_the_epsilons_root_not_its_own_norm():
    frame = np.full((1, 4), 1e-7, np.float32)  # sum of squares 4e-14 < 1e-12
    np.testing.assert_allclose(l2_normalize(frame), frame / np.sqrt(np.float32(1e-12)), rtol=1e-6)
    assert np.linalg.norm(l2_normalize(frame)) < 1.0  # not scaled up to unit length


def test_float16_frames_are_normalised_in_float32_as_tf_does_after_a_cast():
    import tensorflow as tf

    rng = np.random.default_rng(1)
    frames = (rng.normal(size=(6, 128)) * 300).astype(np.float16)  # squares overflow float16
    out = l2_normalize(frames)
    assert out.dtype == np.float32 and np.all(np.isfinite(out))
    expected = tf.nn.l2_normalize(tf.cast(frames, tf.float32), axis=-1, epsilon=L2_EPSILON).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), 1.0, rtol=1e-5)


def test_only_the_last_axis_is_normalised_and_the_input_is_left_unchanged():
    frames = np.array([[[3.0, 4.0], [6.0, 8.0]], [[0.0, 2.0], [1.0, 0.0]]], np.float32)
    copy = frames.copy()
    expected = [[[0.6, 0.8], [0.6, 0.8]], [[0.0, 1.0], [1.0, 0.0]]]
    assert l2_normalize(frames) == pytest.approx(np.asarray(expected, np.float32), rel=1e-6)
    assert np.array_equal(frames, copy)


def test_l2_normalize_gives_unit_rows_and_leaves_zero_rows_finite():
    frames = np.array([[3.0, 4.0], [0.0, 0.0]], np.float32)
    out = l2_normalize(frames)
    assert np.allclose(out[0], [0.6, 0.8]) and np.array_equal(out[1], [0.0, 0.0])
