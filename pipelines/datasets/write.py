"""Writing dataset rows as Parquet and TFRecord shards with Beam's file sinks.

Beam's sinks write to a temporary directory and rename on success, so a failed job
leaves no partial shard under the output directory.
"""

from __future__ import annotations

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io import filebasedsink
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.iobase import Write

from pipelines.datasets import ownership, transform
from pipelines.records.coders import VideoRow, row_nbytes
from pipelines.runner import UsageError
from schemas import zscore
from schemas.preprocessed import (
    DUPLICATES_NAME,
    ERRORS_DIR,
    FAILURES_NAME,
    FORMATS,
    MANIFEST_NAME,
    PARQUET,
    SHARD_PREFIX,
    TFRECORD,
    TRANSFORM_DIR,
    DatasetLayout,
)


def prepare_output(output: str, overwrite: bool) -> None:
    """Refuse a non-empty output; with `overwrite`, delete the old dataset's files only
    (`pipelines.datasets.ownership`), then record what this run may write."""
    ownership.claim(
        output,
        overwrite,
        DATASET_CLAIMS,
        "are not part of a fewframes dataset",
        "--overwrite only replaces a dataset, so choose another --output",
        UsageError,
    )


DATASET_CLAIMS = ownership.Claims(
    "dataset",
    # The z-score step (--zscore, --transform-from) writes its parameters beside TFT's directories.
    files=(MANIFEST_NAME, f"{TRANSFORM_DIR}/{zscore.PARAMETERS_NAME}"),
    shards=(
        (f"{PARQUET}/{SHARD_PREFIX}", ".parquet"),
        (f"{TFRECORD}/{SHARD_PREFIX}", ".tfrecord"),
        (f"{TFRECORD}/{SHARD_PREFIX}", ".tfrecord.gz"),
        *((f"{ERRORS_DIR}/{name}", ".jsonl") for name in (FAILURES_NAME, DUPLICATES_NAME)),
    ),
    trees=(
        # Beam's sinks write into beam-temp-PREFIX-UUID/ beside their shards, then rename.
        *(f"{fmt}/beam-temp-{SHARD_PREFIX}-" for fmt in FORMATS),
        *(f"{ERRORS_DIR}/beam-temp-{name}-" for name in (FAILURES_NAME, DUPLICATES_NAME)),
        # TFT's WriteTransformFn (or --transform-from's copy of one) fills these.
        *(
            f"{TRANSFORM_DIR}/{d}/"
            for d in (transform.TRANSFORM_FN_DIR, "transformed_metadata", "transform_tmp")
        ),
    ),
)  # every file a dataset job (preprocess, teacher-targets) may write under its output

PARQUET_CODECS = ("zstd", "snappy", "gzip", "none")
TFRECORD_CODECS = ("none", "gzip")


def shard_prefix(output: str, fmt: str) -> str:
    return f"{output.rstrip('/')}/{fmt}/{SHARD_PREFIX}"


class ParquetTableSink(filebasedsink.FileBasedSink):
    """Arrow tables appended to Parquet shards, with per-column writer options.

    Beam's `WriteToParquetBatched` passes only the codec to `ParquetWriter`; our layouts
    need to choose dictionary encoding and statistics per column
    (`DatasetLayout.parquet_writer_options`).
    """

    def __init__(self, file_path_prefix: str, schema: pa.Schema, codec: str, num_shards: int, **options):
        super().__init__(
            file_path_prefix,
            coder=None,
            file_name_suffix=".parquet",
            num_shards=num_shards,
            mime_type="application/x-parquet",
            # Parquet compresses its pages itself; the file is not compressed again.
            compression_type=CompressionTypes.UNCOMPRESSED,
        )
        self._schema, self._codec, self._writer_options = schema, codec, options

    def open(self, temp_path):
        handle = super().open(temp_path)
        return handle, pq.ParquetWriter(handle, self._schema, compression=self._codec, **self._writer_options)

    def write_record(self, handle_and_writer, table: pa.Table) -> None:
        # BatchElements emits an empty batch when a bundle's first row alone exceeds the row
        # group size; written, it would be an empty row group.
        if table.num_rows:
            handle_and_writer[1].write_table(table)

    def close(self, handle_and_writer) -> None:
        handle, writer = handle_and_writer
        writer.close()
        handle.close()


