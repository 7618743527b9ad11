"""RecordParser on hand-built records: every rule of the raw format has a test."""

import numpy as np
import pytest
import tensorflow as tf

from pipelines.records.parse import INDEX_KEY, SOURCE_KEY, ParseConfig, RecordParser
from schemas import features as F
from schemas import raw
from schemas.quantization import dequantize
from schemas.views import View
from tests.conftest import bytes_feature, frame_list, random_frames, sequence_example

FRAME_CONFIG = ParseConfig(F.FRAME_LEVEL, num_classes=10, view=View.parse("every_n:3"), frame_dtype="float32")


def _records(*payloads):
    return [("shard.tfrecord", i, 100 * i, p) for i, p in enumerate(payloads)]


def _frame_record(video_id=b"v", labels=(1,), num_frames=7, seed=0, **overrides):
    rgb, audio = random_frames(np.random.default_rng(seed), num_frames)
    rgb, audio = overrides.get("rgb", rgb), overrides.get("audio", audio)
    return raw.frame_level_record(video_id, labels, rgb, audio, overrides.get("segments")), rgb, audio


def test_good_frame_records_become_rows_with_dequantized_view_frames():
    parser = RecordParser(FRAME_CONFIG)
    (a, rgb_a, audio_a), (b, rgb_b, _) = (
        _frame_record(b"a", num_frames=7),
        _frame_record(b"b", (2, 3), 2, seed=1),
    )
    rows, failed = parser.parse_batch(_records(a, b))
    assert failed == []
    assert [r[F.ID] for r in rows] == ["a", "b"]
    assert rows[0][F.FRAME_INDEX].tolist() == [0, 3, 6] and rows[0][F.NUM_FRAMES] == 7
    assert np.array_equal(rows[0][F.RGB], dequantize(rgb_a[[0, 3, 6]]))
    assert np.array_equal(rows[0][F.AUDIO], dequantize(audio_a[[0, 3, 6]]))
    assert np.array_equal(rows[1][F.RGB], dequantize(rgb_b[[0]]))
    assert rows[1][F.LABELS].tolist() == [2, 3]
    assert (rows[1][SOURCE_KEY], rows[1][INDEX_KEY]) == ("shard.tfrecord", 1)


def test_teacher_view_keeps_all_frames_capped_at_300():
    config = ParseConfig(F.FRAME_LEVEL, 10, View.parse("uniform:4"), "float16", teacher_view=True)
    record, rgb, _ = _frame_record(num_frames=310)
    (row,), _ = RecordParser(config).parse_batch(_records(record))
    assert row[F.NUM_FRAMES] == 310
    assert row[F.full_view_column(F.RGB)].shape == (300, 1024)
    assert np.array_equal(row[F.full_view_column(F.RGB)], dequantize(rgb[:300], "float16"))
    assert row[F.FRAME_INDEX].tolist() == [37, 112, 187, 262]


def test_uint8_storage_keeps_the_quantized_codes():
    config = ParseConfig(F.FRAME_LEVEL, 10, View.parse("every_n:2"), "uint8")
    record, rgb, _ = _frame_record(num_frames=5)
    (row,), _ = RecordParser(config).parse_batch(_records(record))
    assert row[F.RGB].dtype == np.uint8 and np.array_equal(row[F.RGB], rgb[[0, 2, 4]])


def _assert_same_rows(rows, other_rows):
    assert len(rows) == len(other_rows)
    for row, other in zip(rows, other_rows, strict=True):
        assert row.keys() == other.keys()
        for name, value in row.items():
            value, other_value = np.asarray(value), np.asarray(other[name])
            assert value.dtype == other_value.dtype and np.array_equal(value, other_value), name


def _parse_both_ways(config, records, parsers=None):
    """Parse with the canonical numpy path allowed and with the TF graph only; the
    results must be the same. Returns them and the parser that may read canonically.
    `parsers` (that pair, made once) saves tracing their graphs again."""
    parser, graph_parser = parsers or (RecordParser(config), RecordParser(config, read_canonical=False))
    rows, failed = parser.parse_batch(records)
    if config.kind == F.FRAME_LEVEL:
        graph_rows, graph_failed = graph_parser.parse_batch(records)
        _assert_same_rows(rows, graph_rows)
        assert failed == graph_failed
    return rows, failed, parser


