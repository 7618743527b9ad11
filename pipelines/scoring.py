"""Scoring a partition with an exported model: what `evaluate` and `predict` share.

`plan_scoring` checks, before any work, that the input fits the model (kind, class
count, view, features) and decides how rows reach it:

- raw shards: read with the preprocessing's damage-tolerant reader, parsed and
  validated in batches by the same `RecordParser` (so a malformed record becomes a
  dead-letter record with its reason, never a failed batch), the model's view cut
  while parsing, frames dequantized to float32; scored through `score_view`;
- a preprocessed dataset (Parquet, else TFRecord): its rows as stored; frames already
  in the model's view go through `score_view`, whole videos (the dataset's full view)
  through `score_frames`, which cuts the view in the graph.

`ReadVideos` yields rows and failures; `ScoreVideos` runs Beam's RunInference with a
keyed `VideoScoringHandler` and yields one compact record per video
(`evaluation_outputs.VIDEO_SCHEMA`: top-k classes and scores, labels in the model's
class space, PERR, frames read, model time), never the full score vector.
"""

from __future__ import annotations

import dataclasses
import json
import time

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import KeyedModelHandler, PredictionResult, RunInference

from pipelines import failures, read
from pipelines.coders import VideoRow
from pipelines.inference import _ExportHandler
from pipelines.parse import INDEX_KEY, SOURCE_KEY, ParseConfig
from pipelines.preprocess import ParseAndValidate
from schemas import features as F
from schemas import raw
from schemas.preprocessed import MANIFEST_NAME, PARQUET, SHARD_PREFIX, TFRECORD, DatasetLayout
from schemas.quantization import dequantize
from schemas.views import ALL, View
from trainer.export import METADATA_NAME
from trainer.metrics import DEFAULT_TOP_K, score_videos

RAW = "raw"
DATASET = "dataset"

# How frames reach the model.
VIEW_FRAMES = "view"  # rows hold the model's view: score_view
WHOLE_VIDEOS = "whole"  # rows hold every frame (a dataset's full view): score_frames cuts the view
VIDEO_VECTORS = "video"  # video-level features

STAGE_SCORE = "score"


# What names an export's model in a run's outputs (from its metadata).
MODEL_IDENTITY_KEYS = (
    "role",
    "preset",
    "kind",
    "view",
    "serving_view",
    "features",
    "label_space",
    "num_classes",
    "num_entities",
    "vocabulary_sha256",
    "mode",
    "job_dir",
    "top_k",
    "training_data",
    "frame_dtype",
)


class ScoringError(ValueError):
    """The model and the input do not fit, or one of them is not what it claims."""


class InvalidExport(ScoringError):
    """An export that is damaged or whose metadata file disagrees with its graph."""


@dataclasses.dataclass(frozen=True)
class ScoringPlan:
    export_dir: str
    metadata: dict
    source: str  # RAW or DATASET
    kind: str
    patterns: tuple[str, ...]  # raw globs, or the dataset directory
    files: tuple[str, ...]
    input_bytes: int
    frames: str  # VIEW_FRAMES, WHOLE_VIDEOS or VIDEO_VECTORS
    segments: bool
    parse_config: ParseConfig | None = None  # raw input
    layout: DatasetLayout | None = None  # dataset input
    dataset_format: str | None = None

    @property
    def view(self) -> View | None:
        return View.parse(self.metadata["serving_view"]) if self.kind == F.FRAME_LEVEL else None

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(self.metadata["features"])

    @property
    def num_classes(self) -> int:
        return int(self.metadata["num_classes"])

    @property
    def num_entities(self) -> int:
        return int(self.metadata.get("num_entities") or self.metadata["num_classes"])

    @property
    def entity_to_class(self) -> tuple[int, ...] | None:
        mapping = self.metadata.get("entity_to_class")
        return None if mapping is None else tuple(mapping)

    def frame_columns(self) -> dict[str, str]:
        """Model feature -> the row column its frames come from."""
        if self.frames == WHOLE_VIDEOS:
            return {f: F.full_view_column(f) for f in self.features}
        if self.frames == VIDEO_VECTORS:
            return {f: F.MEAN_FEATURE_OF[f] for f in self.features}
        return {f: f for f in self.features}

    def identity(self) -> dict:
        """The input's identity for metrics.json."""
        return {
            "source": self.source,
            "kind": self.kind,
            "patterns": list(self.patterns),
            "files": len(self.files),
            "bytes": self.input_bytes,
            "frames": self.frames,
            "dataset_format": self.dataset_format,
        }

    def model_identity(self, extra_keys: tuple[str, ...] = ()) -> dict:
        """The export's identity for metrics.json (`path` + MODEL_IDENTITY_KEYS + `extra_keys`)."""
        keys = MODEL_IDENTITY_KEYS + extra_keys
        return {"path": self.export_dir, **{k: self.metadata.get(k) for k in keys}}


