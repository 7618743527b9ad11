"""RunInference over an export: the handlers, the model's inputs, segments and dead letters."""

import dataclasses
import glob

import apache_beam as beam
import numpy as np
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines.runner import local_runner
from pipelines.scoring import inference
from pipelines.scoring.plan import (
    DATASET,
    STAGE_SCORE,
    VIDEO_VECTORS,
    VIEW_FRAMES,
    WHOLE_VIDEOS,
    ScoringPlan,
    plan_scoring,
)
from schemas import features as F
from schemas.preprocessed import DatasetLayout
from schemas.quantization import dequantize
from trainer import inputs
from trainer.export import LoadedExport


def _raw_records(raw_dir):
    import tensorflow as tf

    records = []
    for path in sorted(glob.glob(f"{raw_dir}/*.tfrecord")):
        records += [r.numpy() for r in tf.data.TFRecordDataset(path)]
    return records


def _plan(frames, *, frame_dtype="float32", view="every_n:4", entity_to_class=None, kind=F.FRAME_LEVEL):
    """A plan for dataset rows, as `plan_dataset` makes one (the export is never loaded)."""
    metadata = {"kind": kind, "serving_view": view, "features": list(F.FRAME_FEATURES), "num_classes": 8}
    if entity_to_class is not None:
        metadata["entity_to_class"] = list(entity_to_class)
    frame_level = kind == F.FRAME_LEVEL
    layout = DatasetLayout(kind=kind, frame_dtype=frame_dtype, teacher_view=frame_level, view=view)
    return ScoringPlan(
        export_dir="no-export",
        metadata=metadata,
        source=DATASET,
        kind=kind,
        patterns=("dataset",),
        files=(),
        input_bytes=0,
        frames=frames,
        segments=False,
        layout=layout,
    )


def _dataset_rows(dataset) -> list[dict]:
    layout, _ = inputs.load_layout(str(dataset))
    rows = []
    for path in inputs.dataset_files(str(dataset), "parquet"):
        rows += layout.rows_from_table(pq.read_table(path))
    return rows


# ----- the model's inputs -----------------------------------------------------------------------
def test_whole_videos_are_zero_padded_and_count_the_frames_the_models_view_reads():
    rng = np.random.default_rng(0)
    rows = [
        {F.full_view_column(f): rng.random((n, F.FEATURE_DIMS[f]), np.float32) for f in F.FRAME_FEATURES}
        for n in (9, 4)
    ]
    model_inputs, lengths, frames_read = inference.model_frames(_plan(WHOLE_VIDEOS), rows)
    assert lengths.tolist() == [9, 4]
    assert frames_read.tolist() == [3, 1]  # every_n:4 keeps frames 0, 4, 8 of 9 and frame 0 of 4
    for feature in F.FRAME_FEATURES:
        assert model_inputs[feature].shape == (2, 9, F.FEATURE_DIMS[feature])
        assert model_inputs[feature].dtype == np.float32
        np.testing.assert_array_equal(model_inputs[feature][1, :4], rows[1][F.full_view_column(feature)])
        assert not model_inputs[feature][1, 4:].any()


def test_uint8_frames_are_dequantized_before_the_model_reads_them():
    rng = np.random.default_rng(1)
    rows = [
        {f: rng.integers(0, 256, (n, F.FEATURE_DIMS[f]), dtype=np.uint8) for f in F.FRAME_FEATURES}
        for n in (3, 5)
    ]
    model_inputs, lengths, frames_read = inference.model_frames(_plan(VIEW_FRAMES, frame_dtype="uint8"), rows)
    assert lengths.tolist() == frames_read.tolist() == [3, 5]  # rows hold the view: all are read
    for feature in F.FRAME_FEATURES:
        np.testing.assert_array_equal(model_inputs[feature][0, :3], dequantize(rows[0][feature]))
        np.testing.assert_array_equal(model_inputs[feature][1], dequantize(rows[1][feature]))


