"""pipelines.datasets.manifest: the dataset's statistics and record accounting, written last."""

import json

import apache_beam as beam
import numpy as np
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.datasets import manifest
from pipelines.records import failures
from pipelines.records.parse import DUPLICATE_LABELS_KEY, RATED_SEGMENTS_READ_KEY
from pipelines.runner import local_runner
from schemas import features as F


def _row(labels, num_frames=None, kept=0, segments=None, segments_read=None, duplicate_labels=0) -> dict:
    row = {F.ID: "v", F.LABELS: np.array(labels, np.int32)}
    if num_frames is not None:
        row[F.NUM_FRAMES] = num_frames
        row[F.FRAME_INDEX] = np.arange(kept, dtype=np.int16)
    if segments is not None:
        row[F.SEGMENT_LABELS] = np.arange(segments, dtype=np.int32)
    if segments_read is not None:
        row[RATED_SEGMENTS_READ_KEY] = segments_read
    if duplicate_labels:
        row[DUPLICATE_LABELS_KEY] = duplicate_labels
    return row


def _combine(fn: beam.CombineFn, parts):
    """`fn` over each part separately, the partial results merged, as workers would."""
    accumulators = []
    for part in parts:
        accumulator = fn.create_accumulator()
        for element in part:
            accumulator = fn.add_input(accumulator, element)
        accumulators.append(accumulator)
    return fn.extract_output(fn.merge_accumulators(accumulators))


def test_dataset_stats_count_videos_frames_labels_and_segments_across_workers():
    rows = [
        _row([1, 3], num_frames=10, kept=1),
        _row([], num_frames=30, kept=3),  # a test-partition video: no labels
        _row([3], num_frames=299, kept=30, segments=2, segments_read=5),  # lost 3 of its ratings
        _row([0, 3], num_frames=300, kept=30, duplicate_labels=2),
        _row([7], num_frames=900, kept=90, segments=4),  # longer than 300: the last bin
    ]
    stats = _combine(manifest.DatasetStatsFn(num_classes=8), [rows[:2], rows[2:3], rows[3:]])
    assert stats == {
        "videos": 5,
        "videos_with_labels": 4,
        "frames_in_records": 1539,
        "frames_kept": 154,
        "frames_per_video_histogram": {
            "bin_edges": manifest.FRAME_HISTOGRAM_EDGES,
            "counts": [1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 2],
        },
        "label_frequencies": {"0": 1, "1": 1, "3": 3, "7": 1},
        "rated_segments": 6,
        "rated_segments_read": 9,  # 5 read for the row that kept 2, its own 4 for the other
        "duplicate_labels_removed": 2,
    }
    json.dumps(stats)  # plain Python values: the manifest is JSON


def test_video_level_rows_count_videos_and_labels_without_frames():
    stats = _combine(manifest.DatasetStatsFn(num_classes=4), [[_row([2]), _row([2, 3])]])
    assert stats["videos"] == stats["videos_with_labels"] == 2
    assert stats["frames_in_records"] == stats["frames_kept"] == 0
    assert stats["frames_per_video_histogram"]["counts"] == [0] * 11
    assert stats["label_frequencies"] == {"2": 2, "3": 1}


def test_count_by_key_merges_partial_counts_in_key_order():
    fn = manifest.CountByKeyFn(lambda record: record["stage"])
    records = [{"stage": stage} for stage in ("validate", "read", "validate", "parse", "validate")]
    counts = _combine(fn, [records[:2], [], records[2:]])
    assert counts == {"parse": 1, "read": 1, "validate": 3} and list(counts) == ["parse", "read", "validate"]


def _stats(videos: int, rated=0, rated_read=0) -> dict:
    return {"videos": videos, "rated_segments": rated, "rated_segments_read": rated_read}


def test_a_manifest_balances_when_every_record_read_is_written_or_failed(tmp_path):
    shard = tmp_path / "part-00000-of-00001.parquet"
    shard.write_bytes(b"x" * 1234)
    built = manifest.build_manifest(
        {"kind": "frame"}, _stats(8), 10, {"read": 1, "validate": 1}, {"count": 0}, {"parquet": [str(shard)]}
    )
    assert built["records_read"] == 10 and built["records_written"] == 8 and built["records_failed"] == 2
    assert built["balanced"] and built["kind"] == "frame" and built["videos"] == 8
    assert (
        built["outputs"] == {"parquet": {"files": [str(shard)], "bytes": 1234}} and built["bytes_out"] == 1234
    )
    assert "too_many_failed" not in built  # only when the job has a --max-failed-fraction