def test_canonical_records_are_read_without_the_parse_graph():
    config = ParseConfig(
        F.FRAME_LEVEL, 10, View.parse("uniform:3"), "float16", teacher_view=True, segments=True
    )
    segments = {
        F.SEGMENT_START_TIMES: [0],
        F.SEGMENT_END_TIMES: [5],
        F.SEGMENT_LABELS: [1],
        F.SEGMENT_SCORES: [1.0],
    }
    records = _records(
        _frame_record(b"a", num_frames=310, segments=segments)[0],
        _frame_record(b"b", (2, 3), 2, seed=1)[0],
        _frame_record(b"c", (), 9, seed=2)[0],
    )
    rows, failed, parser = _parse_both_ways(config, records)
    assert failed == [] and [r[F.ID] for r in rows] == ["a", "b", "c"]
    assert (parser.canonical_batches, parser.graph_batches) == (1, 0)
    assert rows[0][F.full_view_column(F.AUDIO)].shape == (300, 128) and rows[0][
        F.SEGMENT_LABELS
    ].tolist() == [1]


def _fails_with(payload: bytes, reason: str, config=FRAME_CONFIG, stage="validate"):
    good, _, _ = _frame_record(b"good")
    rows, failed, _ = _parse_both_ways(config, _records(good, payload))
    assert [r[F.ID] for r in rows] == ["good"] if config.kind == F.FRAME_LEVEL else True
    assert len(failed) == 1, failed
    assert failed[0]["stage"] == stage and reason in failed[0]["reason"], failed[0]
    assert (failed[0]["source"], failed[0]["record_index"], failed[0]["byte_offset"]) == (
        "shard.tfrecord",
        1,
        100,
    )
    return failed[0]


def test_label_outside_the_class_range_fails():
    _fails_with(_frame_record(labels=(3, 10))[0], "label 10 outside [0, 10)")


def test_negative_label_fails():
    _fails_with(_frame_record(labels=(-1,))[0], "label -1 outside")


def test_missing_id_fails():
    _fails_with(_frame_record(video_id=b"")[0], "missing 'id'")


def test_legacy_video_id_is_accepted():
    rgb, audio = random_frames(np.random.default_rng(0), 2)
    payload = sequence_example(
        {
            F.LEGACY_ID: bytes_feature(b"old"),
            F.LABELS: tf.train.Feature(int64_list=tf.train.Int64List(value=[1])),
        },
        {
            F.RGB: frame_list(rgb),
            F.AUDIO: frame_list(audio),
        },
    )
    (row,), failed = RecordParser(FRAME_CONFIG).parse_batch(_records(payload))
    assert failed == [] and row[F.ID] == "old"


def test_missing_rgb_feature_list_fails():
    payload = sequence_example({F.ID: bytes_feature(b"x")})
    _fails_with(payload, "feature list 'rgb' is missing")


def test_zero_frames_fails():
    payload = sequence_example(
        {F.ID: bytes_feature(b"x")}, {F.RGB: tf.train.FeatureList(), F.AUDIO: tf.train.FeatureList()}
    )
    _fails_with(payload, "zero frames")


def test_wrong_frame_byte_length_fails_naming_the_frame():
    rgb, audio = random_frames(np.random.default_rng(0), 4)
    payload = sequence_example(
        {F.ID: bytes_feature(b"x")},
        {
            F.RGB: tf.train.FeatureList(
                feature=[bytes_feature(f.tobytes()) for f in rgb[:2]]
                + [bytes_feature(b"short")]
                + [bytes_feature(rgb[3].tobytes())]
            ),
            F.AUDIO: frame_list(audio),
        },
    )
    _fails_with(payload, "'rgb' frame 2 has 5 bytes, expected 1024")


def test_audio_and_rgb_frame_counts_must_agree():
    record, _, _ = _frame_record(num_frames=5, audio=random_frames(np.random.default_rng(9), 4)[1])
    _fails_with(record, "'rgb' has 5 frames but 'audio' has 4")


def test_video_level_record_in_frame_level_input_fails_with_its_kind():
    _fails_with(raw.video_level_record(b"x", [1], np.zeros(1024), np.zeros(128)), "record is video level")


def test_garbage_bytes_fail_at_parse_stage_without_losing_the_batch():
    _fails_with(b"\xff\xfe not a protobuf", "cannot parse record", stage="parse")


def test_wrong_feature_type_fails_at_parse_stage():
    rgb, audio = random_frames(np.random.default_rng(0), 2)
    payload = sequence_example(
        {F.ID: bytes_feature(b"x"), F.LABELS: bytes_feature(b"not-int")},
        {
            F.RGB: frame_list(rgb),
            F.AUDIO: frame_list(audio),
        },
    )
    failure = _fails_with(payload, "cannot parse record", stage="parse")
    assert "function_node" not in failure["reason"]


