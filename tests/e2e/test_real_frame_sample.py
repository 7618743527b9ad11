"""The real frame-level sample (../shared/data/yt8m-v2-frame-sample) through our readers.

These records were written by Google's pipeline, not by `pipelines.synth`: a reader
change that breaks real data fails here.
"""

import apache_beam as beam
import numpy as np
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines import preprocess
from pipelines.runner import local_runner
from pipelines.scoring import plan as scoring_plan
from pipelines.scoring import read
from pipelines.synthetic import realism
from schemas import features as F
from schemas.preprocessed import layout_from_arrow_schema
from schemas.quantization import dequantize
from schemas.views import View

# (file, record index) -> id, num_frames, first 8 bytes of the first rgb frame and of
# the last audio frame, read once with tf.train.SequenceExample.
KNOWN = {
    ("train0093.tfrecord", 0): ("1hbF", 198, "dbc75c67707c2886", "5339ba0b856f37a1"),
    ("train0093.tfrecord", 1): ("AFbF", 240, "a88462a56e8f7e80", "ad1b7e5fc259439b"),
    ("train0111.tfrecord", 1): ("6ebX", 155, "10d15e9ec780919a", "5c9a4f188d4fff8a"),
}
VIEW = "every_n:3"


@pytest.fixture(scope="module")
def sample(shared_data_dir):
    return shared_data_dir / "yt8m-v2-frame-sample"


@pytest.fixture(scope="module")
def records(sample):
    """{id: {rgb, audio (uint8 [T, dim]), labels}} read with plain protobuf."""
    import tensorflow as tf

    out = {}
    for path in sorted(sample.glob("*.tfrecord")):
        for data in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
            example = tf.train.SequenceExample.FromString(data)
            lists = example.feature_lists.feature_list
            out[example.context.feature[F.ID].bytes_list.value[0].decode()] = {
                F.LABELS: list(example.context.feature[F.LABELS].int64_list.value),
                **{
                    name: np.stack([np.frombuffer(f.bytes_list.value[0], np.uint8) for f in frames.feature])
                    for name, frames in ((name, lists[name]) for name in F.FRAME_FEATURES)
                },
            }
    return out


def test_the_real_sample_holds_the_known_videos(sample, records):
    assert len(records) == 40 and sum(len(v[F.RGB]) for v in records.values()) == 8768
    frames = {}
    for path in sorted(sample.glob("*.tfrecord")):
        for index, video in enumerate(realism.read_frames([str(path)])):
            frames[(path.name, index)] = video
    for key, (video_id, num_frames, rgb_start, audio_end) in KNOWN.items():
        assert len(frames[key][F.RGB]) == len(frames[key][F.AUDIO]) == num_frames
        assert frames[key][F.RGB][0, :8].tobytes().hex() == rgb_start
        assert frames[key][F.AUDIO][-1, :8].tobytes().hex() == audio_end
        assert np.array_equal(frames[key][F.RGB], records[video_id][F.RGB])


@pytest.fixture(scope="module")
def preprocessed(sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("real-frames") / "ds"
    summary = preprocess.run(
        ["--input", f"{sample}/*.tfrecord", "--output", str(out), "--format", "parquet,tfrecord",
         "--view", VIEW, "--teacher-view", "--frame-dtype", "float32", "--num-shards", "2"]
    )  # fmt: skip
    return out, summary


def test_preprocessing_stores_real_frames_bit_exactly_in_both_views_through_the_fast_reader(
    preprocessed, records
):
    out, summary = preprocessed
    assert summary["records_read"] == summary["records_written"] == 40
    assert summary["records_failed"] == 0
    # Google's records are laid out canonically: every batch took the numpy reader.
    assert summary["counters"]["parse/canonical_batches"] > 0
    assert summary["counters"].get("parse/graph_batches", 0) == 0
    table = pq.read_table(sorted((out / "parquet").glob("*.parquet")))
    layout = layout_from_arrow_schema(table.schema)
    assert layout.frame_dtype == "float32"
    rows = layout.rows_from_table(table)
    assert sorted(row[F.ID] for row in rows) == sorted(records)
    view = View.parse(VIEW)
    for row in rows:
        video = records[row[F.ID]]
        kept = view.frame_indices(len(video[F.RGB]))
        assert row[F.NUM_FRAMES] == len(video[F.RGB])
        assert row[F.LABELS].tolist() == video[F.LABELS]
        for feature in F.FRAME_FEATURES:
            expected = dequantize(video[feature])  # float32, the release's dequantization
            assert np.array_equal(np.asarray(row[F.full_view_column(feature)]), expected)
            assert np.array_equal(np.asarray(row[feature]), expected[kept])


def test_the_scoring_reader_reads_real_raw_shards(sample, records):
    metadata = {
        "kind": F.FRAME_LEVEL,
        "serving_view": VIEW,
        "num_classes": F.NUM_CLASSES_V2,
        "features": list(F.FRAME_FEATURES),
    }
    # Two shards (10 videos): a Beam pipeline's cost grows with the rows it checks.
    shards = [str(sample / name) for name in ("train0093.tfrecord", "train0111.tfrecord")]
    plan = scoring_plan._plan_raw("no-export", metadata, shards)
    import tensorflow as tf

    view = View.parse(VIEW)
    ids = [
        tf.train.SequenceExample.FromString(data).context.feature[F.ID].bytes_list.value[0].decode()
        for data in tf.data.TFRecordDataset(shards).as_numpy_iterator()
    ]
    expected = {
        video_id: {f: dequantize(video[f])[view.frame_indices(len(video[f]))] for f in F.FRAME_FEATURES}
        for video_id, video in records.items()
        if video_id in ids
    }

    def check(rows):
        assert sorted(row[F.ID] for row in rows) == sorted(expected)
        for row in rows:
            for feature in F.FRAME_FEATURES:
                assert np.array_equal(np.asarray(row[feature]), expected[row[F.ID]][feature]), row[F.ID]

    with BeamTestPipeline(runner=local_runner(beam.options.pipeline_options.PipelineOptions())) as p:
        out = p | read.ReadVideos(plan)
        assert_that(out["rows"], check, label="RowsMatchTheRecords")
        assert_that(out["failed"], equal_to([]), label="NothingFailed")
