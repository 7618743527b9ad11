import numpy as np
import pytest

from schemas.views import View


def test_parse_round_trips_through_str():
    for text in ("every_n:10", "uniform:30", "random:5", "all"):
        assert str(View.parse(text)) == text


@pytest.mark.parametrize("text", ["every_n", "every_n:0", "uniform:-3", "sometimes:4", "uniform:x", "all:3"])
def test_parse_rejects_malformed_views(text):
    with pytest.raises(ValueError):
        View.parse(text)


@pytest.mark.parametrize(
    ("num_frames", "expected"),
    [(1, [0]), (9, [0]), (10, [0]), (11, [0, 10]), (30, [0, 10, 20]), (31, [0, 10, 20, 30])],
)
def test_every_n_keeps_frames_0_n_2n_below_the_length(num_frames, expected):
    assert View.parse("every_n:10").frame_indices(num_frames).tolist() == expected


def test_every_n_caps_long_videos_at_300_frames_first():
    indices = View.parse("every_n:10").frame_indices(1000)
    assert indices.tolist() == list(range(0, 300, 10))
    assert (
        View.parse("every_n:7").num_selected(1000) == len(View.parse("every_n:7").frame_indices(1000)) == 43
    )


def test_uniform_matches_the_floor_formula():
    view = View.parse("uniform:6")
    for n in (7, 10, 31, 299, 300, 301, 5000):
        capped = min(n, 300)
        expected = [int(np.floor((i + 0.5) * capped / 6)) for i in range(6)]
        assert view.frame_indices(n).tolist() == expected


def test_uniform_keeps_all_frames_of_short_or_exact_videos():
    view = View.parse("uniform:6")
    assert view.frame_indices(4).tolist() == [0, 1, 2, 3]
    assert view.frame_indices(6).tolist() == [0, 1, 2, 3, 4, 5]


def test_uniform_indices_are_strictly_increasing_and_in_range():
    view = View.parse("uniform:30")
    for n in range(31, 400):
        idx = view.frame_indices(n)
        assert len(idx) == 30 and (np.diff(idx) > 0).all() and idx[-1] < min(n, 300)


def test_num_selected_agrees_with_frame_indices():
    for text in ("every_n:3", "uniform:30", "all"):
        view = View.parse(text)
        for n in (1, 2, 29, 30, 31, 300, 301):
            assert view.num_selected(n) == len(view.frame_indices(n))


def test_random_view_is_sorted_distinct_and_needs_a_generator():
    view = View.parse("random:5")
    idx = view.frame_indices(100, rng=np.random.default_rng(0))
    assert len(set(idx.tolist())) == 5 and (np.diff(idx) > 0).all()
    assert not view.is_deterministic
    with pytest.raises(ValueError, match="random generator"):
        view.frame_indices(100)


@pytest.mark.parametrize("text", ["every_n:10", "every_n:7", "every_n:1", "uniform:6", "uniform:30", "all"])
def test_tensorflow_view_gather_equals_the_numpy_rules(text):
    import tensorflow as tf

    view = View.parse(text)
    lengths = np.array([0, 1, 5, 6, 7, 29, 30, 31, 299, 300, 301, 500])
    rng = np.random.default_rng(3)
    frames = rng.normal(size=(len(lengths), 300, 2)).astype(np.float32)
    for b, n in enumerate(lengths):
        frames[b, min(n, 300) :] = 0
    expected, expected_counts = view.gather_padded(frames, lengths)
    got, counts = view.gather_padded_tf(tf.constant(frames), tf.constant(lengths))
    np.testing.assert_array_equal(counts.numpy(), expected_counts)
    np.testing.assert_array_equal(got.numpy(), expected)
    for b, n in enumerate(lengths):  # and the numpy gather is the indices' frames
        np.testing.assert_array_equal(expected[b, : expected_counts[b]], frames[b, view.frame_indices(n)])


def test_tensorflow_view_gathers_byte_strings_before_decoding():
    import tensorflow as tf

    strings = tf.constant([[f"f{i}".encode() for i in range(20)]] * 2)
    kept, counts = View.parse("every_n:7").gather_padded_tf(strings, tf.constant([20, 3]))
    assert counts.numpy().tolist() == [3, 1]
    assert kept.numpy()[0, :4].tolist() == [b"f0", b"f7", b"f14", b""]
    assert kept.numpy()[1, :2].tolist() == [b"f0", b""]


def test_tensorflow_random_view_is_distinct_sorted_and_seeded():
    import tensorflow as tf

    view = View.parse("random:6")
    frames = np.tile(np.arange(300, dtype=np.float32)[None, :, None], (4, 1, 1))
    lengths = tf.constant([3, 6, 50, 300])
    a, counts = view.gather_padded_tf(frames, lengths, seed=tf.constant([1, 2]))
    b, _ = view.gather_padded_tf(frames, lengths, seed=tf.constant([1, 2]))
    c, _ = view.gather_padded_tf(frames, lengths, seed=tf.constant([1, 3]))
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(a.numpy(), c.numpy())
    assert counts.numpy().tolist() == [3, 6, 6, 6]
    for row, n, count in zip(a.numpy()[..., 0], [3, 6, 50, 300], counts.numpy(), strict=True):
        kept = row[:count]
        assert (np.diff(kept) > 0).all() and kept.max() < n
    assert view.serving_view == View.parse("uniform:6")
