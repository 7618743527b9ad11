"""Partitions without labels and 2019 segment fields go through the same job."""

import re

import numpy as np
import pyarrow.parquet as pq
import tensorflow as tf

from pipelines import preprocess
from pipelines.records import tfrecord_io
from pipelines.synth import SynthConfig, VideoSynthesizer, generate
from schemas import features as F
from schemas.preprocessed import layout_from_arrow_schema


def _rows(output):
    table = pq.read_table(sorted((output / "parquet").glob("*.parquet")))
    layout = layout_from_arrow_schema(table.schema)
    return layout, {r[F.ID]: r for r in layout.rows_from_table(table)}


def test_test_partition_without_labels_is_written_not_failed(tmp_path):
    generate(
        str(tmp_path / "raw"),
        SynthConfig(videos=10, shards=1, classes=6, min_frames=5, max_frames=30, partition="test", seed=4),
        progress=False,
    )
    summary = preprocess.run(
        [
            "--input",
            f"{tmp_path}/raw/test*.tfrecord",
            "--output",
            str(tmp_path / "ds"),
            "--num-classes",
            "6",
            "--partition",
            "test",
        ]
    )
    assert summary["records_written"] == 10 and summary["records_failed"] == 0
    assert summary["videos_with_labels"] == 0 and summary["label_frequencies"] == {}
    assert summary["partition"] == "test"
    _, rows = _rows(tmp_path / "ds")
    assert all(len(r[F.LABELS]) == 0 for r in rows.values())


def test_segment_fields_are_detected_and_carried_through(tmp_path):
    config = SynthConfig(videos=12, shards=2, classes=6, min_frames=20, max_frames=60, segments=True, seed=8)
    generate(str(tmp_path / "raw"), config, progress=False)
    summary = preprocess.run(
        [
            "--input",
            f"{tmp_path}/raw/train*.tfrecord",
            "--output",
            str(tmp_path / "ds"),
            "--num-classes",
            "6",
            "--format",
            "parquet,tfrecord",
        ]
    )
    layout, rows = _rows(tmp_path / "ds")
    assert layout.segments and summary["schema"]["segments"] is True
    synthesizer = VideoSynthesizer(config)
    rated = 0
    for index in range(config.videos):
        video = synthesizer.video(index)
        row = rows[video.id.decode()]
        for name in F.SEGMENT_FIELDS:
            assert np.allclose(row[name], video.segments[name]), name
        rated += len(row[F.SEGMENT_LABELS])
    assert rated == summary["rated_segments"] > 0
    parsed = layout.parse_tf_examples(
        tf.constant(
            [
                r.numpy()
                for r in tf.data.TFRecordDataset(
                    sorted(str(p) for p in (tmp_path / "ds" / "tfrecord").iterdir())
                )
            ]
        )
    )
    assert int(tf.reduce_sum(parsed[F.SEGMENT_LABELS].row_lengths())) == rated


def _write_shard(path, videos):
    from schemas import raw
    from tests.conftest import random_frames

    rng = np.random.default_rng(len(videos))
    with open(path, "wb") as f:
        tfrecord_io.write_records(
            f,
            [
                raw.frame_level_record(video_id.encode(), labels, *random_frames(rng, 150), segments=segments)
                for video_id, labels, segments in videos
            ],
        )


def _rated_segments(count: int, classes: int = 6) -> dict:
    starts = np.arange(count) * 5
    return {
        F.SEGMENT_START_TIMES: starts,
        F.SEGMENT_END_TIMES: starts + 5,
        F.SEGMENT_LABELS: np.arange(count) % classes,
        F.SEGMENT_SCORES: (np.arange(count) % 2).astype(np.float32),
    }


def test_a_segment_rated_shard_after_an_unrated_one_keeps_every_rating(tmp_path):
    raw_dir = tmp_path / "raw"
    raw_dir.mkdir()
    _write_shard(raw_dir / "train0000.tfrecord", [(f"plain{i}", [1], None) for i in range(3)])
    # 5 videos x 29 rated segments = 145 ratings, in the shard read second.
    _write_shard(raw_dir / "train0001.tfrecord", [(f"rated{i}", [2], _rated_segments(29)) for i in range(5)])
    summary = preprocess.run(
        ["--input", f"{raw_dir}/train*.tfrecord", "--output", str(tmp_path / "ds"), "--num-classes", "6"]
    )
    assert summary["schema"]["segments"] is True
    assert summary["rated_segments_read"] == summary["rated_segments"] == 145 and summary["balanced"]
    _, rows = _rows(tmp_path / "ds")
    assert sum(len(r[F.SEGMENT_LABELS]) for r in rows.values()) == 145
    assert all(len(rows[f"plain{i}"][F.SEGMENT_LABELS]) == 0 for i in range(3))
    expected = _rated_segments(29)
    for name in F.SEGMENT_FIELDS:
        assert np.array_equal(rows["rated4"][name], expected[name]), name


def test_ratings_that_start_after_a_shards_first_record_are_refused_or_kept_with_segments_keep(
    tmp_path, capsys
):
    raw_dir = tmp_path / "raw"
    raw_dir.mkdir()
    # The only shard starts with an unrated video: auto cannot see the later 2 x 3 ratings.
    videos = [("plain", [1], None), ("rated0", [2], _rated_segments(3)), ("rated1", [2], _rated_segments(3))]
    _write_shard(raw_dir / "train0000.tfrecord", videos)
    argv = ["--input", f"{raw_dir}/train*.tfrecord", "--num-classes", "6"]
    assert preprocess.main([*argv, "--output", str(tmp_path / "auto")]) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and re.match(r"fewframes preprocess: error: .*--segments keep", error[0])
    assert "rated segments read 6, written 0" in error[0] and "Traceback" not in error[0]
    summary = preprocess.run([*argv, "--output", str(tmp_path / "keep"), "--segments", "keep"])
    assert summary["schema"]["segments"] is True and summary["balanced"]
    assert summary["rated_segments_read"] == summary["rated_segments"] == 6
    _, rows = _rows(tmp_path / "keep")
    assert len(rows["plain"][F.SEGMENT_LABELS]) == 0 and len(rows["rated1"][F.SEGMENT_LABELS]) == 3


def test_a_repeated_label_counts_once_and_its_copies_are_counted_as_removed(tmp_path):
    raw_dir = tmp_path / "raw"
    raw_dir.mkdir()
    _write_shard(raw_dir / "train0000.tfrecord", [("a", [5, 5, 5], None), ("b", [3, 5, 3], None)])
    summary = preprocess.run(
        ["--input", f"{raw_dir}/train*.tfrecord", "--output", str(tmp_path / "ds"), "--num-classes", "6"]
    )
    assert summary["label_frequencies"] == {"3": 1, "5": 2}
    assert summary["duplicate_labels_removed"] == 3
    _, rows = _rows(tmp_path / "ds")
    assert rows["a"][F.LABELS].tolist() == [5] and rows["b"][F.LABELS].tolist() == [3, 5]