def test_video_vectors_go_to_the_signatures_mean_inputs_one_frame_each():
    rows = [
        {F.MEAN_RGB: np.full(1024, i, np.float16), F.MEAN_AUDIO: np.full(128, -i, np.float16)}
        for i in range(3)
    ]
    model_inputs, lengths, frames_read = inference.model_frames(
        _plan(VIDEO_VECTORS, kind=F.VIDEO_LEVEL), rows
    )
    assert lengths is None and frames_read.tolist() == [1, 1, 1]
    assert sorted(model_inputs) == sorted([F.MEAN_RGB, F.MEAN_AUDIO])
    assert model_inputs[F.MEAN_RGB].dtype == np.float32 and model_inputs[F.MEAN_RGB].shape == (3, 1024)
    assert model_inputs[F.MEAN_AUDIO][:, 0].tolist() == [0.0, -1.0, -2.0]


def test_class_labels_map_entities_to_the_models_classes_once_each():
    assert inference.class_labels([5, 2, 5], None).tolist() == [2, 5]
    entity_to_vertical = [0, 0, 1, 2, 1]
    assert inference.class_labels([1, 0, 4, 3], entity_to_vertical).tolist() == [0, 1, 2]
    assert inference.class_labels([], entity_to_vertical).tolist() == []


def test_rated_segments_carry_their_own_frames_class_and_rating():
    rng = np.random.default_rng(2)
    full = {f: rng.integers(0, 256, (30, F.FEATURE_DIMS[f]), dtype=np.uint8) for f in F.FRAME_FEATURES}
    row = {
        F.ID: "vid",
        **{F.full_view_column(f): frames for f, frames in full.items()},
        F.SEGMENT_START_TIMES: np.array([0, 20]),
        F.SEGMENT_END_TIMES: np.array([5, 25]),
        F.SEGMENT_LABELS: np.array([4, 1]),
        F.SEGMENT_SCORES: np.array([1.0, 0.0], np.float32),
    }
    plan = _plan(WHOLE_VIDEOS, frame_dtype="uint8", entity_to_class=[0, 0, 1, 2, 3])
    segments = list(inference.rated_segments(row, plan))
    assert [(s["key"], s["class"], s["positive"]) for s in segments] == [
        ("vid:0", 3, True),
        ("vid:20", 0, False),
    ]
    for segment, (start, end) in zip(segments, [(0, 5), (20, 25)], strict=True):
        for feature in F.FRAME_FEATURES:
            np.testing.assert_array_equal(segment["frames"][feature], dequantize(full[feature][start:end]))


# ----- the handlers, with the student export ----------------------------------------------------
def test_export_handler_loads_the_export_once_and_batches_as_asked(student_export):
    handler = inference.ExportModelHandler(str(student_export), min_batch_size=3, max_batch_size=7)
    assert handler.batch_elements_kwargs() == {"min_batch_size": 3, "max_batch_size": 7}
    assert handler.get_metrics_namespace() == "fewframes_inference"
    assert not handler.share_model_across_processes()
    model = handler.load_model()
    assert isinstance(model, LoadedExport) and model.metadata["serving_view"] == "every_n:4"


def test_video_scoring_handler_keeps_each_videos_top_k_of_the_models_scores(
    student_export, tiny_frame_dataset
):
    plan = plan_scoring(str(student_export), [str(tiny_frame_dataset)])
    assert plan.frames == VIEW_FRAMES
    rows = _dataset_rows(tiny_frame_dataset)[:6]
    handler = inference.VideoScoringHandler(plan, top_k=3)
    model = handler.load_model()
    results = handler.run_inference(rows, model)
    frames = {f: inputs.pad_frames([r[f].astype(np.float32) for r in rows], F.FEATURE_DIMS[f], np.float32)[0]
              for f in F.FRAME_FEATURES}  # fmt: skip
    predictions = model.score_view(frames, np.array([len(r[F.RGB]) for r in rows]))["predictions"]
    assert [result.example for result in results] == [row[F.ID] for row in rows]
    for i, (row, result) in enumerate(zip(rows, results, strict=True)):
        record = result.inference
        assert record["id"] == row[F.ID] and record["labels"] == sorted(set(row[F.LABELS].tolist()))
        assert len(record["top_classes"]) == 3 and record["top_classes"][0] == int(np.argmax(predictions[i]))
        np.testing.assert_allclose(record["top_scores"], predictions[i][record["top_classes"]], atol=1e-6)
        assert record["top_scores"] == sorted(record["top_scores"], reverse=True)
        assert record["num_frames"] == row[F.NUM_FRAMES] and record["frames_read"] == len(row[F.RGB])
        assert record["model_seconds"] > 0


