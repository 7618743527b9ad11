"""ReadVideos: raw shards or a dataset's rows for scoring, their dead letters and the count read."""

import dataclasses
import shutil

import apache_beam as beam
import numpy as np
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines.records import failures, tfrecord_io
from pipelines.runner import local_runner
from pipelines.scoring import plan as scoring_plan
from pipelines.scoring import read
from schemas import features as F
from schemas import raw
from schemas.preprocessed import TFRECORD
from schemas.quantization import dequantize
from schemas.views import View
from tests.conftest import random_frames

METADATA = {
    "kind": F.FRAME_LEVEL,
    "serving_view": "every_n:4",
    "num_classes": 8,
    "features": list(F.FRAME_FEATURES),
}


def _pipeline():
    return BeamTestPipeline(runner=local_runner(beam.options.pipeline_options.PipelineOptions()))


def _failure_summary(expected):
    """Match dead letters on (file name, record index, stage, reason fragment)."""

    def check(failed):
        got = sorted((f["source"].rsplit("/", 1)[-1], f["record_index"], f["stage"]) for f in failed)
        assert got == sorted(key for key, _ in expected), got
        reasons = {
            (f["source"].rsplit("/", 1)[-1], f["record_index"], f["stage"]): f["reason"] for f in failed
        }
        for key, fragment in expected:
            assert fragment in reasons[key], (key, reasons[key])

    return check


def test_raw_shards_give_the_models_view_of_each_good_record_and_a_dead_letter_for_each_bad_one(tmp_path):
    rng = np.random.default_rng(0)
    videos = {f"good{i}".encode(): random_frames(rng, n) for i, n in enumerate((9, 13, 4))}
    records = [
        raw.frame_level_record(video_id, [i], *frames) for i, (video_id, frames) in enumerate(videos.items())
    ]
    rgb, audio = random_frames(rng, 6)
    bad = [
        raw.frame_level_record(b"badlabel", [2, 99], rgb, audio),  # class 99 of 8
        b"\x0a\x03not a protobuf at all",
    ]
    with open(tmp_path / "train0000.tfrecord", "wb") as f:
        tfrecord_io.write_records(f, records[:2] + bad)
    damaged = bytearray(b"".join(tfrecord_io.encode_record(r) for r in (records[2], records[0])))
    damaged[12 + 40] ^= 0xFF  # a byte inside the first record's data: its checksum fails, the next reads
    (tmp_path / "train0001.tfrecord").write_bytes(bytes(damaged))
    plan = scoring_plan._plan_raw("no-export", METADATA, [f"{tmp_path}/train*.tfrecord"])
    view = View.parse("every_n:4")

    def rows_hold_the_view(rows):
        assert sorted(row[F.ID] for row in rows) == ["good0", "good0", "good1"]
        for row in rows:
            frames = dict(zip(F.FRAME_FEATURES, videos[row[F.ID].encode()], strict=True))
            for feature, values in frames.items():
                expected = dequantize(values)[view.frame_indices(len(values))]
                np.testing.assert_array_equal(np.asarray(row[feature]), expected)

    with _pipeline() as p:
        out = p | read.ReadVideos(plan)
        assert_that(out["rows"], rows_hold_the_view, label="Rows")
        expected_failures = [
            (("train0000.tfrecord", 2, failures.STAGE_VALIDATE), "label 99"),
            (("train0000.tfrecord", 3, failures.STAGE_PARSE), ""),
            (("train0001.tfrecord", 0, failures.STAGE_READ), "data checksum mismatch"),
        ]
        assert_that(out["failed"], _failure_summary(expected_failures), label="DeadLetters")
        assert_that(out["read_count"], equal_to([6]), label="ReadCount")  # 3 rows + 3 dead letters


def test_a_dataset_gives_every_row_with_the_columns_the_model_reads(tiny_frame_dataset):
    plan = scoring_plan.plan_dataset("no-export", METADATA, str(tiny_frame_dataset))
    assert plan.frames == scoring_plan.VIEW_FRAMES

    def rows_carry_the_view(rows):
        assert len(rows) == len({row[F.ID] for row in rows}) == 40
        for row in rows:
            assert (
                len(row[F.RGB])
                == len(row[F.AUDIO])
                == View.parse("every_n:4").num_selected(row[F.NUM_FRAMES])
            )
            assert F.full_view_column(F.RGB) not in row  # only the columns the model reads travel

    with _pipeline() as p:
        out = p | read.ReadVideos(plan)
        assert_that(out["rows"], rows_carry_the_view, label="Rows")
        assert_that(out["failed"], equal_to([]), label="NothingFailed")
        assert_that(out["read_count"], equal_to([40]), label="ReadCount")


def test_a_damaged_dataset_record_is_a_dead_letter_and_still_counted_as_read(tiny_frame_dataset, tmp_path):
    dataset = tmp_path / "ds"
    shutil.copytree(tiny_frame_dataset, dataset)
    plan = scoring_plan.plan_dataset("no-export", METADATA, str(dataset))
    shards = sorted((dataset / TFRECORD).glob("part-*"))
    data = bytearray(shards[0].read_bytes())
    data[12 + 40] ^= 0xFF  # the first row's data
    shards[0].write_bytes(bytes(data))
    plan = dataclasses.replace(plan, dataset_format=TFRECORD, files=tuple(str(s) for s in shards))

    with _pipeline() as p:
        out = p | read.ReadVideos(plan)
        count = out["rows"] | beam.combiners.Count.Globally()
        assert_that(count, equal_to([39]), label="TheOtherRows")
        expected = [((shards[0].name, 0, failures.STAGE_READ), "data checksum mismatch")]
        assert_that(out["failed"], _failure_summary(expected), label="DeadLetter")
        assert_that(out["read_count"], equal_to([40]), label="ReadCount")
