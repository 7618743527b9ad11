"""Preprocess raw YouTube-8M shards into compact Parquet / TFRecord datasets.

    python -m pipelines.preprocess --input 'gs://bucket/train*.tfrecord' --output gs://bucket/ds \
        --format parquet,tfrecord --view every_n:10 [--teacher-view] [Beam pipeline options]

Steps: read shards (damage-tolerant framing) -> parse and validate in batches with TF
ops -> cap at 300 frames, take the student view (and the full teacher view when
asked), store frames as float16/float32/uint8 -> detect duplicate ids -> write shards,
dead letters under `errors/`, and `manifest.json`. Every record read is either
written or recorded as a failure; the manifest says so (`balanced`).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions, SetupOptions

from pipelines import runner
from pipelines.datasets import manifest, ownership, transform, write
from pipelines.records import failures, parse, read
from pipelines.records.coders import VideoRow
from pipelines.records.parse import INDEX_KEY, SOURCE_KEY, ParseConfig
from pipelines.runner import UsageError
from schemas import features as F
from schemas import raw
from schemas import zscore as zscore_schema
from schemas.preprocessed import (
    DUPLICATES_NAME,
    ERRORS_DIR,
    FAILURES_NAME,
    FORMATS,
    MANIFEST_NAME,
    TRANSFORM_DIR,
    DatasetLayout,
)
from schemas.quantization import FRAME_DTYPES
from schemas.views import View

_LOG = logging.getLogger("pipelines.preprocess")  # not "__main__" under `python -m`
TFT_TEMP_PREFIX = "fewframes-tft-"  # tensorflow-transform's scratch folder without --temp_location


def _occurrences_if_duplicate(id_and_positions):
    video_id, positions = id_and_positions
    positions = sorted(positions)
    if len(positions) > 1:
        yield video_id, positions


class DetectDuplicateIds(beam.PTransform):
    """`(id, [(source, index), ...])` for every id seen more than once (file order)."""

    def expand(self, rows):
        return (
            rows
            | "KeyByIds" >> beam.Map(lambda row: (row[F.ID], (row[SOURCE_KEY], row[INDEX_KEY])))
            | "GroupIds" >> beam.GroupByKey()
            | "KeepRepeated" >> beam.FlatMap(_occurrences_if_duplicate)
        )


class _DropLaterDuplicates(beam.DoFn):
    def process(self, row, dropped):
        position = (row[SOURCE_KEY], row[INDEX_KEY])
        if position in dropped:
            kept_source, kept_index = dropped[position]
            yield beam.pvalue.TaggedOutput(
                failures.FAILED,
                failures.failure(
                    row[SOURCE_KEY],
                    row[INDEX_KEY],
                    -1,
                    failures.STAGE_DUPLICATE,
                    f"duplicate id {row[F.ID]!r}; kept the first at {kept_source} record {kept_index}",
                    row[F.ID],
                ),
            )
        else:
            yield row


def _duplicate_report(id_and_positions, dropping: bool) -> dict:
    video_id, positions = id_and_positions
    return {
        "id": video_id,
        "occurrences": [{"source": s, "record_index": i} for s, i in positions],
        "kept": {"source": positions[0][0], "record_index": positions[0][1]} if dropping else "all",
    }


def _later_positions(id_and_positions):
    _, positions = id_and_positions
    for position in positions[1:]:
        yield position, positions[0]


# ----- options ------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fewframes preprocess",
        description="Preprocess raw YouTube-8M shards into compact Parquet/TFRecord datasets. "
        "Unrecognised flags are Beam pipeline options (--runner, --direct_num_workers, ...).",
    )
    parser.add_argument(
        "--input",
        required=True,
        action="append",
        help="glob of raw shards, local or gs:// (repeat or comma-separate for several)",
    )
    parser.add_argument("--output", required=True, help="output directory, local or gs://")
    parser.add_argument("--format", default="parquet", help="comma-separated: parquet,tfrecord")
    parser.add_argument("--view", default="every_n:10", help="student view: every_n:N | uniform:K | all")
    parser.add_argument("--frame-dtype", default="float16", choices=FRAME_DTYPES)
    parser.add_argument("--teacher-view", action="store_true", help="also keep every frame (up to 300)")
    parser.add_argument(
        "--num-classes", type=int, default=F.NUM_CLASSES_V2, help="3862 for 2018/2019 data, 4716 for 2017"
    )
    parser.add_argument("--partition", default="", help="train, validate or test (recorded in the manifest)")
    parser.add_argument(
        "--segments",
        choices=("auto", "keep"),
        default="auto",
        help="rated 2019 segment columns: auto (when the first record of any shard has ratings) or "
        "keep (always; for shards whose ratings start after their first record)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a dataset already at --output")
    parser.add_argument(
        "--drop-duplicate-ids",
        action="store_true",
        help="keep only the first record (in file order) of a repeated id",
    )
    parser.add_argument(
        "--no-duplicate-check",
        action="store_true",
        help="skip the id grouping that detects repeated ids (for inputs known to have unique ids)",
    )
    write.add_output_arguments(parser)
    runner.add_max_failed_fraction_argument(parser)
    parser.add_argument("--parse-batch-size", type=int, default=64)
    normalization = parser.add_mutually_exclusive_group()
    normalization.add_argument(
        "--zscore",
        action="store_true",
        help="analyse per-dimension z-score statistics of l2-normalised frames with tensorflow-transform "
        "(training partition), saved under OUTPUT/transform",
    )
    normalization.add_argument(
        "--transform-from",
        metavar="DATASET_DIR",
        help="reuse the z-score analysis of an earlier (training) dataset instead of computing one",
    )
    return parser


def parse_args(argv):
    parser = build_parser()
    args, beam_args = runner.parse_job_args(parser, argv)
    args.input = [p.strip() for group in args.input for p in group.split(",") if p.strip()]
    args.format = [f.strip() for f in args.format.split(",") if f.strip()]
    unknown = sorted(set(args.format) - set(FORMATS))
    if not args.format or unknown:
        parser.error(f"--format takes parquet and/or tfrecord, got {','.join(args.format) or 'nothing'}")
    try:
        args.view = View.parse(args.view)
    except ValueError as error:
        parser.error(str(error))
    if not args.view.is_deterministic:
        parser.error(f"--view {args.view} is random; a dataset stores a deterministic view")
    if args.no_duplicate_check and args.drop_duplicate_ids:
        parser.error("--drop-duplicate-ids needs the duplicate check; drop --no-duplicate-check")
    runner.check_max_failed_fraction(parser, args.max_failed_fraction)
    if args.num_classes < 1 or args.parse_batch_size < 1 or args.num_shards < 0:
        parser.error("--num-classes and --parse-batch-size must be positive, --num-shards not negative")
    return args, beam_args


def _normalization_entry(args, parameters_sha256: str | None = None) -> dict:
    """The manifest's `normalization`; paths in it are relative to the dataset. An analysis
    run's `parameters_sha256` is filled in by the pipeline once it has written the file."""
    zscore = "analyzed" if args.zscore else ("reused" if args.transform_from else "none")
    entry = {
        "chain": "dequantize -> concat rgb||audio -> l2 per frame"
        + (" -> z-score" if zscore != "none" else ""),
        "zscore": zscore,
        "transform_dir": TRANSFORM_DIR if zscore != "none" else None,
        "transform_from": args.transform_from,
    }
    if zscore != "none":
        entry["parameters"] = f"{TRANSFORM_DIR}/{zscore_schema.PARAMETERS_NAME}"
        entry["parameters_sha256"] = parameters_sha256
    return entry


