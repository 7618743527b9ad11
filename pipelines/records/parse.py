"""Parsing and validating raw YouTube-8M records in batches with TF ops.

A frame-level batch whose records are all laid out canonically (`pipelines.records.wire`; every
standard writer's output) is read with numpy: the kept frames are sliced out of the
record bytes and only the small contexts go through one `tf.io.parse_example` call.
Any other batch is parsed by one traced `tf.io.parse_sequence_example` graph, which
gathers the student view from the frame strings before anything is decoded and finds
wrong-length frames; both give the same outputs, and validation, vectorised over the
batch, is the same code after them. Video-level batches are one `parse_example` call.
A batch that TF cannot parse at all (one record is not a protobuf, a feature has the
wrong type) is re-parsed record by record so that only the bad record fails.
"""

from __future__ import annotations

import dataclasses
import re

import apache_beam as beam
import numpy as np

from pipelines.records import failures, wire
from pipelines.records.coders import VideoRow
from schemas import features as F
from schemas import raw
from schemas.quantization import store_frames
from schemas.views import View


class ParseAndValidate(beam.PTransform):
    """Raw `(source, index, offset, bytes)` records -> dataset rows, plus `failed`."""

    def __init__(self, config: ParseConfig, max_batch_size: int = 64):
        super().__init__()
        self._config, self._max_batch_size = config, max_batch_size

    def expand(self, records):
        return (
            records
            # A fixed size: adaptive batching starts at 1 record, and TF's per-call
            # overhead then dominates small inputs.
            | "BatchRecords"
            >> beam.BatchElements(min_batch_size=self._max_batch_size, max_batch_size=self._max_batch_size)
            | "ParseBatches"
            >> beam.ParDo(_ParseBatches(self._config))
            .with_output_types(VideoRow)
            .with_outputs(failures.FAILED, main="rows")
        )


# ----- transforms ---------------------------------------------------------------------
class _ParseBatches(beam.DoFn):
    def __init__(self, config: ParseConfig):
        self._config = config
        self._parser = None
        self._rows = beam.metrics.Metrics.counter("parse", "rows")
        self._failed = beam.metrics.Metrics.counter("parse", "failed")
        # Frame-level batches read from their bytes (`pipelines.records.wire`) or by the TF graph.
        self._canonical = beam.metrics.Metrics.counter("parse", "canonical_batches")
        self._graph = beam.metrics.Metrics.counter("parse", "graph_batches")

    def setup(self):
        self._parser = RecordParser(self._config)

    def process(self, batch):
        parser = self._parser
        canonical, graph = parser.canonical_batches, parser.graph_batches
        rows, failed = parser.parse_batch(batch)
        self._rows.inc(len(rows))
        self._failed.inc(len(failed))
        self._canonical.inc(parser.canonical_batches - canonical)
        self._graph.inc(parser.graph_batches - graph)
        for row in rows:
            yield VideoRow(row)
        for record in failed:
            yield beam.pvalue.TaggedOutput(failures.FAILED, record)


SOURCE_KEY = "_source"  # where a row came from; used for duplicates, never written
INDEX_KEY = "_index"
# Counts the manifest's statistics need from the raw record, never written: the rated
# segments its context holds (whether or not the row keeps them) and the repeated
# labels dropped from its label list.
RATED_SEGMENTS_READ_KEY = "_rated_segments_read"
DUPLICATE_LABELS_KEY = "_duplicate_labels_removed"

# Suffixes of the frame-level parse graph's outputs (next to the feature names).
_ROWS, _COUNT, _WRONG_FRAME, _WRONG_SIZE = "/rows", "/count", "/wrong_frame", "/wrong_size"


@dataclasses.dataclass(frozen=True)
class ParseConfig:
    kind: str
    num_classes: int
    view: View | None = None
    frame_dtype: str = "float16"
    teacher_view: bool = False
    segments: bool = False

    def __post_init__(self):
        if self.kind == F.FRAME_LEVEL:
            if self.view is None:
                raise ValueError("frame-level preprocessing needs a student view")
            if not self.view.is_deterministic:
                raise ValueError(f"view {self.view} is random; datasets store deterministic views only")


