"""How a teacher-targets dataset stores the teacher's outputs: `all` and `top_k:K`."""

import numpy as np
import pytest

from schemas import features as F
from schemas.preprocessed import DatasetLayout
from schemas.targets import ALL_CLASSES, TOP_K, TargetsEncoding


def test_targets_encodings_keep_the_top_classes_and_the_rest_as_their_mean():
    from schemas.targets import TargetsEncoding

    predictions = np.array([[0.1, 0.9, 0.3, 0.05, 0.2], [0.5, 0.5, 0.0, 0.25, 0.75]], np.float32)
    exact = TargetsEncoding.parse("all")
    assert np.array_equal(
        exact.dense_numpy(
            {F.TEACHER_PREDICTIONS: [r[F.TEACHER_PREDICTIONS] for r in exact.encode(predictions)]}, 5
        ),
        predictions,
    )
    top = TargetsEncoding.parse("top_k:2")
    encoded = top.encode(predictions)
    assert encoded[0][F.TEACHER_TOP_CLASSES].tolist() == [1, 2]
    assert encoded[1][F.TEACHER_TOP_CLASSES].tolist() == [4, 0]  # ties: the lower class first
    columns = {name: [row[name] for row in encoded] for name in top.prediction_columns()}
    dense = top.dense_numpy(columns, 5)
    np.testing.assert_allclose(dense[0], [0.35 / 3, 0.9, 0.3, 0.35 / 3, 0.35 / 3], rtol=1e-6)
    np.testing.assert_allclose(dense[1], [0.5, 0.75 / 3, 0.75 / 3, 0.75 / 3, 0.75], rtol=1e-6)
    assert top.bytes_per_video(3862, 1024) == 6 * 2 + 4 + 4 * 1024
    with pytest.raises(ValueError, match="top_k:5 keep every one"):
        DatasetLayout(F.FRAME_LEVEL, teacher_targets="top_k:5", num_classes=5, representation_dim=3)
    for text in ("top_k", "top:3", "all:2", "top_k:0"):
        with pytest.raises(ValueError):
            TargetsEncoding.parse(text)


# ----- added with the mirror file -------------------------------------------------------------
@pytest.mark.parametrize(
    "text,kind,k", [("all", ALL_CLASSES, 0), ("top_k:100", TOP_K, 100), (" top_k : 7 ", TOP_K, 7)]
)
def test_an_encoding_parses_and_prints_back_as_its_canonical_text(text, kind, k):
    encoding = TargetsEncoding.parse(text)
    assert (encoding.kind, encoding.k) == (kind, k)
    assert TargetsEncoding.parse(str(encoding)) == encoding
    assert str(encoding) == ("all" if kind == ALL_CLASSES else f"top_k:{k}")


def test_each_malformed_encoding_says_what_is_wrong():
    with pytest.raises(
        ValueError, match="cannot parse predictions encoding 'top_k:-3'; expected all or top_k:K"
    ):
        TargetsEncoding.parse("top_k:-3")
    with pytest.raises(ValueError, match="need K >= 1, got 0"):
        TargetsEncoding.parse("top_k:0")
    with pytest.raises(ValueError, match="predictions 'all' take no number"):
        TargetsEncoding(ALL_CLASSES, 3)
    with pytest.raises(ValueError, match="unknown predictions encoding 'top'"):
        TargetsEncoding("top", 3)
    TargetsEncoding.parse("top_k:4").check(5)
    with pytest.raises(ValueError, match="top_k:5 keep every one of the 5 classes; use 'all'"):
        TargetsEncoding.parse("top_k:5").check(5)


def test_stored_sizes_and_columns_follow_the_module_docstring():
    exact, top = TargetsEncoding.parse("all"), TargetsEncoding.parse("top_k:100")
    assert exact.bytes_per_video(3862, 0) == 15448  # 15.4 KB at the YouTube-8M classes
    assert top.bytes_per_video(3862, 0) == 604
    assert exact.bytes_per_video(3862, 1024) - exact.bytes_per_video(3862, 0) == 4096
    assert exact.prediction_columns() == (F.TEACHER_PREDICTIONS,)
    assert top.prediction_columns() == (F.TEACHER_TOP_CLASSES, F.TEACHER_TOP_SCORES, F.TEACHER_REST_SCORE)


def test_top_k_columns_have_their_stored_types_and_the_rest_is_the_mean_of_the_others():
    predictions = np.array([[0.7, 0.3, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]], np.float32)
    encoded = TargetsEncoding.parse("top_k:2").encode(predictions)
    assert encoded[0][F.TEACHER_TOP_CLASSES].dtype == np.int16
    assert encoded[0][F.TEACHER_TOP_SCORES].dtype == np.float32
    assert encoded[0][F.TEACHER_REST_SCORE] == np.float32(0.0)
    assert encoded[1][F.TEACHER_TOP_CLASSES].tolist() == [0, 1]  # four-way tie: lowest classes
    assert encoded[1][F.TEACHER_REST_SCORE] == pytest.approx(0.25, rel=1e-6)


@pytest.mark.parametrize("text", ["all", "top_k:3"])
def test_the_tensorflow_decoding_equals_the_numpy_decoding(text):
    import tensorflow as tf

    encoding = TargetsEncoding.parse(text)
    predictions = np.random.default_rng(0).uniform(size=(4, 9)).astype(np.float32)
    encoded = encoding.encode(predictions)
    columns = {name: [row[name] for row in encoded] for name in encoding.prediction_columns()}
    if encoding.kind == ALL_CLASSES:
        parsed = {F.TEACHER_PREDICTIONS: tf.constant(np.stack(columns[F.TEACHER_PREDICTIONS]))}
    else:  # as DatasetLayout.parse_tf_examples gives them: ragged lists, a scalar per video
        parsed = {
            F.TEACHER_TOP_CLASSES: tf.ragged.constant(
                [c.astype(np.int64) for c in columns[F.TEACHER_TOP_CLASSES]]
            ),
            F.TEACHER_TOP_SCORES: tf.ragged.constant(columns[F.TEACHER_TOP_SCORES]),
            F.TEACHER_REST_SCORE: tf.constant(np.asarray(columns[F.TEACHER_REST_SCORE], np.float32)),
        }
    dense = encoding.dense_numpy(columns, 9)
    np.testing.assert_allclose(encoding.dense_tf(parsed, 9).numpy(), dense, rtol=1e-7)
    top = np.argsort(-predictions, axis=1, kind="stable")[:, :3]
    np.testing.assert_array_equal(np.take_along_axis(dense, top, 1), np.take_along_axis(predictions, top, 1))
