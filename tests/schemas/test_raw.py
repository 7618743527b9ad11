"""The raw YouTube-8M record formats: writing them as the release does, telling the kinds
apart, and the parse specs that read them back."""

import numpy as np
import pytest

from schemas import features as F
from schemas import raw
from tests.conftest import bytes_feature, random_frames, sequence_example

SEGMENTS = {
    F.SEGMENT_START_TIMES: [0, 15],
    F.SEGMENT_END_TIMES: [5, 20],
    F.SEGMENT_LABELS: [3, 7],
    F.SEGMENT_SCORES: [1.0, 0.0],
}


def _frame_record(num_frames=4, segments=None, seed=0):
    rgb, audio = random_frames(np.random.default_rng(seed), num_frames)
    return raw.frame_level_record(b"vid1", [3, 7], rgb, audio, segments), rgb, audio


def test_a_frame_level_record_parses_back_with_the_specs_byte_for_byte():
    import tensorflow as tf

    record, rgb, audio = _frame_record(segments=SEGMENTS)
    context, lists = tf.io.parse_single_sequence_example(
        record, raw.context_parse_spec(F.FRAME_LEVEL), raw.sequence_parse_spec()
    )
    assert context[F.ID].numpy() == b"vid1" and context[F.LEGACY_ID].numpy() == b""
    assert tf.sparse.to_dense(context[F.LABELS]).numpy().tolist() == [3, 7]
    for name in (F.SEGMENT_START_TIMES, F.SEGMENT_END_TIMES, F.SEGMENT_LABELS, F.SEGMENT_SCORES):
        assert tf.sparse.to_dense(context[name]).numpy().tolist() == SEGMENTS[name]
    for name, frames in ((F.RGB, rgb), (F.AUDIO, audio)):
        stored = lists[name].numpy()
        assert len(stored) == 4 and [len(frame) for frame in stored] == [F.FEATURE_DIMS[name]] * 4
        decoded = np.stack([np.frombuffer(frame, np.uint8) for frame in stored])
        assert np.array_equal(decoded, frames)


def test_a_video_level_record_parses_back_with_the_context_spec():
    import tensorflow as tf

    mean_rgb = np.linspace(-1, 1, 1024, dtype=np.float32)
    mean_audio = np.linspace(0, 2, 128, dtype=np.float32)
    record = raw.video_level_record(b"v2", [1], mean_rgb, mean_audio)
    parsed = tf.io.parse_single_example(record, raw.context_parse_spec(F.VIDEO_LEVEL))
    assert parsed[F.ID].numpy() == b"v2" and tf.sparse.to_dense(parsed[F.LABELS]).numpy().tolist() == [1]
    assert np.array_equal(tf.sparse.to_dense(parsed[F.MEAN_RGB]).numpy(), mean_rgb)
    assert np.array_equal(tf.sparse.to_dense(parsed[F.MEAN_AUDIO]).numpy(), mean_audio)
    assert F.SEGMENT_START_TIMES not in raw.context_parse_spec(F.VIDEO_LEVEL)
    assert F.MEAN_RGB not in raw.context_parse_spec(F.FRAME_LEVEL)


def test_records_are_serialized_deterministically():
    assert _frame_record(seed=3)[0] == _frame_record(seed=3)[0]
    assert _frame_record(seed=3)[0] != _frame_record(seed=4)[0]


def test_detect_kind_tells_frame_and_video_records_apart_and_names_what_is_missing():
    assert raw.detect_kind(_frame_record()[0]) == F.FRAME_LEVEL
    video = raw.video_level_record(b"v", [], np.zeros(1024), np.zeros(128))
    assert raw.detect_kind(video) == F.VIDEO_LEVEL
    with pytest.raises(ValueError, match="neither a 'rgb' feature list .* nor a 'mean_rgb' feature"):
        raw.detect_kind(sequence_example({F.ID: bytes_feature(b"x")}))
    with pytest.raises(ValueError, match="record is not a tf.train.SequenceExample or Example"):
        raw.detect_kind(b"\xff\xff\xff not a protobuf")


def test_segments_ids_and_labels_are_read_from_either_kind_and_a_bad_record_gives_none():
    assert raw.has_segments(_frame_record(segments=SEGMENTS)[0])
    assert not raw.has_segments(_frame_record()[0])
    assert not raw.has_segments(b"\xff\xff\xff")
    assert raw.id_and_labels(_frame_record()[0]) == ("vid1", [3, 7])
    video = raw.video_level_record(b"v9", [4, 2], np.zeros(1024), np.zeros(128))
    assert raw.id_and_labels(video) == ("v9", [4, 2])
    # The 2017 release's `video_id`, and a record with no id or labels at all.
    legacy = sequence_example({F.LEGACY_ID: bytes_feature(b"old")})
    assert raw.id_and_labels(legacy) == ("old", [])
    assert raw.id_and_labels(sequence_example()) == ("", [])
    assert raw.id_and_labels(b"\xff\xff\xff") is None