def test_a_manifest_does_not_balance_when_a_record_or_a_rating_is_lost():
    lost_record = manifest.build_manifest({}, _stats(7), 10, {"validate": 2}, {}, {})
    assert not lost_record["balanced"]
    lost_rating = manifest.build_manifest({}, _stats(8, rated=4, rated_read=5), 10, {"read": 2}, {}, {})
    assert not lost_rating["balanced"]
    assert manifest.build_manifest({}, _stats(8, rated=5, rated_read=5), 10, {"read": 2}, {}, {})["balanced"]


def test_a_manifest_with_a_max_failed_fraction_says_whether_too_many_records_failed():
    built = manifest.build_manifest({"max_failed_fraction": 0.25}, _stats(2), 5, {"validate": 3}, {}, {})
    assert built["failed_fraction"] == 0.6 and built["too_many_failed"] and built["balanced"]
    assert built["too_many_failed_reason"].startswith("3 of 5 records failed (60.0%)")


def test_the_summary_lines_give_the_accounting_and_each_outputs_files_and_bytes():
    summary = {
        "records_read": 12,
        "records_written": 10,
        "records_failed": 2,
        "failures_by_stage": {"parse": 1, "validate": 1},
        "balanced": True,
        "bytes_in": 1234567,
        "bytes_out": 2048,
        "outputs": {"parquet": {"files": ["a", "b"], "bytes": 2048}},
    }
    assert manifest.accounting_lines(summary) == [
        "  records: read 12, written 10, failed 2 (parse 1, validate 1); balanced: True",
        "  bytes: in 1,234,567, out 2,048",
    ]
    with_segments = {**summary, "failures_by_stage": {}, "rated_segments_read": 5, "rated_segments": 4}
    assert manifest.accounting_lines(with_segments)[0] == (
        "  records: read 12, written 10, failed 2 (none); rated segments: read 5, written 4; balanced: True"
    )
    assert manifest.output_lines(summary) == ["  parquet: 2 files, 2,048 bytes"]


def _write_last(tmp_path, rows, read: int, dead_letters) -> None:
    shard = tmp_path / "ds" / "parquet" / "part-00000-of-00001.parquet"
    shard.parent.mkdir(parents=True)
    shard.write_bytes(b"rows" * 100)
    pipeline = beam.Pipeline(runner=local_runner(PipelineOptions([])), options=PipelineOptions([]))
    written = {"parquet": pipeline | "Written" >> beam.Create([str(shard)])}
    manifest.write_last(
        pipeline,
        str(tmp_path / "ds" / "manifest.json"),
        {"kind": "frame", "bytes_in": 0},
        stats=pipeline | "Rows" >> beam.Create(rows) | beam.CombineGlobally(manifest.DatasetStatsFn(8)),
        read_count=pipeline | "ReadCount" >> beam.Create([read]),
        all_failures=pipeline | "Failures" >> beam.Create(dead_letters),
        written=written,
        completed=[written["parquet"]],
        duplicates={"dropped": False, "checked": True},
        duplicate_count=pipeline | "Duplicates" >> beam.Create([1]),
        late={"bytes_in": pipeline | "BytesIn" >> beam.Create([4321])},
    )
    pipeline.run().wait_until_finish()


def test_write_last_writes_the_manifest_of_a_real_pipeline_with_its_late_values(tmp_path):
    dead = [failures.failure("a", i, 0, stage, "why") for i, stage in enumerate(("read", "validate", "read"))]
    _write_last(tmp_path, [_row([1], 10, 2), _row([2, 5], 40, 4)], 5, dead)
    written = manifest.read_json(str(tmp_path / "ds" / "manifest.json"))
    assert written["balanced"] and (written["records_read"], written["records_written"]) == (5, 2)
    assert written["records_failed"] == 3 and written["failures_by_stage"] == {"read": 2, "validate": 1}
    assert written["duplicate_ids"] == {"count": 1, "dropped": False, "checked": True}
    assert written["bytes_in"] == 4321  # the late value replaces the base's
    assert written["outputs"]["parquet"]["bytes"] == 400 and written["label_frequencies"] == {
        "1": 1,
        "2": 1,
        "5": 1,
    }


def test_a_run_whose_records_do_not_balance_writes_its_manifest_with_the_reason(tmp_path):
    # Recorded, not raised: the launching command exits 1 with this reason (runner.exit_code).
    _write_last(tmp_path, [_row([1]), _row([2])], 5, [failures.failure("a", 0, 0, "read", "why")])
    written = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert not written["balanced"] and written["records_read"] == 5
    assert written["unbalanced_reason"].startswith(
        "record accounting does not balance: read 5, written 2, failed 1"
    )


def test_total_size_sums_the_files_once_each(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * 10)
    (tmp_path / "b").write_bytes(b"x" * 5)
    assert manifest.total_size([str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "a")]) == 15
    assert manifest.total_size([]) == 0
