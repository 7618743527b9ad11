"""Beam RunInference over a fewframes export (no tensorflow-hub, no tf_keras).

`ExportModelHandler` loads the SavedModel once per worker process and batches by
`min_batch_size` / `max_batch_size`; `RawRecordModelHandler` scores serialized raw
YouTube-8M records through the export's `serving_default` signature. Dataset rows and
validated raw records are scored by `pipelines.scoring.inference.VideoScoringHandler`, which
also reduces each batch to its top-k entries. Wrap in `KeyedModelHandler` to carry keys.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, PredictionResult, RunInference

from pipelines.records import failures
from pipelines.scoring.plan import STAGE_SCORE, VIDEO_VECTORS, WHOLE_VIDEOS, ScoringPlan
from schemas import features as F
from schemas.quantization import dequantize
from trainer.inputs import pad_frames
from trainer.metrics import DEFAULT_TOP_K, score_videos

OUTPUTS = ("class_indexes", "scores", "predictions", "representation")


class ExportModelHandler(ModelHandler):
    def __init__(
        self,
        export_dir: str,
        min_batch_size: int = 16,
        max_batch_size: int = 256,
        share_across_processes: bool = False,
    ):
        super().__init__()
        self._export_dir = export_dir
        self._batching = {"min_batch_size": min_batch_size, "max_batch_size": max_batch_size}
        self._share = share_across_processes

    def load_model(self):
        from trainer.export import LoadedExport

        export = LoadedExport(self._export_dir)
        export.warm_up()  # so that model time measures inference, not the graph's first build
        return export

    def batch_elements_kwargs(self):
        return self._batching

    def share_model_across_processes(self) -> bool:
        return self._share

    def get_metrics_namespace(self) -> str:
        return "fewframes_inference"

    @staticmethod
    def _results(batch, outputs: dict) -> list[PredictionResult]:
        return [
            PredictionResult(example, {k: outputs[k][i] for k in OUTPUTS if k in outputs})
            for i, example in enumerate(batch)
        ]


class RawRecordModelHandler(ExportModelHandler):
    """Serialized raw records (bytes) -> PredictionResult(record, outputs)."""

    def run_inference(self, batch: Sequence[bytes], model, inference_args=None) -> Iterable[PredictionResult]:
        return self._results(batch, model.score_examples(batch))


# ----- scoring ------------------------------------------------------------------------------
def _pad_features(videos: dict[str, list]) -> tuple[dict, np.ndarray]:
    """feature -> videos (`[T_i, D]` each) as the signatures' zero-padded float32 inputs + lengths."""
    inputs, lengths = {}, None
    for feature, frames in videos.items():
        inputs[feature], lengths = pad_frames(
            [np.asarray(v, np.float32) for v in frames], F.FEATURE_DIMS[feature], np.float32
        )
    return inputs, lengths


def model_frames(plan: ScoringPlan, batch: list[dict]):
    """A batch of rows -> the signature's dense inputs, num_frames and frames read per video."""
    columns = plan.frame_columns()
    if plan.frames == VIDEO_VECTORS:
        inputs = {
            F.MEAN_FEATURE_OF[f]: np.stack([row[c] for row in batch]).astype(np.float32)
            for f, c in columns.items()
        }
        return inputs, None, np.ones(len(batch), np.int32)
    frame_dtype = plan.layout.frame_dtype if plan.layout is not None else "float32"
    videos = {f: [row[c] for row in batch] for f, c in columns.items()}
    if frame_dtype == "uint8":
        videos = {f: [dequantize(v) for v in vs] for f, vs in videos.items()}
    inputs, lengths = _pad_features(videos)
    if plan.frames == WHOLE_VIDEOS:
        frames_read = np.array([plan.view.num_selected(int(n)) for n in lengths], np.int32)
    else:
        frames_read = lengths.astype(np.int32)
    return inputs, lengths, frames_read


def class_labels(entity_labels, entity_to_class) -> np.ndarray:
    """A video's labels in the model's class space (entities, or their verticals)."""
    labels = np.asarray(entity_labels, dtype=np.int64)
    if entity_to_class is None:
        return np.unique(labels)
    return np.unique(np.asarray(entity_to_class, dtype=np.int64)[labels]) if labels.size else labels


class VideoScoringHandler(ExportModelHandler):
    """Rows -> compact per-video records (`VIDEO_SCHEMA`), scored in batches.

    The model's C scores per video are reduced to its top-k entries here, inside the
    batch, so no worker ever ships the full score vectors.
    """

    def __init__(self, plan: ScoringPlan, top_k: int = DEFAULT_TOP_K, **batching):
        super().__init__(plan.export_dir, **batching)
        self._plan, self._top_k = plan, top_k

    def run_inference(self, batch, model, inference_args=None):
        plan = self._plan
        inputs, lengths, frames_read = model_frames(plan, batch)
        signature = model.score_frames if plan.frames == WHOLE_VIDEOS else model.score_view
        start = time.perf_counter()
        outputs = signature(inputs, lengths)
        seconds = time.perf_counter() - start
        labels = [class_labels(row[F.LABELS], plan.entity_to_class) for row in batch]
        scored = score_videos(outputs["predictions"], labels, self._top_k)
        share = seconds / len(batch)
        results = []
        for i, row in enumerate(batch):
            record = {
                "id": row[F.ID],
                "labels": labels[i].astype(np.int32).tolist(),
                "top_classes": scored.classes[i].tolist(),
                "top_scores": scored.scores[i].astype(np.float32).tolist(),
                "perr": float(scored.perr[i]),
                "num_frames": int(row.get(F.NUM_FRAMES, 1)),
                "frames_read": int(frames_read[i]),
                "model_seconds": share,
            }
            results.append(PredictionResult(row[F.ID], record))
        return results


