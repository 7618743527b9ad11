"""pipelines.records.wire: frame-level records read from their bytes, or left to TF."""

import numpy as np
import pytest
import tensorflow as tf

from pipelines.records import wire
from schemas import features as F
from schemas import raw
from tests.conftest import bytes_feature, frame_list, random_frames, sequence_example


def _record(context=None, lists=None, num_frames=4, seed=0) -> bytes:
    if lists is None:
        rgb, audio = random_frames(np.random.default_rng(seed), num_frames)
        lists = {F.RGB: frame_list(rgb), F.AUDIO: frame_list(audio)}
    return sequence_example(context or {F.ID: bytes_feature(b"v")}, lists)


@pytest.mark.parametrize("feature", F.FRAME_FEATURES)
def test_frame_header_is_what_protobuf_writes_before_each_frame(feature):
    dim = F.FEATURE_DIMS[feature]
    frame = bytes(i % 251 for i in range(dim))
    serialized = tf.train.FeatureList(feature=[bytes_feature(frame)] * 3).SerializeToString()
    header = wire.frame_header(dim)
    assert serialized == (header + frame) * 3


def test_a_released_format_record_splits_into_its_frames_and_context():
    rng = np.random.default_rng(3)
    rgb, audio = random_frames(rng, 301)
    segments = {
        F.SEGMENT_START_TIMES: [5],
        F.SEGMENT_END_TIMES: [10],
        F.SEGMENT_LABELS: [2],
        F.SEGMENT_SCORES: [0.5],
    }
    record = raw.frame_level_record(b"abc", [1, 7], rgb, audio, segments)
    split = wire.split_frame_record(record)
    assert split is not None
    assert np.array_equal(split.frames[F.RGB], rgb) and np.array_equal(split.frames[F.AUDIO], audio)
    assert not split.frames[F.RGB].flags.owndata  # a view into the record, not a copy
    context = tf.train.Example.FromString(split.context_example).features.feature
    assert context[F.ID].bytes_list.value == [b"abc"]
    assert list(context[F.LABELS].int64_list.value) == [1, 7]
    assert list(context[F.SEGMENT_SCORES].float_list.value) == [0.5]


def test_other_feature_lists_and_a_missing_context_are_fine():
    rgb, audio = random_frames(np.random.default_rng(1), 2)
    lists = {
        F.RGB: frame_list(rgb),
        "segment_rgb": tf.train.FeatureList(feature=[bytes_feature(b"x")]),
        F.AUDIO: frame_list(audio),
    }
    record = tf.train.SequenceExample(feature_lists=tf.train.FeatureLists(feature_list=lists))
    split = wire.split_frame_record(record.SerializeToString())
    assert split is not None and split.context_example == b""
    assert np.array_equal(split.frames[F.RGB], rgb)


def _with_frame(feature: str, position: int, replacement: tf.train.Feature) -> bytes:
    rgb, audio = random_frames(np.random.default_rng(0), 4)
    lists = {F.RGB: frame_list(rgb), F.AUDIO: frame_list(audio)}
    lists[feature].feature[position].CopyFrom(replacement)
    return _record(lists=lists)


def _two_lists(rgb_list, audio_list) -> dict:
    return {F.RGB: rgb_list, F.AUDIO: audio_list}


_GOOD = _record()
_GOOD_FEATURE_LISTS = _GOOD[2 + _GOOD[1] :]  # after the context field (tag, 1-byte length, payload)
assert _GOOD_FEATURE_LISTS[0] == 0x12
_RGB_LIST = tf.train.FeatureList(feature=[bytes_feature(bytes(1024))] * 2)
_AUDIO_LIST = tf.train.FeatureList(feature=[bytes_feature(bytes(128))] * 2)

NOT_CANONICAL = {
    "short rgb frame": _with_frame(F.RGB, 2, bytes_feature(b"short")),
    "long audio frame": _with_frame(F.AUDIO, 0, bytes_feature(bytes(129))),
    "float frame": _with_frame(F.RGB, 1, tf.train.Feature(float_list=tf.train.FloatList(value=[1.0]))),
    "two values in a frame": _with_frame(
        F.RGB, 3, tf.train.Feature(bytes_list=tf.train.BytesList(value=[bytes(512), bytes(512)]))
    ),
    # 1,000 + 22 bytes encode to exactly one frame's length: only the header tells.
    "two values in a frame, same length": _with_frame(
        F.RGB, 0, tf.train.Feature(bytes_list=tf.train.BytesList(value=[bytes(1000), bytes(22)]))
    ),
    "missing audio": _record(lists={F.RGB: _RGB_LIST}),
    "empty lists": _record(lists=_two_lists(tf.train.FeatureList(), tf.train.FeatureList())),
    "no feature lists": tf.train.SequenceExample().SerializeToString(),
    "video-level record": raw.video_level_record(b"x", [1], np.zeros(1024), np.zeros(128)),
    "unknown top-level field": _GOOD + b"\x1a\x00",
    "feature_lists twice (protobuf merges them)": _GOOD + _GOOD_FEATURE_LISTS,
    "context twice": _GOOD + b"\x0a\x00",
    "truncated": _GOOD[:-1],
    "garbage": b"\xff\xfe not a protobuf",
    "empty": b"",
}


@pytest.mark.parametrize("name", NOT_CANONICAL)
def test_anything_irregular_is_left_to_tf(name):
    assert wire.split_frame_record(NOT_CANONICAL[name]) is None


def test_a_repeated_frame_list_key_is_left_to_tf():
    # Map entries for the same key, as a writer that concatenates messages makes them.
    lists = tf.train.FeatureLists(feature_list=_two_lists(_RGB_LIST, _AUDIO_LIST)).SerializeToString()
    rgb_only = tf.train.FeatureLists(feature_list={F.RGB: _RGB_LIST}).SerializeToString()
    doubled = lists + rgb_only
    record = b"\x12" + wire.encode_varint(len(doubled)) + doubled
    assert wire.split_frame_record(record) is None
    single = b"\x12" + wire.encode_varint(len(lists)) + lists
    assert wire.split_frame_record(single) is not None


def test_varints_round_trip():
    for value in (0, 1, 127, 128, 1027, 2**21, 2**35 + 5):
        encoded = wire.encode_varint(value)
        assert wire._varint(encoded + b"\x00", 0) == (value, len(encoded))