class InvalidRecord(Exception):
    """A record that parsed but breaks the format's rules."""


_TF_NOISE = re.compile(r"\{\{function_node [^}]*\}\}\s*|\s*\[Op:[A-Za-z0-9]+\]")


def _first_line(error: Exception) -> str:
    """TF's error message without its op-name decorations, on one line."""
    message = _TF_NOISE.sub("", getattr(error, "message", None) or str(error)).strip()
    return message.splitlines()[0][:500] if message else type(error).__name__


def _split_rows(values: np.ndarray, row_ids: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Per-record arrays of a batch's variable-length feature (values with their record
    numbers, in order, as a VarLenFeature's SparseTensor holds them)."""
    counts = np.bincount(row_ids, minlength=batch_size) if len(values) else np.zeros(batch_size, np.int64)
    return np.split(values, np.cumsum(counts)[:-1])


def _ragged_rows(sparse, batch_size: int) -> list[np.ndarray]:
    """Rows of a 2-D SparseTensor (VarLenFeature output) as numpy arrays."""
    return _split_rows(sparse.values.numpy(), sparse.indices.numpy()[:, 0], batch_size)


def _video_id(id_value: bytes, legacy_value: bytes) -> str:
    value = id_value or legacy_value
    if not value:
        raise InvalidRecord(f"missing '{F.ID}' (and no '{F.LEGACY_ID}')")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRecord(f"'{F.ID}' is not UTF-8: {value[:40]!r}") from None


def _check_labels(labels: np.ndarray, num_classes: int) -> np.ndarray:
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)]
        raise InvalidRecord(f"label {int(bad[0])} outside [0, {num_classes})")
    return labels.astype(np.int32)


def _unique_labels(labels: np.ndarray) -> np.ndarray:
    """A video's labels without repeats, in their first-seen order (a class is either
    present in a video or not; a repeated label would count twice in every statistic)."""
    if len(labels) < 2:
        return labels
    _, first = np.unique(labels, return_index=True)
    return labels[np.sort(first)]


def _strict_parse(data: bytes):
    """The record as a `tf.train.SequenceExample`, or None where protobuf refuses it (TF's
    parse ops are more lenient, so a record they read may still get here)."""
    import tensorflow as tf

    try:
        return tf.train.SequenceExample.FromString(data)
    except Exception:  # protobuf's DecodeError is not importable portably
        return None


def _explain_no_frames(data: bytes) -> str:
    """Why a frame-level parse found no frames (only runs for failing records)."""
    record = _strict_parse(data)
    if record is None:
        return "no frames found, and the record is not a well-formed SequenceExample"
    if F.MEAN_RGB in record.context.feature:
        return f"record is video level (has '{F.MEAN_RGB}') but the input is frame level"
    if F.RGB not in record.feature_lists.feature_list:
        return f"feature list '{F.RGB}' is missing"
    return "video has zero frames"


def _context_outputs(context: dict) -> dict:
    """Ids and context lists as (values, record numbers), from a TF parse of contexts."""
    out = {F.ID: context[F.ID], F.LEGACY_ID: context[F.LEGACY_ID]}
    for name in (F.LABELS, *F.SEGMENT_FIELDS):
        out[name], out[name + _ROWS] = context[name].values, context[name].indices[:, 0]
    return out