class SegmentScoringHandler(ExportModelHandler):
    """Rated segments (their own frames) -> (class, score, is-positive) per rating."""

    def __init__(self, plan: ScoringPlan, **batching):
        super().__init__(plan.export_dir, **batching)
        self._plan = plan

    def run_inference(self, batch, model, inference_args=None):
        inputs, lengths = _pad_features(
            {f: [segment["frames"][f] for segment in batch] for f in self._plan.features}
        )
        predictions = model.score_frames(inputs, lengths)["predictions"]
        return [
            PredictionResult(
                segment["key"],
                (segment["class"], float(predictions[i, segment["class"]]), segment["positive"]),
            )
            for i, segment in enumerate(batch)
        ]


def rated_segments(row: dict, plan: ScoringPlan):
    """Each rated segment of a row as an element for `SegmentScoringHandler`."""
    columns = {f: F.full_view_column(f) if F.full_view_column(f) in row else f for f in plan.features}
    frame_dtype = plan.layout.frame_dtype if plan.layout is not None else "float32"
    starts, ends = row[F.SEGMENT_START_TIMES], row[F.SEGMENT_END_TIMES]
    for j, (start, end) in enumerate(zip(starts, ends, strict=True)):
        label = int(row[F.SEGMENT_LABELS][j])
        classes = class_labels([label], plan.entity_to_class)
        frames = {}
        for feature, column in columns.items():
            values = row[column][int(start) : int(end)]
            frames[feature] = dequantize(values) if frame_dtype == "uint8" else np.asarray(values, np.float32)
        yield {
            "key": f"{row[F.ID]}:{int(start)}",
            "frames": frames,
            "class": int(classes[0]),
            "positive": bool(row[F.SEGMENT_SCORES][j] > 0),
        }


def _strip_for_scoring(row: dict, keep: set) -> tuple[str, dict]:
    return row[F.ID], {k: v for k, v in row.items() if k in keep}


def _error_line(error) -> str:
    """The exception's own line ("ValueError: ...") of a RunInference dead letter's error.

    Beam gives the error as (type, repr, traceback lines), whose text would put the
    traceback into the reason; the traceback's last line is the exception's."""
    if isinstance(error, tuple) and len(error) == 3 and error[2]:
        text = str(error[2][-1]).strip()
    else:
        text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


def _failed_batch(failed) -> list[dict]:
    """RunInference's (batch, error) dead letter -> one failure per video."""
    batch, error = failed
    reason = f"model failed on its batch: {_error_line(error)}"
    return [failures.failure("", -1, -1, STAGE_SCORE, reason, key) for key, _ in batch]


class RunKeyedInference(beam.PTransform):
    """Rows -> `results` (each row's inference, keyed by id inside) and `failed` (one dead
    letter per video of a batch the model could not score). Only `keep` columns travel."""

    def __init__(self, handler, keep: set):
        super().__init__()
        self._handler, self._keep = handler, keep

    def expand(self, rows):
        main, other = (
            rows
            | "KeyById" >> beam.Map(_strip_for_scoring, self._keep)
            | "RunInference" >> RunInference(KeyedModelHandler(self._handler)).with_exception_handling()
        )
        results = main | "Inferences" >> beam.Map(lambda keyed: keyed[1].inference)
        failed = other.failed_inferences | "FailedBatches" >> beam.FlatMap(_failed_batch)
        return {"results": results, "failed": failed}


class ScoreVideos(beam.PTransform):
    """Rows -> `scored` per-video records and `failed` (a batch the model could not score)."""

    def __init__(
        self,
        plan: ScoringPlan,
        top_k: int = DEFAULT_TOP_K,
        min_batch_size: int = 64,
        max_batch_size: int = 256,
    ):
        super().__init__()
        self._plan, self._top_k = plan, top_k
        self._batching = {"min_batch_size": min_batch_size, "max_batch_size": max_batch_size}

    def expand(self, rows):
        plan = self._plan
        keep = {F.ID, F.LABELS, F.NUM_FRAMES, *plan.frame_columns().values()}
        handler = VideoScoringHandler(plan, self._top_k, **self._batching)
        out = rows | "Score" >> RunKeyedInference(handler, keep)
        return {"scored": out["results"], "failed": out["failed"]}


class ScoreSegments(beam.PTransform):
    """Rows with 2019 segment ratings -> (class, score, positive) per rated segment."""

    def __init__(self, plan: ScoringPlan, max_batch_size: int = 256):
        super().__init__()
        self._plan, self._max_batch = plan, max_batch_size

    def expand(self, rows):
        handler = KeyedModelHandler(
            SegmentScoringHandler(self._plan, min_batch_size=16, max_batch_size=self._max_batch)
        )
        return (
            rows
            | "RatedSegments" >> beam.FlatMap(rated_segments, self._plan)
            | "KeySegments" >> beam.Map(lambda segment: (segment["key"], segment))
            | "ScoreSegmentFrames" >> RunInference(handler)
            | "Ratings" >> beam.Map(lambda keyed: keyed[1].inference)
        )