# ----- planning ----------------------------------------------------------------------------
def resolve_export(model: str, subdirs: tuple[str, ...] = ("export",)) -> tuple[str, dict]:
    """An export directory (or a job dir holding one of `subdirs`) and its metadata, as
    its graph's `metadata` signature gives it (`trainer.export.verified_metadata`)."""
    from trainer.export import verified_metadata

    model = model.rstrip("/")
    for candidate in (model, *(FileSystems.join(model, d) for d in subdirs)):
        path = FileSystems.join(candidate, METADATA_NAME)
        if FileSystems.exists(path):
            try:
                return candidate, verified_metadata(candidate)
            except ValueError as error:
                raise InvalidExport(str(error)) from None
    raise ScoringError(
        f"--model {model} is neither a fewframes export nor a training job dir with export/ "
        f"(no {METADATA_NAME})"
    )


def plan_scoring(model: str, inputs: list[str]) -> ScoringPlan:
    """Check that `inputs` fit the model and decide how to read and score them."""
    export_dir, metadata = resolve_export(model)
    if len(inputs) == 1 and FileSystems.exists(FileSystems.join(inputs[0].rstrip("/"), MANIFEST_NAME)):
        return plan_dataset(export_dir, metadata, inputs[0].rstrip("/"))
    return _plan_raw(export_dir, metadata, inputs)


def _check_kind(metadata: dict, kind: str, what: str) -> None:
    if metadata["kind"] != kind:
        raise ScoringError(f"the model is {metadata['kind']}-level but {what} is {kind}-level")


CLASS_CHECK_RECORDS = 64  # leading raw records whose labels are checked against the model's classes


def _check_class_space(records: list[bytes], num_entities: int, metadata: dict) -> None:
    """Refuse raw input whose first labelled records mostly carry labels the model has no
    class for (other data, or another release's class ids): every such video would be
    dead-lettered and the rest scored as if nothing were wrong. A few bad labels among
    them are left to the dead letters and --max-failed-fraction."""
    labelled, outside = 0, []
    for record in records:
        parsed = raw.id_and_labels(record)
        if parsed is None or not parsed[1]:
            continue
        labelled += 1
        bad = [label for label in parsed[1] if not 0 <= label < num_entities]
        if bad:
            outside.append((parsed[0], bad[0]))
    if outside and 2 * len(outside) > labelled:
        video_id, label = outside[0]
        raise ScoringError(
            f"the input is not in the model's class space: {len(outside)} of the first {labelled} labelled "
            f"records have labels outside the model's {num_entities} classes (label space "
            f"{metadata.get('label_space') or 'classes'}; video {video_id!r} has label {label})"
        )


def _plan_raw(export_dir: str, metadata: dict, patterns: list[str]) -> ScoringPlan:
    try:
        files = read.match_inputs(patterns)
        paths = [m.path for m in files]
        first = read.first_record(paths)
        kind = raw.detect_kind(first)
        leading = read.leading_records(paths, CLASS_CHECK_RECORDS)
        # Whether any shard is segment-rated, from the first record of each.
        shard_firsts = read.first_record_of_each(paths) if kind == F.FRAME_LEVEL else []
    except (ValueError, OSError) as error:
        raise ScoringError(str(error)) from None
    _check_kind(metadata, kind, "the input")
    num_entities = int(metadata.get("num_entities") or metadata["num_classes"])
    _check_class_space(leading, num_entities, metadata)
    segments = any(raw.has_segments(record) for record in shard_firsts)
    view = View.parse(metadata["serving_view"]) if kind == F.FRAME_LEVEL else None
    config = ParseConfig(
        kind=kind,
        num_classes=num_entities,
        view=view,
        frame_dtype="float32",
        # Segments are scored on their own frames, which the view may have dropped.
        teacher_view=segments and view.kind != ALL,
        segments=segments,
    )
    return ScoringPlan(
        export_dir=export_dir,
        metadata=metadata,
        source=RAW,
        kind=kind,
        patterns=tuple(patterns),
        files=tuple(m.path for m in files),
        input_bytes=sum(m.size_in_bytes for m in files),
        frames=VIEW_FRAMES if kind == F.FRAME_LEVEL else VIDEO_VECTORS,
        segments=segments,
        parse_config=config,
    )