def _transform_source(source_dataset: str, output: str) -> tuple[str, bytes]:
    """The analysis directory `--transform-from` names and the bytes of its z-score
    parameters file, checked before anything is deleted.

    A source written before datasets stored `zscore.npz` gets one from the constants of
    its SavedModel's graph (read, not run)."""
    if source_dataset.rstrip("/") == output.rstrip("/"):
        raise UsageError("--transform-from cannot name the output directory it would replace")
    dataset = source_dataset.rstrip("/")
    source = f"{dataset}/{TRANSFORM_DIR}"
    saved_model = f"{source}/{transform.TRANSFORM_FN_DIR}/saved_model.pb"
    if not FileSystems.exists(saved_model):
        raise UsageError(f"--transform-from {source_dataset}: no analysis found ({saved_model} is missing)")
    try:
        normalization = manifest.read_json(f"{dataset}/{MANIFEST_NAME}").get("normalization") or {}
    except (OSError, ValueError) as error:
        raise UsageError(
            f"--transform-from {source_dataset}: cannot read its {MANIFEST_NAME} ({error})"
        ) from None
    try:
        if "parameters" in normalization:
            path = zscore_schema.dataset_path(
                dataset, normalization["parameters"], "normalization.parameters"
            )
            with FileSystems.open(path) as stream:
                data = stream.read()
            if zscore_schema.sha256(data) != normalization.get("parameters_sha256"):
                raise UsageError(
                    f"--transform-from {source_dataset}: {path} does not match its manifest's sha256"
                )
            zscore_schema.decode(data, path)
        else:
            with FileSystems.open(saved_model) as stream:
                mean, scale = zscore_schema.parameters_from_saved_model(stream.read(), saved_model)
            data = zscore_schema.encode(mean, scale)
    except (OSError, zscore_schema.ZScoreError) as error:
        raise UsageError(f"--transform-from {source_dataset}: {error}") from None
    return source, data


