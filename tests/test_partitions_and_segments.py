"""Partitions without labels and 2019 segment fields go through the same job."""

import numpy as np
import pyarrow.parquet as pq
import tensorflow as tf

from pipelines import preprocess
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