def plan_dataset(export_dir: str, metadata: dict, dataset: str) -> ScoringPlan:
    with FileSystems.open(FileSystems.join(dataset, MANIFEST_NAME)) as stream:
        manifest = json.loads(stream.read())
    layout = DatasetLayout.from_dict(manifest["schema"])
    _check_kind(metadata, layout.kind, f"dataset {dataset}")
    num_entities = int(metadata.get("num_entities") or metadata["num_classes"])
    if int(manifest["num_classes"]) != num_entities:
        raise ScoringError(
            f"dataset {dataset} has {manifest['num_classes']} classes but the model was trained on "
            f"{num_entities}"
        )
    frames = VIDEO_VECTORS
    if layout.kind == F.FRAME_LEVEL:
        view = View.parse(metadata["serving_view"])
        if layout.view == str(view):
            frames = VIEW_FRAMES
        elif layout.teacher_view:
            frames = WHOLE_VIDEOS
        else:
            raise ScoringError(
                f"dataset {dataset} stores view {layout.view} without the full view, and the model "
                f"reads {view}: preprocess with --view {view} or --teacher-view"
            )
    fmt = PARQUET if PARQUET in manifest.get("formats", [PARQUET]) else TFRECORD
    matched = FileSystems.match([FileSystems.join(dataset, fmt, SHARD_PREFIX + "-*")])[0].metadata_list
    if not matched:
        raise ScoringError(f"dataset {dataset} has no {fmt} files")
    files = sorted(matched, key=lambda m: m.path)
    return ScoringPlan(
        export_dir=export_dir,
        metadata=metadata,
        source=DATASET,
        kind=layout.kind,
        patterns=(dataset,),
        files=tuple(m.path for m in files),
        input_bytes=sum(m.size_in_bytes for m in files),
        frames=frames,
        # Segments are scored on their own frames: the full view, or a view keeping all.
        segments=layout.segments and (layout.teacher_view or layout.view == ALL),
        layout=layout,
        dataset_format=fmt,
    )


# ----- reading ------------------------------------------------------------------------------
class _ReadDatasetFile(beam.DoFn):
    """One dataset file -> its rows (with source and row index), or failures."""

    def __init__(self, layout: DatasetLayout, fmt: str, columns: list[str]):
        self._layout, self._format, self._columns = layout, fmt, columns

    def process(self, path: str):
        if self._format == PARQUET:
            yield from self._parquet(path)
        else:
            yield from self._tfrecord(path)

    def _parquet(self, path):
        import pyarrow.parquet as pq

        index = 0
        with FileSystems.open(path) as stream:
            parquet = pq.ParquetFile(stream)
            for group in range(parquet.num_row_groups):
                size = parquet.metadata.row_group(group).num_rows
                try:
                    table = parquet.read_row_group(group, columns=self._columns)
                    rows = self._layout.rows_from_table(table, self._columns)
                except Exception as error:  # a damaged row group fails its rows, named
                    for i in range(index, index + size):
                        yield beam.pvalue.TaggedOutput(
                            failures.FAILED,
                            failures.failure(
                                path, i, -1, failures.STAGE_READ, f"cannot read row group: {error}"
                            ),
                        )
                    index += size
                    continue
                for row in rows:
                    row[SOURCE_KEY], row[INDEX_KEY] = path, index
                    index += 1
                    yield VideoRow(row)

    def _tfrecord(self, path):
        from pipelines.tfrecord_io import Damage, iter_frames

        with FileSystems.open(path) as stream:
            for index, item in enumerate(iter_frames(stream)):
                if isinstance(item, Damage):
                    yield beam.pvalue.TaggedOutput(
                        failures.FAILED,
                        failures.failure(path, index, item.offset, failures.STAGE_READ, item.reason),
                    )
                    continue
                try:
                    row = self._layout.row_from_tf_example(item.data, self._columns)
                except Exception as error:
                    yield beam.pvalue.TaggedOutput(
                        failures.FAILED,
                        failures.failure(
                            path, index, item.offset, failures.STAGE_PARSE, f"cannot parse row: {error}"
                        ),
                    )
                    continue
                row[SOURCE_KEY], row[INDEX_KEY] = path, index
                yield VideoRow(row)