def _detect_layout(args, input_paths: list[str]) -> DatasetLayout:
    """The dataset's layout from the inputs: their kind from the first record; segment
    columns with `--segments keep`, or when the first record of any shard carries rated
    segments (2018 and 2019 shards may be mixed; reading every record to decide would read
    the input twice). A record whose ratings the layout still cannot keep shows in the
    manifest as rated segments read != written (unbalanced, the error names `--segments
    keep`), never silently."""
    first = read.first_record(input_paths)
    kind = raw.detect_kind(first)
    if kind == F.VIDEO_LEVEL:
        return DatasetLayout(F.VIDEO_LEVEL, frame_dtype=args.frame_dtype)
    return DatasetLayout(
        F.FRAME_LEVEL,
        frame_dtype=args.frame_dtype,
        teacher_view=args.teacher_view,
        segments=args.segments == "keep"
        or any(raw.has_segments(record) for record in read.first_record_of_each(input_paths)),
        view=str(args.view),
    )


# ----- the pipeline -------------------------------------------------------------------
def build_pipeline(pipeline, args, layout: DatasetLayout, input_files: list) -> None:
    output = args.output.rstrip("/")
    config = ParseConfig(
        kind=layout.kind,
        num_classes=args.num_classes,
        view=args.view if layout.kind == F.FRAME_LEVEL else None,
        frame_dtype=args.frame_dtype,
        teacher_view=layout.teacher_view,
        segments=layout.segments,
    )
    raw_records = pipeline | "ReadShards" >> read.ReadRawRecords(args.input)
    parsed = raw_records.records | "ParseAndValidate" >> parse.ParseAndValidate(config, args.parse_batch_size)
    rows = parsed.rows

    if args.no_duplicate_check:
        duplicates = pipeline | "NoDuplicateCheck" >> beam.Create([])
    else:
        duplicates = rows | "DetectDuplicateIds" >> DetectDuplicateIds()
    stage_failures = [raw_records[failures.FAILED], parsed[failures.FAILED]]
    if args.drop_duplicate_ids:
        later = duplicates | "LaterOccurrences" >> beam.FlatMap(_later_positions)
        kept = rows | "DropDuplicateIds" >> beam.ParDo(
            _DropLaterDuplicates(), dropped=beam.pvalue.AsDict(later)
        ).with_output_types(VideoRow).with_outputs(failures.FAILED, main="rows")
        rows = kept.rows
        stage_failures.append(kept[failures.FAILED])
    all_failures = stage_failures | "AllFailures" >> beam.Flatten()

    written = write.write_formats(rows, output, layout, args)
    # Everything the manifest must wait for: it is written last, so a manifest means a
    # complete dataset (a job that fails earlier leaves none).
    completed = [
        all_failures | "WriteFailures" >> failures.WriteJsonLines(f"{output}/{ERRORS_DIR}/{FAILURES_NAME}")
    ]
    completed.append(
        duplicates
        | "DescribeDuplicates" >> beam.Map(_duplicate_report, dropping=args.drop_duplicate_ids)
        | "WriteDuplicates" >> failures.WriteJsonLines(f"{output}/{ERRORS_DIR}/{DUPLICATES_NAME}")
    )
    late = {}
    if args.zscore:
        parameters_sha256 = rows | "AnalyzeNormalization" >> transform.AnalyzeFrameStatistics(
            f"{output}/{TRANSFORM_DIR}", args.transform_temp_dir, layout.teacher_view
        )
        completed.append(parameters_sha256)
        late["normalization"] = parameters_sha256 | "NormalizationEntry" >> beam.Map(
            lambda sha, entry: {**entry, "parameters_sha256": sha}, entry=_normalization_entry(args)
        )
    stats = rows | "SummarizeDataset" >> beam.CombineGlobally(manifest.DatasetStatsFn(args.num_classes))
    # Counted on each side, not on their Flatten: flattening would carry every raw
    # record's bytes across a stage boundary just to count it.
    records_count = raw_records.records | "CountWholeRecords" >> beam.combiners.Count.Globally()
    damaged_count = raw_records[failures.FAILED] | "CountDamagedFrames" >> beam.combiners.Count.Globally()
    read_count = (
        (records_count, damaged_count)
        | "RecordsRead" >> beam.Flatten()
        | "SumRead" >> beam.CombineGlobally(sum)
    )
    duplicate_count = duplicates | "CountDuplicateIds" >> beam.combiners.Count.Globally()
    base = {
        "fewframes_version": manifest.code_version(),
        "schema": layout.to_dict(),
        "columns": layout.column_names,
        "kind": layout.kind,
        "view": layout.view,
        "frame_dtype": layout.frame_dtype,
        "teacher_view": layout.teacher_view,
        "num_classes": args.num_classes,
        "partition": args.partition,
        "max_failed_fraction": args.max_failed_fraction,
        "input_patterns": args.input,
        "input_files": len(input_files),
        "bytes_in": sum(m.size_in_bytes for m in input_files),
        "formats": args.format,
        "normalization": _normalization_entry(args, getattr(args, "parameters_sha256", None)),
        "options": {
            **write.output_options(args),
            "drop_duplicate_ids": args.drop_duplicate_ids,
            "duplicate_check": not args.no_duplicate_check,
        },
    }
    manifest.write_last(
        pipeline,
        f"{output}/{MANIFEST_NAME}",
        base,
        stats=stats,
        read_count=read_count,
        all_failures=all_failures,
        written=written,
        completed=completed,
        duplicates={"dropped": args.drop_duplicate_ids, "checked": not args.no_duplicate_check},
        duplicate_count=duplicate_count,
        late=late,
    )


