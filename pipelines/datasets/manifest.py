"""The dataset manifest: what went in, what came out, and what failed.

Statistics are computed by combiners inside the pipeline, so the manifest is written
by the job itself on any runner (no launcher-side gathering).
"""

from __future__ import annotations

import datetime
import json

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems

from pipelines import runner
from pipelines.records.parse import DUPLICATE_LABELS_KEY, RATED_SEGMENTS_READ_KEY
from schemas import features as F

FRAME_HISTOGRAM_EDGES = [0, 30, 60, 90, 120, 150, 180, 210, 240, 270, 300, 301]


def code_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("fewframes")
    except metadata.PackageNotFoundError:
        return "unknown"


class DatasetStatsFn(beam.CombineFn):
    """Counts, frames-per-video histogram and label frequencies of the written rows.

    `rated_segments_read` counts the rated segments in the raw records of those rows
    (rows from a dataset, which hold no raw count, read what they hold), so that a row
    that lost its ratings shows as read != written; `duplicate_labels_removed` counts
    the repeated labels the parser dropped.
    """

    def __init__(self, num_classes: int):
        self._num_classes = num_classes

    def create_accumulator(self):
        return {
            "videos": 0,
            "videos_with_labels": 0,
            "frames_in_records": 0,
            "frames_kept": 0,
            "frame_histogram": np.zeros(len(FRAME_HISTOGRAM_EDGES) - 1, np.int64),
            "label_counts": np.zeros(self._num_classes, np.int64),
            "rated_segments": 0,
            "rated_segments_read": 0,
            "duplicate_labels_removed": 0,
        }

    def add_input(self, acc, row):
        acc["videos"] += 1
        labels = row[F.LABELS]
        if len(labels):
            acc["videos_with_labels"] += 1
            np.add.at(acc["label_counts"], labels, 1)
        if F.NUM_FRAMES in row:
            n = row[F.NUM_FRAMES]
            acc["frames_in_records"] += n
            acc["frames_kept"] += len(row[F.FRAME_INDEX])
            acc["frame_histogram"][np.searchsorted(FRAME_HISTOGRAM_EDGES, min(n, 300), side="right") - 1] += 1
        written = len(row[F.SEGMENT_LABELS]) if F.SEGMENT_LABELS in row else 0
        acc["rated_segments"] += written
        acc["rated_segments_read"] += row.get(RATED_SEGMENTS_READ_KEY, written)
        acc["duplicate_labels_removed"] += row.get(DUPLICATE_LABELS_KEY, 0)
        return acc

    def merge_accumulators(self, accumulators):
        accumulators = list(accumulators)
        merged = accumulators[0]
        for acc in accumulators[1:]:
            for key, value in acc.items():
                merged[key] = merged[key] + value
        return merged

    def extract_output(self, acc):
        return {
            "videos": acc["videos"],
            "videos_with_labels": acc["videos_with_labels"],
            "frames_in_records": int(acc["frames_in_records"]),
            "frames_kept": int(acc["frames_kept"]),
            "frames_per_video_histogram": {
                "bin_edges": FRAME_HISTOGRAM_EDGES,
                "counts": acc["frame_histogram"].tolist(),
            },
            "label_frequencies": {
                str(label): int(count) for label, count in enumerate(acc["label_counts"]) if count
            },
            "rated_segments": acc["rated_segments"],
            "rated_segments_read": acc["rated_segments_read"],
            "duplicate_labels_removed": acc["duplicate_labels_removed"],
        }


class CountByKeyFn(beam.CombineFn):
    """Counts of a key function's values, as a dict."""

    def __init__(self, key):
        self._key = key

    def create_accumulator(self):
        return {}

    def add_input(self, acc, element):
        key = self._key(element)
        acc[key] = acc.get(key, 0) + 1
        return acc

    def merge_accumulators(self, accumulators):
        merged = {}
        for acc in accumulators:
            for key, count in acc.items():
                merged[key] = merged.get(key, 0) + count
        return merged

    def extract_output(self, acc):
        return dict(sorted(acc.items()))


def total_size(paths) -> int:
    paths = sorted(set(paths))
    if not paths:
        return 0
    return sum(m.size_in_bytes for result in FileSystems.match(paths) for m in result.metadata_list)


def build_manifest(
    base: dict, stats: dict, records_read: int, failures_by_stage: dict, duplicates: dict, outputs: dict
) -> dict:
    """The manifest: `base`, the record accounting and `stats`. It balances when records
    read = written + failed and every rated segment read is written; with
    `max_failed_fraction` in `base` it also says whether too many records failed
    (`runner.failed_share`)."""
    records_failed = sum(failures_by_stage.values())
    written = stats["videos"]
    manifest = dict(base)
    manifest.update(
        {
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "records_read": records_read,
            "records_written": written,
            "records_failed": records_failed,
            "balanced": records_read == written + records_failed
            and stats.get("rated_segments_read", 0) == stats.get("rated_segments", 0),
            "failures_by_stage": failures_by_stage,
            "duplicate_ids": duplicates,
            "outputs": {
                fmt: {"files": sorted(files), "bytes": total_size(files)} for fmt, files in outputs.items()
            },
        }
    )
    manifest["bytes_out"] = sum(o["bytes"] for o in manifest["outputs"].values())
    manifest.update(stats)
    if "max_failed_fraction" in base:
        manifest.update(runner.failed_share(records_read, records_failed, base["max_failed_fraction"]))
    return manifest