def test_segment_scoring_handler_scores_each_segment_on_its_own_frames(student_export):
    rng = np.random.default_rng(6)
    full = {f: rng.integers(0, 256, (40, F.FEATURE_DIMS[f]), dtype=np.uint8) for f in F.FRAME_FEATURES}
    row = {
        F.ID: "rated",
        **{F.full_view_column(f): frames for f, frames in full.items()},
        F.SEGMENT_START_TIMES: np.array([0, 10, 30]),
        F.SEGMENT_END_TIMES: np.array([5, 15, 35]),
        F.SEGMENT_LABELS: np.array([2, 7, 2]),
        F.SEGMENT_SCORES: np.array([1.0, 0.0, 1.0], np.float32),
    }
    plan = _plan(WHOLE_VIDEOS, frame_dtype="uint8")
    handler = inference.SegmentScoringHandler(dataclasses.replace(plan, export_dir=str(student_export)))
    model = handler.load_model()
    results = handler.run_inference(list(inference.rated_segments(row, plan)), model)
    assert [r.example for r in results] == ["rated:0", "rated:10", "rated:30"]
    for result, start, label, positive in zip(
        results, (0, 10, 30), (2, 7, 2), (True, False, True), strict=True
    ):
        frames = {f: dequantize(full[f][start : start + 5])[None] for f in F.FRAME_FEATURES}
        expected = model.score_frames(frames, [5])["predictions"][0, label]
        assert result.inference[0] == label and result.inference[2] is positive
        assert result.inference[1] == pytest.approx(float(expected), abs=1e-6)
    assert results[0].inference[1] != pytest.approx(results[2].inference[1])  # other frames, other scores


def test_beam_run_inference_scores_raw_records_with_the_export(student_export, tiny_frame_dataset):
    from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that

    from pipelines.scoring.inference import RawRecordModelHandler

    records = _raw_records(tiny_frame_dataset.parent / "raw")[:12]
    expected = LoadedExport(str(student_export)).score_examples(records)
    ids = [v.decode() for v in expected["video_id"]]
    expected_top = {vid: int(expected["class_indexes"][i, 0]) for i, vid in enumerate(ids)}
    handler = KeyedModelHandler(
        RawRecordModelHandler(str(student_export), min_batch_size=4, max_batch_size=5)
    )

    def check(results):
        got = {key: int(result.inference["class_indexes"][0]) for key, result in results}
        assert got == expected_top, (got, expected_top)

    with TestPipeline() as pipeline:
        keyed = pipeline | beam.Create(
            list(zip([v.decode() for v in expected["video_id"]], records, strict=True))
        )
        assert_that(keyed | RunInference(handler), check)


def test_a_batch_the_model_cannot_score_becomes_one_dead_letter_per_video(student_export, tiny_frame_dataset):
    plan = plan_scoring(str(student_export), [str(tiny_frame_dataset)])
    rows = _dataset_rows(tiny_frame_dataset)[:4]
    bad = dict(rows[1])
    bad[F.ID], bad[F.RGB] = "wrong-width", bad[F.RGB][:, :7]  # 7 rgb values a frame, not 1024
    handler = inference.VideoScoringHandler(plan, min_batch_size=1, max_batch_size=1)
    keep = {F.ID, F.LABELS, F.NUM_FRAMES, *plan.frame_columns().values()}

    def one_line_reasons(failed):
        assert [(f["id"], f["stage"], f["record_index"]) for f in failed] == [
            ("wrong-width", STAGE_SCORE, -1)
        ]
        reason = failed[0]["reason"]
        assert reason.startswith("model failed on its batch: ") and "\n" not in reason, reason
        assert "Traceback" not in reason and "ValueError: could not broadcast" in reason, reason

    with BeamTestPipeline(runner=local_runner(beam.options.pipeline_options.PipelineOptions())) as p:
        out = p | beam.Create([*rows, bad]) | inference.RunKeyedInference(handler, keep)
        ids = out["results"] | beam.Map(lambda record: record["id"])
        assert_that(ids, equal_to([row[F.ID] for row in rows]), label="TheOthersAreScored")
        assert_that(out["failed"], one_line_reasons, label="OneDeadLetter")