def run(argv=None, test_pipeline=None) -> dict:
    """Run the job; returns the manifest it wrote. Raises UsageError on bad arguments."""
    args, beam_args = parse_args(argv)
    options = PipelineOptions(beam_args)
    options.view_as(SetupOptions).save_main_session = False
    try:
        input_files = read.match_inputs(args.input)
        layout = _detect_layout(args, [m.path for m in input_files])
    except (ValueError, OSError) as error:
        raise UsageError(str(error)) from None
    transform_source = _transform_source(args.transform_from, args.output) if args.transform_from else None
    write.prepare_output(args.output, args.overwrite)
    if transform_source:
        source, parameters = transform_source
        FileSystems.copy([source + "/"], [f"{args.output.rstrip('/')}/{TRANSFORM_DIR}/"])
        with FileSystems.create(
            f"{args.output.rstrip('/')}/{TRANSFORM_DIR}/{zscore_schema.PARAMETERS_NAME}"
        ) as stream:
            stream.write(parameters)
        args.parameters_sha256 = zscore_schema.sha256(parameters)
    args.transform_temp_dir = None
    if args.zscore:
        temp_location = options.view_as(GoogleCloudOptions).temp_location
        if not temp_location:  # ours to remove when the job ends, however it ends
            local_temp = tempfile.mkdtemp(prefix=TFT_TEMP_PREFIX)
            try:
                args.transform_temp_dir = local_temp
                return _run_pipeline(args, options, layout, input_files, test_pipeline)
            finally:
                shutil.rmtree(local_temp, ignore_errors=True)
        args.transform_temp_dir = temp_location
    return _run_pipeline(args, options, layout, input_files, test_pipeline)