def test_segments_are_validated_and_carried():
    config = ParseConfig(F.FRAME_LEVEL, 10, View.parse("every_n:5"), "float16", segments=True)
    segments = {
        F.SEGMENT_START_TIMES: [0, 5],
        F.SEGMENT_END_TIMES: [5, 10],
        F.SEGMENT_LABELS: [1, 2],
        F.SEGMENT_SCORES: [1.0, 0.0],
    }
    (row,), failed = RecordParser(config).parse_batch(
        _records(_frame_record(num_frames=12, segments=segments)[0])
    )
    assert (
        failed == []
        and row[F.SEGMENT_END_TIMES].tolist() == [5, 10]
        and row[F.SEGMENT_SCORES].tolist() == [1, 0]
    )
    outside = dict(segments, **{F.SEGMENT_START_TIMES: [0, 10], F.SEGMENT_END_TIMES: [5, 15]})
    _fails_with(_frame_record(num_frames=12, segments=outside)[0], "outside the video", config)


VIDEO_CONFIG = ParseConfig(F.VIDEO_LEVEL, num_classes=10)


def test_video_level_rows_keep_float32_means():
    mean_rgb = np.linspace(-1, 1, 1024, dtype=np.float32)
    (row,), failed = RecordParser(VIDEO_CONFIG).parse_batch(
        _records(raw.video_level_record(b"v", [4], mean_rgb, np.ones(128)))
    )
    assert failed == [] and np.array_equal(row[F.MEAN_RGB], mean_rgb) and row[F.LABELS].tolist() == [4]


@pytest.mark.parametrize(
    ("mean_rgb", "reason"),
    [
        (np.zeros(1000), "'mean_rgb' has 1000 values, expected 1024"),
        (np.full(1024, np.nan), "NaN or infinite"),
        (np.full(1024, np.inf), "NaN or infinite"),
    ],
)
def test_bad_video_level_means_fail(mean_rgb, reason):
    good = raw.video_level_record(b"good", [1], np.zeros(1024), np.zeros(128))
    bad = raw.video_level_record(b"bad", [1], mean_rgb, np.zeros(128))
    rows, failed = RecordParser(VIDEO_CONFIG).parse_batch(_records(good, bad))
    assert [r[F.ID] for r in rows] == ["good"] and len(failed) == 1 and reason in failed[0]["reason"]


def test_frame_record_in_video_level_input_fails_with_its_kind():
    rows, failed = RecordParser(VIDEO_CONFIG).parse_batch(_records(_frame_record()[0]))
    assert rows == [] and "record is frame level" in failed[0]["reason"]


def test_random_views_are_refused_for_datasets():
    with pytest.raises(ValueError, match="random"):
        ParseConfig(F.FRAME_LEVEL, 10, View.parse("random:3"))


def _mutations(record: bytes, rng: np.random.Generator, count: int):
    """Damaged copies of `record`, mostly hitting its structure: the context, field
    lengths and frame headers, where the canonical reader decides what it reads."""
    header_starts = [i for i in range(len(record) - 2) if record[i] == 0x0A and record[i + 1] >= 0x80]
    for _ in range(count):
        if rng.random() < 0.5:
            position = int(rng.choice(header_starts)) + int(rng.integers(0, 9))
        else:
            position = int(rng.integers(0, min(len(record), 80)))
        operation = rng.integers(4)
        if operation == 0:
            yield record[:position] + bytes([int(rng.integers(256))]) + record[position + 1 :]
        elif operation == 1:
            yield record[:position]
        elif operation == 2:
            yield record[:position] + record[position + 1 :]
        else:
            yield record[:position] + bytes([int(rng.integers(256))]) + record[position:]


def test_damaged_records_get_the_same_rows_and_failures_either_way():
    # Whatever the canonical reader accepts must parse exactly as TF parses it, and
    # whatever it refuses goes to TF: no damage may change a row or a failure reason.
    config = ParseConfig(F.FRAME_LEVEL, 10, View.parse("every_n:2"), "uint8", teacher_view=True)
    record, _, _ = _frame_record(b"vid", (1, 2), num_frames=3)
    good, _, _ = _frame_record(b"good", num_frames=2, seed=4)
    rng = np.random.default_rng(0)
    parsers = (RecordParser(config), RecordParser(config, read_canonical=False))
    outcomes = set()
    for damaged in _mutations(record, rng, 150):
        canonical_before = parsers[0].canonical_batches
        rows, failed, _ = _parse_both_ways(config, _records(good, damaged), parsers)
        assert len(rows) + len(failed) == 2
        outcomes.add((parsers[0].canonical_batches > canonical_before, len(failed)))
    # The mutations exercised both readers and both outcomes.
    assert {(True, 0), (False, 1)} <= outcomes, outcomes