def write_last(
    pipeline,
    path: str,
    base: dict,
    *,
    stats,
    read_count,
    all_failures,
    written: dict,
    completed: list,
    duplicates: dict,
    duplicate_count=None,
    late=None,
) -> None:
    """Add the step that writes the manifest to `path` once every other output is written.

    `stats` (`DatasetStatsFn`) and `read_count` are one-element PCollections,
    `all_failures` the dead letters, `written` format -> file names, `completed` the
    other writes to wait for; `duplicates` the duplicate check's flags, with its count
    from `duplicate_count` (0 without); `late` maps manifest keys to one-element
    PCollections whose values the job computes (they replace `base`'s). A manifest
    therefore means a complete dataset, and a run whose records do not balance fails after writing it.
    """
    by_stage = all_failures | "CountFailures" >> beam.CombineGlobally(
        CountByKeyFn(lambda record: record["stage"])
    )
    side = {
        "stats": beam.pvalue.AsSingleton(stats),
        "read_count": beam.pvalue.AsSingleton(read_count),
        "failures_by_stage": beam.pvalue.AsSingleton(by_stage),
        "completed": beam.pvalue.AsList(completed | "AllOtherOutputs" >> beam.Flatten()),
    }
    if duplicate_count is not None:
        side["duplicate_count"] = beam.pvalue.AsSingleton(duplicate_count)
    late = late or {}
    late_side = {f"late_{i}": beam.pvalue.AsSingleton(value) for i, value in enumerate(late.values())}

    def write(_, stats, read_count, failures_by_stage, completed, duplicate_count=0, **outputs):
        del completed  # a side input only so that this step runs after every other write
        late_values = {key: outputs.pop(f"late_{i}") for i, key in enumerate(late)}
        result = build_manifest(
            {**base, **late_values},
            stats,
            read_count,
            failures_by_stage,
            {"count": duplicate_count, **duplicates},
            outputs,
        )
        if not result["balanced"]:
            # Recorded, not raised: the command that launched the job reads the manifest and
            # exits 1 with this line (runner.exit_code) instead of a worker's traceback.
            result["unbalanced_reason"] = (
                f"record accounting does not balance: read {result['records_read']}, written "
                f"{result['records_written']}, failed {result['records_failed']}; rated segments read "
                f"{result.get('rated_segments_read', 0)}, written {result.get('rated_segments', 0)}"
                + (
                    " (ratings in records after the first of their shard: preprocess with --segments keep)"
                    if result.get("rated_segments_read", 0) > result.get("rated_segments", 0)
                    and not result.get("schema", {}).get("segments")
                    else ""
                )
            )
        write_json(path, result)
        return result

    file_lists = {fmt: beam.pvalue.AsList(files) for fmt, files in written.items()}
    (
        pipeline
        | "ManifestTrigger" >> beam.Create([None])
        | "WriteManifest" >> beam.Map(write, **side, **late_side, **file_lists)
    )


def accounting_lines(summary: dict) -> list[str]:
    """The records and bytes lines of a dataset job's summary, from its manifest."""
    failed_by = ", ".join(f"{k} {v}" for k, v in summary["failures_by_stage"].items()) or "none"
    segments_read, segments_written = summary.get("rated_segments_read", 0), summary.get("rated_segments", 0)
    segments = (
        f"; rated segments: read {segments_read}, written {segments_written}"
        if segments_read or segments_written
        else ""
    )
    return [
        f"  records: read {summary['records_read']}, written {summary['records_written']}, "
        f"failed {summary['records_failed']} ({failed_by}){segments}; balanced: {summary['balanced']}",
        f"  bytes: in {summary['bytes_in']:,}, out {summary['bytes_out']:,}",
    ]


def output_lines(summary: dict) -> list[str]:
    """One line per output format of a dataset job's manifest: files and bytes."""
    return [
        f"  {fmt}: {len(info['files'])} files, {info['bytes']:,} bytes"
        for fmt, info in summary["outputs"].items()
    ]


def write_json(path: str, payload: dict) -> None:
    with FileSystems.create(path, mime_type="application/json") as stream:
        stream.write(json.dumps(payload, indent=2, sort_keys=True).encode())


def read_json(path: str) -> dict:
    with FileSystems.open(path) as stream:
        return json.loads(stream.read())