class ReadVideos(beam.PTransform):
    """The plan's input as rows for scoring; tagged outputs `rows`, `failed`, `read_count`.

    `read_count` is one number: records read (whole and damaged), so that
    `read_count == scored + failed` can be checked at the end. `frame_columns` (dataset
    input) reads and checks these frame columns instead of the model's.
    """

    def __init__(self, plan: ScoringPlan, parse_batch_size: int = 64, frame_columns=None):
        super().__init__()
        self._plan, self._batch = plan, parse_batch_size
        self._frame_columns = list(frame_columns or plan.frame_columns().values())

    def expand(self, pipeline):
        plan = self._plan
        if plan.source == RAW:
            records = pipeline | "ReadShards" >> read.ReadRawRecords(list(plan.patterns))
            parsed = records.records | "ParseAndValidate" >> ParseAndValidate(plan.parse_config, self._batch)
            whole = records.records | "CountRecords" >> beam.combiners.Count.Globally()
            damaged = records[failures.FAILED] | "CountDamaged" >> beam.combiners.Count.Globally()
            read_count = (
                (whole, damaged) | "RecordsRead" >> beam.Flatten() | "SumRead" >> beam.CombineGlobally(sum)
            )
            failed = (records[failures.FAILED], parsed[failures.FAILED]) | "ReadFailures" >> beam.Flatten()
            return {"rows": parsed.rows, "failed": failed, "read_count": read_count}
        columns = [F.ID, F.LABELS] + self._frame_columns
        if plan.kind == F.FRAME_LEVEL:
            columns.append(F.NUM_FRAMES)
        if plan.segments:
            columns += list(F.SEGMENT_FIELDS)
            columns += [F.full_view_column(f) if plan.layout.teacher_view else f for f in plan.features]
        out = (
            pipeline
            | "DatasetFiles" >> beam.Create(list(plan.files))
            | "SpreadFiles" >> beam.Reshuffle()
            | "ReadRows"
            >> beam.ParDo(_ReadDatasetFile(plan.layout, plan.dataset_format, sorted(set(columns))))
            .with_output_types(VideoRow)
            .with_outputs(failures.FAILED, main="rows")
        )
        rows = out.rows | "CheckRows" >> beam.ParDo(_CheckDatasetRow(plan, self._frame_columns)).with_outputs(
            failures.FAILED, main="rows"
        )
        read_count = (
            (
                out.rows | "CountRows" >> beam.combiners.Count.Globally(),
                out[failures.FAILED] | "CountUnreadable" >> beam.combiners.Count.Globally(),
            )
            | "RowsRead" >> beam.Flatten()
            | "SumRead" >> beam.CombineGlobally(sum)
        )
        failed = (out[failures.FAILED], rows[failures.FAILED]) | "ReadFailures" >> beam.Flatten()
        return {"rows": rows.rows, "failed": failed, "read_count": read_count}


class _CheckDatasetRow(beam.DoFn):
    """The checks a raw record passes, for rows read back from a dataset."""

    def __init__(self, plan: ScoringPlan, frame_columns: list[str]):
        self._num_entities = plan.num_entities
        self._columns = frame_columns
        self._frames = plan.frames

    def process(self, row):
        reason = self._problem(row)
        if reason is None:
            yield row
        else:
            yield beam.pvalue.TaggedOutput(
                failures.FAILED,
                failures.failure(
                    row[SOURCE_KEY], row[INDEX_KEY], -1, failures.STAGE_VALIDATE, reason, row.get(F.ID, "")
                ),
            )

    def _problem(self, row) -> str | None:
        labels = np.asarray(row[F.LABELS])
        outside = labels[(labels < 0) | (labels >= self._num_entities)]
        if outside.size:
            return f"label {int(outside[0])} is outside [0, {self._num_entities})"
        lengths = {len(row[c]) for c in self._columns}
        if self._frames != VIDEO_VECTORS and (len(lengths) != 1 or 0 in lengths):
            return f"frame columns hold {sorted(lengths)} frames (need the same, non-zero, count)"
        if self._frames == WHOLE_VIDEOS and lengths != {min(int(row[F.NUM_FRAMES]), F.MAX_FRAMES)}:
            return (
                f"the full view holds {lengths.pop()} frames, but num_frames {row[F.NUM_FRAMES]} "
                f"means {min(int(row[F.NUM_FRAMES]), F.MAX_FRAMES)}"
            )
        for column in self._columns:
            if not np.isfinite(np.asarray(row[column], dtype=np.float32)).all():
                return f"column {column!r} holds non-finite values"
        return None


# ----- scoring ------------------------------------------------------------------------------
def _pad_features(videos: dict[str, list]) -> tuple[dict, np.ndarray]:
    """feature -> videos (`[T_i, D]` each) as the signatures' zero-padded float32 inputs + lengths."""
    from trainer.data import pad_frames

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


class VideoScoringHandler(_ExportHandler):
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


class SegmentScoringHandler(_ExportHandler):
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


def _failed_batch(failed) -> list[dict]:
    """RunInference's (batch, exception) dead letter -> one failure per video."""
    batch, error = failed
    message = str(error).splitlines()[0][:300] if str(error) else type(error).__name__
    reason = f"model failed on its batch: {message}"
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
