"""Reading raw shards (local or gs://) record by record, damage included."""

from __future__ import annotations

import logging
import time

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from pipelines.records import failures
from pipelines.records.tfrecord_io import Damage, iter_frames

_LOG = logging.getLogger("pipelines.records.read")  # not "__main__" under `python -m`
METRICS_NAMESPACE = "read"
# Distributions of wall-clock milliseconds; `reading_span` merges them.
OPENED_AT_MS = "shard_opened_at_ms"
FINISHED_AT_MS = "shard_finished_at_ms"


class ReadShardRecords(beam.DoFn):
    """Yields `(source, index, offset, data)` per whole record; damage goes to `failed`."""

    def __init__(self):
        self._records = Metrics.counter(METRICS_NAMESPACE, "records")
        self._damaged = Metrics.counter(METRICS_NAMESPACE, "damaged_frames")
        self._shards = Metrics.counter(METRICS_NAMESPACE, "shards")
        self._bytes = Metrics.counter(METRICS_NAMESPACE, "bytes")
        # Wall-clock milliseconds; their min and max over all workers give the span in
        # which shards were read, which leaves out process and worker start-up.
        self._opened_at = Metrics.distribution(METRICS_NAMESPACE, OPENED_AT_MS)
        self._finished_at = Metrics.distribution(METRICS_NAMESPACE, FINISHED_AT_MS)

    def process(self, readable_file: fileio.ReadableFile):
        path = readable_file.metadata.path
        records = damaged = 0
        self._opened_at.update(int(time.time() * 1000))
        with readable_file.open() as stream:
            for item in iter_frames(stream):
                if isinstance(item, Damage):
                    damaged += 1
                    detail = "; the rest of the shard is unreadable" if item.ends_shard else ""
                    yield beam.pvalue.TaggedOutput(
                        failures.FAILED,
                        failures.failure(
                            path, item.index, item.offset, failures.STAGE_READ, item.reason + detail
                        ),
                    )
                else:
                    records += 1
                    yield path, item.index, item.offset, item.data
        self._records.inc(records)
        self._damaged.inc(damaged)
        self._shards.inc()
        self._bytes.inc(readable_file.metadata.size_in_bytes)
        self._finished_at.update(int(time.time() * 1000))
        _LOG.info("finished shard %s: %d records, %d damaged", path, records, damaged)


class ReadRawRecords(beam.PTransform):
    """Every record of the shards matching `patterns`, spread over workers by file.

    Outputs a tagged result: `records` (source, index, offset, bytes) and `failed`.
    """

    def __init__(self, patterns: list[str]):
        super().__init__()
        self._patterns = patterns

    def expand(self, pipeline):
        return (
            pipeline
            | "Patterns" >> beam.Create(self._patterns)
            | "MatchFiles" >> fileio.MatchAll()
            | "SpreadFiles" >> beam.Reshuffle()
            | "OpenFiles" >> fileio.ReadMatches()
            | "ReadRecords" >> beam.ParDo(ReadShardRecords()).with_outputs(failures.FAILED, main="records")
        )


def match_inputs(patterns: list[str]) -> list:
    """File metadata for every pattern; raises ValueError naming a pattern that matches nothing."""
    results = FileSystems.match(patterns)
    files = []
    for pattern, result in zip(patterns, results, strict=True):
        if not result.metadata_list:
            raise ValueError(f"no input files match {pattern!r}")
        files.extend(result.metadata_list)
    return sorted(files, key=lambda m: m.path)


def first_record(paths: list[str], max_attempts: int = 100) -> bytes:
    """The first whole record of the inputs (for detecting their kind before the run)."""
    attempts = 0
    for path in paths:
        with FileSystems.open(path) as stream:
            for item in iter_frames(stream):
                if not isinstance(item, Damage):
                    return item.data
                attempts += 1
                if attempts >= max_attempts:
                    break
    raise ValueError("no readable record found in the input files")


def leading_records(paths: list[str], count: int, max_attempts: int = 100) -> list[bytes]:
    """Up to `count` whole records from the start of the inputs, in file order (for checks
    before the run); skips damage, at most `max_attempts` damaged frames in all."""
    records, attempts = [], 0
    for path in paths:
        with FileSystems.open(path) as stream:
            for item in iter_frames(stream):
                if not isinstance(item, Damage):
                    records.append(item.data)
                    if len(records) >= count:
                        return records
                    continue
                attempts += 1
                if attempts >= max_attempts:
                    return records
    return records


def first_record_of_each(paths: list[str], max_attempts: int = 100) -> list[bytes]:
    """The first whole record of every input file that has one (one read per file: what
    differs by shard, such as whether records carry rated segments, is seen in all)."""
    firsts = []
    for path in paths:
        with FileSystems.open(path) as stream:
            for attempt, item in enumerate(iter_frames(stream)):
                if not isinstance(item, Damage):
                    firsts.append(item.data)
                    break
                if attempt + 1 >= max_attempts:
                    break
    return firsts


def reading_span(metrics: dict) -> dict | None:
    """Shards read and the seconds from the first shard opened to the last one read,
    from a job's `result.metrics().query()`; None unless the runner reported both
    distributions (a job with no shards, or a runner without distribution metrics)."""
    opened, finished = [], []
    for distribution in metrics.get("distributions", []):
        name = distribution.key.metric
        if name.namespace == METRICS_NAMESPACE and name.name == OPENED_AT_MS:
            opened.append(distribution.committed)
        elif name.namespace == METRICS_NAMESPACE and name.name == FINISHED_AT_MS:
            finished.append(distribution.committed)
    opened = [d for d in opened if d is not None and d.count]
    finished = [d for d in finished if d is not None and d.count]
    if not opened or not finished:
        return None
    first = min(d.min for d in opened)
    last = max(d.max for d in finished)
    return {"shards": sum(d.count for d in finished), "seconds": max(last - first, 0) / 1000}