class RecordParser:
    """Turns batches of `(source, index, offset, bytes)` into dataset rows and failures."""

    def __init__(self, config: ParseConfig, read_canonical: bool = True):
        """`read_canonical=False` sends every frame-level batch through the TF graph
        (tests compare the two paths)."""
        import tensorflow as tf

        self._tf = tf
        self.config = config
        self._context_spec = raw.context_parse_spec(config.kind)
        self._sequence_spec = raw.sequence_parse_spec()
        frame_level = config.kind == F.FRAME_LEVEL
        self._frame_graph = self._build_frame_graph() if frame_level else None
        self._context_graph = self._build_context_graph() if frame_level and read_canonical else None
        # What a TF parse op raises for a record it cannot read: InvalidArgumentError, or
        # UnicodeDecodeError where the message quotes bytes that are not UTF-8.
        self._parse_errors = (tf.errors.InvalidArgumentError, UnicodeDecodeError)
        # Frame-level batches read each way, for the job's counters and for tests.
        self.canonical_batches = self.graph_batches = 0

    # ----- batch entry point ---------------------------------------------------------
    def parse_batch(self, records: list[tuple]) -> tuple[list[dict], list[dict]]:
        if not records:
            return [], []
        try:
            return self._parse_valid_protos(records)
        except self._parse_errors:
            if len(records) == 1:
                return [], [self._parse_failure(records[0])]
        rows, failed = [], []
        for record in records:
            try:
                more_rows, more_failed = self._parse_valid_protos([record])
            except self._parse_errors:
                more_rows, more_failed = [], [self._parse_failure(record)]
            rows += more_rows
            failed += more_failed
        return rows, failed

    def _parse_failure(self, record) -> dict:
        source, index, offset, data = record
        try:
            self._parse_valid_protos([record])
            reason = "unparseable record"
        except self._tf.errors.InvalidArgumentError as error:
            reason = _first_line(error)
        except UnicodeDecodeError:
            reason = "unparseable record (TF's message about it is not text)"
        return failures.failure(source, index, offset, failures.STAGE_PARSE, f"cannot parse record: {reason}")

    def _parse_valid_protos(self, records):
        if self.config.kind == F.FRAME_LEVEL:
            return self._frame_level(records)
        return self._video_level(records)

    def _validate_each(self, records, ids, legacy, labels, complete_row):
        """Build a row per record, or a failure saying why it is invalid.

        `complete_row(i, data, row)` adds the kind-specific fields to a row holding the
        id and labels, raising InvalidRecord. Returns the batch positions of the valid
        records, their rows and the failures.
        """
        valid, rows, failed = [], [], []
        for i, (source, index, offset, data) in enumerate(records):
            video_id = ""
            try:
                video_id = _video_id(ids[i], legacy[i])
                checked = _check_labels(labels[i], self.config.num_classes)
                unique = _unique_labels(checked)
                row = {F.ID: video_id, F.LABELS: unique, DUPLICATE_LABELS_KEY: len(checked) - len(unique)}
                complete_row(i, data, row)
            except InvalidRecord as error:
                failed.append(
                    failures.failure(source, index, offset, failures.STAGE_VALIDATE, str(error), video_id)
                )
                continue
            row[SOURCE_KEY], row[INDEX_KEY] = source, index
            valid.append(i)
            rows.append(row)
        return valid, rows, failed

    # ----- video level ------------------------------------------------------------------
    def _video_level(self, records):
        tf = self._tf
        parsed = tf.io.parse_example(tf.constant([r[3] for r in records]), self._context_spec)
        size = len(records)
        means = {name: _ragged_rows(parsed[name], size) for name in (F.MEAN_RGB, F.MEAN_AUDIO)}

        def complete_row(i, data, row):
            for feature in F.FRAME_FEATURES:
                name, dim = F.MEAN_FEATURE_OF[feature], F.FEATURE_DIMS[feature]
                values = means[name][i]
                if len(values) == 0:
                    raise InvalidRecord(self._explain_missing_mean(data, name))
                if len(values) != dim:
                    raise InvalidRecord(f"'{name}' has {len(values)} values, expected {dim}")
                if not np.isfinite(values).all():
                    raise InvalidRecord(f"'{name}' holds NaN or infinite values")
                row[name] = values.astype(np.float32)

        _, rows, failed = self._validate_each(
            records,
            parsed[F.ID].numpy(),
            parsed[F.LEGACY_ID].numpy(),
            _ragged_rows(parsed[F.LABELS], size),
            complete_row,
        )
        return rows, failed

    def _explain_missing_mean(self, data: bytes, name: str) -> str:
        record = _strict_parse(data)
        if record is not None and F.RGB in record.feature_lists.feature_list:
            return f"record is frame level (has feature list '{F.RGB}') but the input is video level"
        return f"'{name}' is missing"

    # ----- frame level ------------------------------------------------------------------
    def _frame_level(self, records):
        config = self.config
        size = len(records)
        parsed = self._read_canonical(records) if self._context_graph is not None else None
        if parsed is None:
            outputs = self._frame_graph(self._tf.constant([r[3] for r in records]))
            parsed = {name: value.numpy() for name, value in outputs.items()}
            self.graph_batches += 1
        else:
            self.canonical_batches += 1
        segments = (
            {name: _split_rows(parsed[name], parsed[name + _ROWS], size) for name in F.SEGMENT_FIELDS}
            if config.segments
            else {}
        )
        # Counted whether or not the rows keep segments, so that the manifest can show
        # rated segments read = written.
        rated_in_record = np.bincount(parsed[F.SEGMENT_LABELS + _ROWS].astype(np.int64), minlength=size)
        counts = {f: parsed[f + _COUNT] for f in F.FRAME_FEATURES}

        def complete_row(i, data, row):
            num_frames = int(counts[F.RGB][i])
            if num_frames == 0:
                raise InvalidRecord(_explain_no_frames(data))
            for feature in F.FRAME_FEATURES:
                count = int(counts[feature][i])
                if count != num_frames:
                    raise InvalidRecord(f"'{F.RGB}' has {num_frames} frames but '{feature}' has {count}")
                wrong = int(parsed[feature + _WRONG_FRAME][i])
                if wrong >= 0:
                    raise InvalidRecord(
                        f"'{feature}' frame {wrong} has {int(parsed[feature + _WRONG_SIZE][i])} bytes, "
                        f"expected {F.FEATURE_DIMS[feature]}"
                    )
            row[F.NUM_FRAMES] = num_frames
            row[F.FRAME_INDEX] = config.view.frame_indices(num_frames)
            row[RATED_SEGMENTS_READ_KEY] = int(rated_in_record[i])
            if config.segments:
                row.update(self._segments(segments, i, min(num_frames, F.MAX_FRAMES)))

        valid, rows, failed = self._validate_each(
            records,
            parsed[F.ID],
            parsed[F.LEGACY_ID],
            _split_rows(parsed[F.LABELS], parsed[F.LABELS + _ROWS], size),
            complete_row,
        )
        if valid:
            self._attach_frames(rows, valid, parsed)
        return rows, failed

    def _build_frame_graph(self):
        """One traced TF graph from serialized records to everything validation and the
        rows need: one call per batch instead of an eager op (and a numpy copy) per step.

        Returns per record: ids, context lists as (values, row ids), frame counts, the
        first frame of each feature whose byte length is wrong (-1: none) and its length,
        and the quantized view frames (and the full view when kept), `[B, frames, dim]`.
        Rows of invalid records hold whatever their frames gave; they are never used.
        """
        tf = self._tf
        view, teacher_view = self.config.view, self.config.teacher_view
        context_spec, sequence_spec = self._context_spec, self._sequence_spec

        def parse(serialized):
            context, sequences, lengths = tf.io.parse_sequence_example(
                serialized, context_features=context_spec, sequence_features=sequence_spec
            )
            out = _context_outputs(context)
            for feature in F.FRAME_FEATURES:
                frames, dim = sequences[feature], F.FEATURE_DIMS[feature]
                count = tf.cast(lengths[feature], tf.int32)
                # One extra right length per video, so argmax has a column to land on.
                sizes = tf.pad(tf.strings.length(frames), [[0, 0], [0, 1]], constant_values=dim)
                wrong = (sizes != dim) & (tf.range(tf.shape(sizes)[1])[None, :] < count[:, None])
                first = tf.argmax(tf.cast(wrong, tf.int32), axis=1, output_type=tf.int32)
                out[feature + _COUNT] = count
                out[feature + _WRONG_FRAME] = tf.where(tf.reduce_any(wrong, axis=1), first, -1)
                out[feature + _WRONG_SIZE] = tf.gather(sizes, first, batch_dims=1)
                # The view is taken from the frame strings: only kept frames are decoded.
                kept, _ = view.gather_padded_tf(frames, count)
                out[feature] = tf.io.decode_raw(kept, tf.uint8, fixed_length=dim)
                if teacher_view:
                    full = frames[:, : F.MAX_FRAMES]
                    out[F.full_view_column(feature)] = tf.io.decode_raw(full, tf.uint8, fixed_length=dim)
            return out

        # No tensor-dependent Python control flow here, so no autograph: its source
        # rewrite made up ~2/3 of the trace each parse worker pays at start-up.
        return tf.function(parse, autograph=False, input_signature=[tf.TensorSpec([None], tf.string)])

    def _build_context_graph(self):
        """Contexts serialized as `Example`s -> the frame graph's context outputs."""
        tf, spec = self._tf, self._context_spec

        def parse(examples):
            return _context_outputs(tf.io.parse_example(examples, spec))

        return tf.function(parse, autograph=False, input_signature=[tf.TensorSpec([None], tf.string)])

    def _read_canonical(self, records) -> dict | None:
        """The frame graph's outputs for a batch read by `pipelines.records.wire`, or None when a
        record is not canonical or a context does not parse: then the graph reads the
        batch, and its errors and validation say what is wrong."""
        tf = self._tf
        split = []
        for record in records:
            canonical = wire.split_frame_record(record[3])
            if canonical is None:
                return None
            split.append(canonical)
        try:
            outputs = self._context_graph(tf.constant([c.context_example for c in split]))
        except self._parse_errors:
            return None
        parsed = {name: value.numpy() for name, value in outputs.items()}
        view, size = self.config.view, len(split)
        for feature, dim in F.FEATURE_DIMS.items():
            frames = [c.frames[feature] for c in split]
            counts = np.array([len(f) for f in frames], dtype=np.int32)
            kept = np.zeros((size, view.max_selected, dim), dtype=np.uint8)
            for i, video in enumerate(frames):
                indices = view.frame_indices(len(video))
                kept[i, : len(indices)] = video[indices]
            parsed[feature] = kept
            parsed[feature + _COUNT] = counts
            parsed[feature + _WRONG_FRAME] = np.full(size, -1, dtype=np.int32)  # checked by wire
            parsed[feature + _WRONG_SIZE] = np.full(size, dim, dtype=np.int32)
            if self.config.teacher_view:
                full = np.zeros((size, min(int(counts.max()), F.MAX_FRAMES), dim), dtype=np.uint8)
                for i, video in enumerate(frames):
                    capped = video[: F.MAX_FRAMES]
                    full[i, : len(capped)] = capped
                parsed[F.full_view_column(feature)] = full
        return parsed

    def _segments(self, segments: dict, i: int, num_frames: int) -> dict:
        starts, ends = segments[F.SEGMENT_START_TIMES][i], segments[F.SEGMENT_END_TIMES][i]
        seg_labels, scores = segments[F.SEGMENT_LABELS][i], segments[F.SEGMENT_SCORES][i]
        if not len(starts) == len(ends) == len(seg_labels) == len(scores):
            raise InvalidRecord(
                f"segment fields differ in length ({len(starts)} starts, {len(ends)} ends, "
                f"{len(seg_labels)} labels, {len(scores)} scores)"
            )
        if len(starts) and (starts.min() < 0 or ends.max() > num_frames or (ends <= starts).any()):
            raise InvalidRecord(f"a rated segment lies outside the video's {num_frames} frames")
        return {
            F.SEGMENT_START_TIMES: starts.astype(np.int32),
            F.SEGMENT_END_TIMES: ends.astype(np.int32),
            F.SEGMENT_LABELS: _check_labels(seg_labels, self.config.num_classes),
            F.SEGMENT_SCORES: scores.astype(np.float32),
        }

    def _attach_frames(self, rows: list[dict], valid: list[int], parsed: dict) -> None:
        """Each valid row's view (and full view) frames, stored as the dataset's dtype."""
        frame_dtype, teacher_view = self.config.frame_dtype, self.config.teacher_view
        for feature in F.FRAME_FEATURES:
            view = store_frames(parsed[feature], frame_dtype)
            full_column = F.full_view_column(feature)
            full = store_frames(parsed[full_column], frame_dtype) if teacher_view else None
            for position, row in zip(valid, rows, strict=True):
                row[feature] = view[position, : len(row[F.FRAME_INDEX])]
                if full is not None:
                    row[full_column] = full[position, : min(row[F.NUM_FRAMES], F.MAX_FRAMES)]
        for row in rows:
            row[F.FRAME_INDEX] = row[F.FRAME_INDEX].astype(np.int16)