class WriteParquet(beam.PTransform):
    """Rows as Parquet; each row group holds about `row_group_bytes` of frames."""

    def __init__(self, output: str, layout: DatasetLayout, codec: str, row_group_bytes: int, num_shards: int):
        super().__init__()
        self._output, self._layout, self._codec = output, layout, codec
        self._row_group_bytes, self._num_shards = row_group_bytes, num_shards

    def expand(self, rows):
        layout = self._layout
        return (
            rows
            | "BatchRowGroups"
            >> beam.BatchElements(
                min_batch_size=self._row_group_bytes,
                max_batch_size=self._row_group_bytes,
                element_size_fn=row_nbytes,
            ).with_output_types(list[VideoRow])
            | "ToArrowTables"
            >> beam.Map(
                lambda batch: pa.Table.from_batches([layout.to_record_batch(batch)])
            ).with_output_types(pa.Table)
            | "WriteParquetFiles"
            >> Write(
                ParquetTableSink(
                    shard_prefix(self._output, PARQUET),
                    layout.arrow_schema(),
                    self._codec,
                    self._num_shards,
                    **layout.parquet_writer_options(),
                )
            )
        )


class WriteTFRecord(beam.PTransform):
    """Rows as `tf.train.Example` records (see schemas.preprocessed for the encoding)."""

    def __init__(self, output: str, layout: DatasetLayout, compression: str, num_shards: int):
        super().__init__()
        self._output, self._layout = output, layout
        self._compression, self._num_shards = compression, num_shards

    def expand(self, rows):
        compression = CompressionTypes.GZIP if self._compression == "gzip" else CompressionTypes.UNCOMPRESSED
        suffix = ".tfrecord.gz" if self._compression == "gzip" else ".tfrecord"
        return (
            rows
            | "ToExamples" >> beam.Map(self._layout.to_tf_example)
            | "WriteTFRecordFiles"
            >> beam.io.WriteToTFRecord(
                shard_prefix(self._output, TFRECORD),
                file_name_suffix=suffix,
                num_shards=self._num_shards,
                compression_type=compression,
            )
        )


def add_output_arguments(parser) -> None:
    """The sink flags of every job that writes a dataset (`write_formats` reads them)."""
    parser.add_argument(
        "--num-shards", type=int, default=0, help="output shards per format (0: runner decides)"
    )
    parser.add_argument("--parquet-compression", default="zstd", choices=PARQUET_CODECS)
    parser.add_argument("--parquet-row-group-mb", type=float, default=64.0)
    parser.add_argument("--tfrecord-compression", default="none", choices=TFRECORD_CODECS)


def output_options(args) -> dict:
    """The sink flags as the manifest records them."""
    return {
        "parquet_compression": args.parquet_compression,
        "parquet_row_group_mb": args.parquet_row_group_mb,
        "tfrecord_compression": args.tfrecord_compression,
        "num_shards": args.num_shards,
    }


def write_formats(rows, output: str, layout: DatasetLayout, args) -> dict:
    """Rows as each of `args.format`, steps `WriteParquet` / `WriteTFRecord`; format -> file names."""
    written = {}
    if PARQUET in args.format:
        written[PARQUET] = rows | "WriteParquet" >> WriteParquet(
            output, layout, args.parquet_compression, int(args.parquet_row_group_mb * 2**20), args.num_shards
        )
    if TFRECORD in args.format:
        written[TFRECORD] = rows | "WriteTFRecord" >> WriteTFRecord(
            output, layout, args.tfrecord_compression, args.num_shards
        )
    return written
