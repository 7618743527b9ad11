from __future__ import annotations

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems

from pipelines.records import failures, parse, read
from pipelines.records.coders import VideoRow
from pipelines.records.parse import INDEX_KEY, SOURCE_KEY
from pipelines.scoring.plan import RAW, VIDEO_VECTORS, WHOLE_VIDEOS, ScoringPlan
from schemas import features as F
from schemas.preprocessed import PARQUET, DatasetLayout


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
        from pipelines.records.tfrecord_io import Damage, iter_frames

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
            parse_and_validate = parse.ParseAndValidate(plan.parse_config, self._batch)
            parsed = records.records | "ParseAndValidate" >> parse_and_validate
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