def _run_pipeline(args, options, layout, input_files, test_pipeline) -> dict:
    _LOG.info(
        "preprocessing %d %s-level shards (%s) -> %s as %s, view %s, frames %s%s",
        len(input_files),
        layout.kind,
        ",".join(args.input),
        args.output,
        ",".join(args.format),
        layout.view or "n/a",
        layout.frame_dtype,
        ", with teacher view" if layout.teacher_view else "",
    )
    pipeline = test_pipeline or runner.create_pipeline(options)
    build_pipeline(pipeline, args, layout, input_files)
    result = pipeline.run()
    result.wait_until_finish()
    ownership.commit(args.output, write.DATASET_CLAIMS)
    summary = manifest.read_json(f"{args.output.rstrip('/')}/{MANIFEST_NAME}")
    summary["counters"], reading = _metrics(result)
    if reading:
        summary["reading"] = reading
    return summary


def _metrics(result) -> tuple[dict | None, dict | None]:
    """The job's counters by "namespace/name" (None where the runner reports no metrics,
    as the DaskRunner), and `read.reading_span` of its metrics."""
    try:
        metrics = result.metrics().query()
    except Exception:  # some runners report no metrics; the manifest has the counts
        return None, None
    counters = {f"{c.key.metric.namespace}/{c.key.metric.name}": c.committed for c in metrics["counters"]}
    return counters, read.reading_span(metrics)


def format_summary(summary: dict, seconds: float) -> str:
    duplicates = summary["duplicate_ids"]
    if not duplicates["checked"]:
        duplicate_text = "not checked"
    else:
        duplicate_text = str(duplicates["count"]) + (
            " (later copies dropped)" if duplicates["dropped"] else ""
        )
    records, transferred = manifest.accounting_lines(summary)
    lines = [
        f"preprocessed {summary['kind']}-level data in {seconds:.1f}s",
        records,
        f"  duplicate ids: {duplicate_text}",
        transferred,
    ]
    if summary["kind"] == F.FRAME_LEVEL:
        lines.append(
            f"  frames: {summary['frames_in_records']:,} in records, {summary['frames_kept']:,} kept "
            f"by view {summary['view']} as {summary['frame_dtype']}"
        )
    lines += manifest.output_lines(summary)
    if summary["records_failed"] or summary["duplicate_ids"]["count"]:
        lines.append(f"  errors: see {ERRORS_DIR}/ in the output directory")
    if summary.get("reading"):
        reading = summary["reading"]
        rate = summary["records_read"] / reading["seconds"] if reading["seconds"] else float("inf")
        lines.append(
            f"  reading: {reading['shards']} shards in {reading['seconds']:.1f}s from the first opened to "
            f"the last read ({rate:,.0f} records/s); the rest of the run is start-up and finalisation"
        )
    counters = summary.get("counters", {})
    if counters is None:
        lines.append("  counters: metrics not reported by this runner")
    elif counters:
        lines.append("  counters: " + ", ".join(f"{k}={v}" for k, v in sorted(counters.items())))
    return "\n".join(lines)


def main(argv=None) -> int:
    return runner.job_main("fewframes preprocess", run, format_summary, argv)


if __name__ == "__main__":
    from trainer.startup import quiet_startup

    sys.exit(main(quiet_startup(sys.argv[1:])))
