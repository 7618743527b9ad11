"""The preprocessed dataset format, defined once.

A `DatasetLayout` (kind, frame dtype, which views) lists the dataset's columns. From
that one list come the Arrow schema (Parquet), the `tf.train.Example` encoding and TF
feature spec (TFRecord), the decoder both readers use, and the README table, so a
column cannot be renamed or retyped in one place only.

Frames are stored as they were dequantized (`float16` or `float32`) or still
quantized (`uint8`); the normalization chain (l2 per frame, then the optional
z-score) is applied by its readers, identically in training and serving.
Frames are stored as bytes, like the raw format: in both Parquet and TFRecord a frames
column holds one byte string per video, its kept frames back to back (little-endian,
`dim` values of the layout's frame dtype per frame); in Parquet it is `large_binary`
(64-bit offsets, so a row group may exceed 2 GiB of frames). Readers decode it with
`np.frombuffer` / `decode_raw` and a reshape, and so can anyone with pandas or duckdb:
`np.frombuffer(cell, np.float16).reshape(-1, 1024)`. Parquet's nested float lists carry
repetition levels on every value and measured 20x slower to write and 10x slower to read
at the same size. Datasets written before this encoding hold a list with one
fixed-size binary value per frame (`Column.legacy_arrow_type`), which pandas cannot convert;
`rows_from_table` still reads them.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from schemas import features as F
from schemas.quantization import FRAME_DTYPES

SCHEMA_VERSION = 1

# A dataset directory: DIR/manifest.json, DIR/parquet/part-*.parquet,
# DIR/tfrecord/part-*.tfrecord, DIR/errors/ (dead letters), DIR/transform/ (analysis).
MANIFEST_NAME = "manifest.json"
PARQUET = "parquet"
TFRECORD = "tfrecord"
FORMATS = (PARQUET, TFRECORD)
ERRORS_DIR = "errors"
FAILURES_NAME, DUPLICATES_NAME = "failures", "duplicate_ids"  # dead-letter shards under errors/
TRANSFORM_DIR = "transform"
SHARD_PREFIX = "part"
ARROW_METADATA_KEY = b"fewframes.layout"

# Column roles: how a column is typed in each representation.
STRING = "string"
INT = "int"
FLOAT = "float"
INT_LIST = "int_list"
FLOAT_LIST = "float_list"
VECTOR = "vector"
FRAMES = "frames"

_NUMPY_INT_LIST_TYPES = {F.FRAME_INDEX: np.int16, F.TEACHER_TOP_CLASSES: np.int16}


@dataclasses.dataclass(frozen=True)
class Column:
    name: str
    role: str
    doc: str
    dim: int = 0  # width of a vector or of one frame

    def arrow_type(self, frame_dtype: str) -> pa.DataType:
        if self.role == STRING:
            return pa.string()
        if self.role == INT:
            return pa.int32()
        if self.role == FLOAT:
            return pa.float32()
        if self.role == INT_LIST:
            return pa.list_(pa.from_numpy_dtype(_NUMPY_INT_LIST_TYPES.get(self.name, np.int32)))
        if self.role == FLOAT_LIST:
            return pa.list_(pa.float32())
        if self.role == VECTOR:
            return pa.list_(pa.float32(), self.dim)
        return pa.large_binary()

    def legacy_arrow_type(self, frame_dtype: str) -> pa.DataType:
        """The frames type of datasets written before `large_binary` (read, never written)."""
        return pa.list_(pa.binary(self.frame_bytes(frame_dtype)))

    def frame_bytes(self, frame_dtype: str) -> int:
        return self.dim * np.dtype(frame_dtype).itemsize

    def type_text(self, frame_dtype: str) -> str:
        if self.role == FRAMES:
            width = self.frame_bytes(frame_dtype)
            return f"large_binary: n x {self.dim} x {frame_dtype} ({width} bytes per frame)"
        text = str(self.arrow_type(frame_dtype)).replace("<item: ", "<")
        return re.sub(r"\bfloat\b", "float32", text)


@dataclasses.dataclass(frozen=True)
class DatasetLayout:
    """Which columns a preprocessed dataset holds and how its frames are stored."""

    kind: str
    frame_dtype: str = "float16"
    teacher_view: bool = False
    segments: bool = False
    view: str = ""  # the student view's spec, e.g. "every_n:10" (frame level)
    # Teacher targets (`schemas.targets`): "" (none), "all" or "top_k:K", with the
    # teacher's class count and representation width.
    teacher_targets: str = ""
    num_classes: int = 0
    representation_dim: int = 0

    def __post_init__(self):
        if self.kind not in F.KINDS:
            raise ValueError(f"unknown dataset kind {self.kind!r}; expected one of {F.KINDS}")
        if self.frame_dtype not in FRAME_DTYPES:
            raise ValueError(f"unknown frame dtype {self.frame_dtype!r}; expected one of {FRAME_DTYPES}")
        if self.kind == F.VIDEO_LEVEL and (self.teacher_view or self.segments):
            raise ValueError("video-level datasets have no frame views or segments")
        if self.teacher_targets:
            encoding = self.targets_encoding
            if self.kind != F.FRAME_LEVEL:
                raise ValueError("teacher targets are stored with frame-level datasets only")
            if self.num_classes < 1 or self.representation_dim < 1:
                raise ValueError("teacher targets need num_classes and representation_dim")
            encoding.check(self.num_classes)

    @property
    def targets_encoding(self):
        """The `TargetsEncoding` of a teacher-targets dataset (None for other datasets)."""
        from schemas.targets import TargetsEncoding

        return TargetsEncoding.parse(self.teacher_targets) if self.teacher_targets else None

    # ----- the one column list -------------------------------------------------
    def columns(self) -> list[Column]:
        cols = [
            Column(F.ID, STRING, "video id (the raw record's `id`, or `video_id` in 2017 data)"),
            Column(F.LABELS, INT_LIST, "class indices in [0, num_classes); empty for the test partition"),
        ]
        if self.kind == F.VIDEO_LEVEL:
            for feature in F.FRAME_FEATURES:
                cols.append(
                    Column(
                        F.MEAN_FEATURE_OF[feature],
                        VECTOR,
                        f"mean {feature} over frames",
                        F.FEATURE_DIMS[feature],
                    )
                )
            return cols
        cols.append(
            Column(F.NUM_FRAMES, INT, "frames in the raw record, before the 300-frame cap and the view")
        )
        cols.append(Column(F.FRAME_INDEX, INT_LIST, "which frames of the capped video the student view kept"))
        for feature in F.FRAME_FEATURES:
            cols.append(
                Column(
                    feature,
                    FRAMES,
                    f"student-view {feature} frames, the kept frames back to back",
                    F.FEATURE_DIMS[feature],
                )
            )
        if self.teacher_view:
            for feature in F.FRAME_FEATURES:
                cols.append(
                    Column(
                        F.full_view_column(feature),
                        FRAMES,
                        f"every {feature} frame up to 300, back to back (teacher view)",
                        F.FEATURE_DIMS[feature],
                    )
                )
        if self.segments:
            cols += [
                Column(F.SEGMENT_START_TIMES, INT_LIST, "first frame of each rated 5-frame segment"),
                Column(F.SEGMENT_END_TIMES, INT_LIST, "end frame (exclusive) of each rated segment"),
                Column(F.SEGMENT_LABELS, INT_LIST, "class rated for each segment"),
                Column(F.SEGMENT_SCORES, FLOAT_LIST, "rating of each segment: 1 present, 0 absent"),
            ]
        if self.teacher_targets:
            cols += self._target_columns()
        return cols

    def _target_columns(self) -> list[Column]:
        encoding = self.targets_encoding
        if encoding.k == 0:
            cols = [
                Column(
                    F.TEACHER_PREDICTIONS,
                    VECTOR,
                    "the teacher's probability of every class, over all frames",
                    self.num_classes,
                )
            ]
        else:
            cols = [
                Column(F.TEACHER_TOP_CLASSES, INT_LIST, f"the teacher's {encoding.k} most probable classes"),
                Column(F.TEACHER_TOP_SCORES, FLOAT_LIST, "their probabilities (highest first)"),
                Column(F.TEACHER_REST_SCORE, FLOAT, "mean probability of the other classes"),
            ]
        cols.append(
            Column(
                F.TEACHER_REPRESENTATION,
                VECTOR,
                "the teacher's final representation (before its head)",
                self.representation_dim,
            )
        )
        return cols

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns()]

    def frame_columns(self) -> list[Column]:
        return [c for c in self.columns() if c.role == FRAMES]

    # ----- (de)serialisation of the layout itself --------------------------------
    def to_dict(self) -> dict:
        return {"schema_version": SCHEMA_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict) -> DatasetLayout:
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(f"dataset schema version {version} is not supported (this is {SCHEMA_VERSION})")
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields})

    # ----- Arrow / Parquet ------------------------------------------------------
    def arrow_schema(self) -> pa.Schema:
        fields = [pa.field(c.name, c.arrow_type(self.frame_dtype), nullable=False) for c in self.columns()]
        return pa.schema(fields, metadata={ARROW_METADATA_KEY: json.dumps(self.to_dict()).encode()})

    def parquet_writer_options(self) -> dict:
        """`pyarrow.parquet.ParquetWriter` options that suit each column's content.

        Dictionary encoding only for integer columns (labels, frame counts and indices
        repeat; ids, frames and float vectors do not, and Arrow would hash every 2 KB
        frame before giving up on the dictionary). Min/max statistics only where they
        can prune a scan: not on binary frames or float vectors.
        """
        repeating = (INT, INT_LIST)
        prunable = (STRING, INT, FLOAT, INT_LIST)

        def leaf(column: Column) -> str:  # options name Parquet leaf columns (compliant lists)
            return column.name + (".list.element" if column.role in (INT_LIST, FLOAT_LIST) else "")

        return {
            "use_dictionary": [leaf(c) for c in self.columns() if c.role in repeating],
            "write_statistics": [leaf(c) for c in self.columns() if c.role in prunable],
        }

    def to_record_batch(self, rows: Sequence[dict]) -> pa.RecordBatch:
        """Columnar batch of processed videos, built from whole numpy arrays."""
        schema = self.arrow_schema()
        arrays = [_arrow_column(c, rows, schema.field(c.name).type, self.frame_dtype) for c in self.columns()]
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    def rows_from_table(self, table: pa.Table, columns: Sequence[str] | None = None) -> list[dict]:
        """Inverse of `to_record_batch` (numpy arrays per video), for readers and tests."""
        out = [{} for _ in range(table.num_rows)]
        for column in self.columns():
            if columns is not None and column.name not in columns:
                continue
            chunked = table.column(column.name)
            for i, value in enumerate(_numpy_values(column, chunked.combine_chunks(), self.frame_dtype)):
                out[i][column.name] = value
        return out

    # ----- tf.train.Example / TFRecord -------------------------------------------
    def to_tf_example(self, row: dict) -> bytes:
        from tensorflow.core.example import example_pb2, feature_pb2

        feature = {}
        for c in self.columns():
            value = row[c.name]
            if c.role == STRING:
                feature[c.name] = feature_pb2.Feature(
                    bytes_list=feature_pb2.BytesList(value=[value.encode()])
                )
            elif c.role in (INT, INT_LIST):
                values = [int(value)] if c.role == INT else np.asarray(value).tolist()
                feature[c.name] = feature_pb2.Feature(int64_list=feature_pb2.Int64List(value=values))
            elif c.role in (FLOAT, FLOAT_LIST, VECTOR):
                feature[c.name] = feature_pb2.Feature(
                    float_list=feature_pb2.FloatList(value=np.asarray(value, np.float32).reshape(-1).tolist())
                )
            else:
                frames = np.ascontiguousarray(value, dtype=self.frame_dtype)
                feature[c.name] = feature_pb2.Feature(
                    bytes_list=feature_pb2.BytesList(
                        value=[frames.astype(frames.dtype.newbyteorder("<")).tobytes()]
                    )
                )
        return example_pb2.Example(features=feature_pb2.Features(feature=feature)).SerializeToString(
            deterministic=True
        )

    def row_from_tf_example(self, serialized: bytes, columns: Sequence[str] | None = None) -> dict:
        """Inverse of `to_tf_example` with protobuf and numpy only (one record, no TF ops).

        Raises ValueError naming the column when the record does not hold this layout.
        """
        from tensorflow.core.example import example_pb2

        features = example_pb2.Example.FromString(serialized).features.feature
        row = {}
        for c in self.columns():
            if columns is not None and c.name not in columns:
                continue
            if c.name not in features:
                raise ValueError(f"record has no column {c.name!r}")
            feature = features[c.name]
            if c.role == STRING:
                row[c.name] = feature.bytes_list.value[0].decode() if feature.bytes_list.value else ""
            elif c.role == INT:
                row[c.name] = int(feature.int64_list.value[0])
            elif c.role == FLOAT:
                if len(feature.float_list.value) != 1:
                    raise ValueError(
                        f"column {c.name!r} holds {len(feature.float_list.value)} values, expected 1"
                    )
                row[c.name] = np.float32(feature.float_list.value[0])
            elif c.role == INT_LIST:
                dtype = _NUMPY_INT_LIST_TYPES.get(c.name, np.int64)
                row[c.name] = np.asarray(feature.int64_list.value, dtype=dtype)
            elif c.role in (FLOAT_LIST, VECTOR):
                row[c.name] = np.asarray(feature.float_list.value, dtype=np.float32)
                if c.role == VECTOR and row[c.name].shape != (c.dim,):
                    raise ValueError(f"column {c.name!r} holds {row[c.name].size} values, expected {c.dim}")
            else:
                data = b"".join(feature.bytes_list.value)
                dtype = np.dtype(self.frame_dtype).newbyteorder("<")
                if len(data) % (c.dim * dtype.itemsize):
                    raise ValueError(f"column {c.name!r} holds {len(data)} bytes, not whole frames")
                row[c.name] = np.frombuffer(data, dtype=dtype).reshape(-1, c.dim)
        return row

    def tf_feature_spec(self) -> dict:
        import tensorflow as tf

        spec = {}
        for c in self.columns():
            if c.role in (STRING, FRAMES):
                spec[c.name] = tf.io.FixedLenFeature([], tf.string)
            elif c.role == INT:
                spec[c.name] = tf.io.FixedLenFeature([], tf.int64)
            elif c.role == FLOAT:
                spec[c.name] = tf.io.FixedLenFeature([], tf.float32)
            elif c.role == INT_LIST:
                spec[c.name] = tf.io.RaggedFeature(tf.int64)
            elif c.role == FLOAT_LIST:
                spec[c.name] = tf.io.RaggedFeature(tf.float32)
            else:
                spec[c.name] = tf.io.FixedLenFeature([c.dim], tf.float32)
        return spec

    def parse_tf_examples(self, serialized, columns: Sequence[str] | None = None):
        """Parse a batch of serialized Examples: frames come back as ragged [B, None, D].

        `columns` limits the parse (and the frame decoding) to the columns a reader needs.
        """
        import tensorflow as tf

        spec = self.tf_feature_spec()
        if columns is not None:
            unknown = sorted(set(columns) - set(spec))
            if unknown:
                raise ValueError(f"dataset has no column(s) {', '.join(unknown)}")
            spec = {name: spec[name] for name in columns}
        parsed = tf.io.parse_example(serialized, spec)
        dtype = tf.dtypes.as_dtype(self.frame_dtype)
        for c in self.frame_columns():
            if c.name not in spec:
                continue
            # Videos differ in length, so decode the batch's byte strings joined once.
            encoded = parsed[c.name]
            flat = tf.io.decode_raw(tf.strings.reduce_join(encoded), dtype, little_endian=True)
            frame_bytes = c.dim * dtype.size
            parsed[c.name] = tf.RaggedTensor.from_row_lengths(
                tf.reshape(flat, [-1, c.dim]), tf.cast(tf.strings.length(encoded) // frame_bytes, tf.int64)
            )
        return parsed

    # ----- documentation ---------------------------------------------------------
    def markdown_table(self) -> str:
        lines = ["| column | type | meaning |", "| --- | --- | --- |"]
        for c in self.columns():
            lines.append(f"| `{c.name}` | `{c.type_text(self.frame_dtype)}` | {c.doc} |")
        return "\n".join(lines)


def _offsets(lengths: Sequence[int]) -> np.ndarray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def _arrow_column(
    column: Column, rows: Sequence[dict], arrow_type: pa.DataType, frame_dtype: str
) -> pa.Array:
    values = [row[column.name] for row in rows]
    if column.role == STRING:
        return pa.array(values, type=arrow_type)
    if column.role == INT:
        return pa.array(np.asarray(values, dtype=np.int32), type=arrow_type)
    if column.role == FLOAT:
        return pa.array(np.asarray(values, dtype=np.float32), type=arrow_type)
    if column.role in (INT_LIST, FLOAT_LIST):
        item_type = arrow_type.value_type
        numpy_type = item_type.to_pandas_dtype()
        flat = (
            np.concatenate([np.asarray(v, dtype=numpy_type) for v in values])
            if values
            else np.zeros(0, numpy_type)
        )
        return pa.ListArray.from_arrays(
            pa.array(_offsets([len(v) for v in values])), pa.array(flat, type=item_type)
        )
    if column.role == VECTOR:
        flat = np.asarray(values, dtype=np.float32).reshape(-1)
        return pa.FixedSizeListArray.from_arrays(pa.array(flat), column.dim)
    frames = [np.asarray(v).reshape(-1, column.dim) for v in values]
    dtype = np.dtype(frame_dtype).newbyteorder("<")
    flat = np.ascontiguousarray(np.concatenate(frames) if frames else np.zeros((0, column.dim)), dtype=dtype)
    byte_offsets = np.zeros(len(frames) + 1, dtype=np.int64)
    np.cumsum([f.shape[0] * column.frame_bytes(frame_dtype) for f in frames], out=byte_offsets[1:])
    return pa.LargeBinaryArray.from_buffers(
        arrow_type, len(frames), [None, pa.py_buffer(byte_offsets), pa.py_buffer(flat)]
    )


def _numpy_values(column: Column, array: pa.Array, frame_dtype: str) -> list:
    if column.role in (STRING, INT):
        return array.to_pylist()
    if column.role == FLOAT:
        return list(array.to_numpy(zero_copy_only=False))
    if column.role == VECTOR:
        return list(array.flatten().to_numpy(zero_copy_only=False).reshape(-1, column.dim))
    if column.role == FRAMES and not pa.types.is_list(array.type):
        return _frames_from_binary(column, array, frame_dtype)
    offsets = array.offsets.to_numpy()
    if column.role == FRAMES:  # the legacy encoding: one fixed-size binary value per frame
        inner = array.flatten()
        width = inner.type.byte_width
        flat = np.frombuffer(
            inner.buffers()[1],
            dtype=np.dtype(frame_dtype).newbyteorder("<"),
            count=len(inner) * column.dim,
            offset=inner.offset * width,
        ).reshape(-1, column.dim)
    else:
        flat = array.flatten().to_numpy(zero_copy_only=False)
    return [flat[offsets[i] : offsets[i + 1]] for i in range(len(array))]


def _frames_from_binary(column: Column, array: pa.Array, frame_dtype: str) -> list:
    """One `[n, dim]` array per video from a (large_)binary column of whole frames: views
    of the column's one data buffer, decoded once rather than per video."""
    dtype = np.dtype(frame_dtype).newbyteorder("<")
    frame_bytes = column.frame_bytes(frame_dtype)
    offset_type = np.dtype(np.int64 if pa.types.is_large_binary(array.type) else np.int32)
    byte_offsets = np.frombuffer(
        array.buffers()[1], offset_type, count=len(array) + 1, offset=array.offset * offset_type.itemsize
    )
    start, end = int(byte_offsets[0]), int(byte_offsets[-1])
    if np.any((byte_offsets - start) % frame_bytes):
        raise ValueError(f"column {column.name!r} holds a value that is not whole {frame_bytes}-byte frames")
    frame_offsets = (byte_offsets - start) // frame_bytes
    if end == start:
        flat = np.zeros((0, column.dim), dtype)
    else:
        flat = np.frombuffer(array.buffers()[2], dtype, count=(end - start) // dtype.itemsize, offset=start)
    flat = flat.reshape(-1, column.dim)
    return [flat[frame_offsets[i] : frame_offsets[i + 1]] for i in range(len(array))]


def layout_from_arrow_schema(schema: pa.Schema) -> DatasetLayout:
    metadata = schema.metadata or {}
    if ARROW_METADATA_KEY not in metadata:
        raise ValueError("this Parquet file was not written by fewframes (no layout metadata)")
    return DatasetLayout.from_dict(json.loads(metadata[ARROW_METADATA_KEY]))
