"""The scoring job that `fewframes evaluate` and `fewframes predict` share.

Steps: read (raw shards or a preprocessed dataset; `pipelines.scoring.read`) -> validate
(bad records to the dead letter with their reason) -> RunInference with the export,
batched, loaded once per worker (`pipelines.scoring.inference`) -> one compact record per
video (top-k entries; never the C scores) -> metrics by combiners that merge partial
results across workers (`pipelines.scoring.combiners`) -> `metrics.json`,
`per_class.csv`, `videos.parquet`, `predictions.csv` (Kaggle format), `failed-*.jsonl`,
`report.html` (`pipelines.scoring.outputs`, `pipelines.scoring.report`). Rated 2019
segments, when the input has them, are scored on their own frames and give segment
mAP@100000. With `labels=False` (predict) it writes predictions and `summary.json` only.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions

from pipelines import runner
from pipelines.datasets import manifest, ownership
from pipelines.records import failures
from pipelines.runner import UsageError
from pipelines.scoring import cascade as cascade_spec
from pipelines.scoring import combiners, inference, read, routing
from pipelines.scoring import outputs as out
from pipelines.scoring import plan as scoring_plan
from trainer.metrics import DEFAULT_TOP_K

_LOG = logging.getLogger("pipelines.evaluate")  # not "__main__" under `python -m`

OUTPUT_ENTRIES = (
    out.METRICS_FILE,
    out.PER_CLASS_FILE,
    out.VIDEOS_FILE,
    out.PREDICTIONS_CSV,
    out.PREDICTIONS_JSONL,
    out.REPORT_FILE,
    out.SEGMENTS_FILE,
    "summary.json",
)
PREDICTIONS_HEADER = "VideoId,LabelConfidencePairs"


# ----- command line --------------------------------------------------------------------------------
def build_parser(prog: str = "fewframes evaluate", labels: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Score a partition with an exported model and compute YouTube-8M metrics. "
            if labels
            else "Score a partition (labels not needed) and write predictions. "
        )
        + "Unrecognised flags are Beam pipeline options (--runner, --direct_num_workers, ...).",
    )
    parser.add_argument("--model", required=True, help="a training job dir or its export, local or gs://")
    parser.add_argument(
        "--input",
        required=True,
        action="append",
        help="raw YouTube-8M shards (glob, local or gs://; repeat or comma-separate) "
        "or a preprocessed dataset dir",
    )
    parser.add_argument("--output", required=True, help="output directory, local or gs://")
    parser.add_argument("--vocabulary", help="vocabulary CSV for class names and verticals")
    parser.add_argument(
        "--top-k", type=int, default=DEFAULT_TOP_K, help="entries per video (metrics and CSV)"
    )
    parser.add_argument(
        "--jsonl", action="store_true", help="also write predictions.jsonl with names and verticals"
    )
    parser.add_argument("--only-label", help="predictions only for videos predicted as this class name")
    parser.add_argument("--only-vertical", help="predictions only for videos predicted in this vertical")
    parser.add_argument(
        "--only-min-score", type=float, default=0.5, help="score that counts as 'predicted as'"
    )
    parser.add_argument("--batch-size", type=int, default=256, help="largest inference batch")
    parser.add_argument("--parse-batch-size", type=int, default=64)
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier run's files in --output")
    runner.add_max_failed_fraction_argument(parser)
    if labels:
        parser.add_argument(
            "--segment-k", type=int, default=combiners.SEGMENT_TOP_K, help="K of segment mAP@K"
        )
        parser.add_argument("--no-report", action="store_true", help="skip report.html")
    return parser


def parse_args(argv, labels: bool = True, prog: str = "fewframes evaluate"):
    parser = build_parser(prog, labels)
    args, beam_args = runner.parse_job_args(parser, argv)
    args.input = [p.strip() for group in args.input for p in group.split(",") if p.strip()]
    if args.top_k < 1 or args.batch_size < 1 or args.parse_batch_size < 1:
        parser.error("--top-k, --batch-size and --parse-batch-size must be positive")
    runner.check_max_failed_fraction(parser, args.max_failed_fraction)
    args.labels = labels
    return args, beam_args


EVALUATION_CLAIMS = ownership.Claims(
    "evaluation",
    files=OUTPUT_ENTRIES,
    shards=((out.FAILED_PREFIX, ".jsonl"),),
    # Beam's sinks write into beam-temp-NAME-UUID/ beside their files, then rename.
    trees=tuple(f"beam-temp-{name}-" for name in (out.FAILED_PREFIX, "predictions", "videos")),
)  # every file evaluate and predict may write under their output


def prepare_output(output: str, overwrite: bool) -> None:
    """Refuse an output holding files; with `overwrite`, delete an earlier run's files only
    (`pipelines.datasets.ownership`), then record what this run may write."""
    ownership.claim(
        output, overwrite, EVALUATION_CLAIMS, "no evaluation wrote", "choose another --output", UsageError
    )


# ----- the pipeline -----------------------------------------------------------------------------
def build_pipeline(
    pipeline,
    args,
    plan: scoring_plan.ScoringPlan,
    names: out.ClassNames,
    cascade: routing.CascadePlan | None = None,
) -> None:
    """The job's graph; with `cascade`, `plan` is its read plan and the videos go through
    its stages (`pipelines.scoring.routing`)."""
    output = args.output.rstrip("/")
    videos = pipeline | "ReadVideos" >> read.ReadVideos(plan, args.parse_batch_size)
    # Fixed-size batches: adaptive batching starts at 1 video, and TF's per-call
    # overhead then dominates (measured with benchmarks/evaluate.py).
    batching = {"min_batch_size": args.batch_size, "max_batch_size": args.batch_size}
    if cascade is None:
        scored = videos["rows"] | "ScoreVideos" >> inference.ScoreVideos(plan, args.top_k, **batching)
    else:
        scored = videos["rows"] | "ScoreCascade" >> routing.ScoreCascade(cascade, args.top_k, **batching)
    records = scored["scored"]
    failed = (videos["failed"], scored["failed"]) | "AllFailures" >> beam.Flatten()
    completed = [failed | "WriteFailures" >> failures.WriteJsonLines(out.join(output, out.FAILED_PREFIX))]

    classes = None
    if args.only_label or args.only_vertical:
        classes = names.matching(args.only_label, args.only_vertical)
    shown = records | "FilterPredictions" >> beam.Filter(out.passes_filter, classes, args.only_min_score)
    completed.append(
        shown
        | "FormatCsv" >> beam.Map(out.prediction_line)
        | "WriteCsv"
        >> beam.io.WriteToText(
            out.join(output, "predictions"),
            file_name_suffix=".csv",
            shard_name_template="",
            header=PREDICTIONS_HEADER,
        )
    )
    if args.jsonl:
        completed.append(
            shown
            | "FormatJsonl" >> beam.Map(out.prediction_json, names)
            | "WriteJsonl"
            >> beam.io.WriteToText(
                out.join(output, "predictions"), file_name_suffix=".jsonl", shard_name_template=""
            )
        )

    side = {
        "read_count": beam.pvalue.AsSingleton(videos["read_count"]),
        "failed_count": beam.pvalue.AsSingleton(failed | "CountFailed" >> beam.combiners.Count.Globally()),
        "stats": beam.pvalue.AsSingleton(
            records | "VideoStats" >> beam.CombineGlobally(combiners.VideoStatsFn())
        ),
    }
    if args.labels:
        completed.append(
            records
            | "WriteVideos"
            >> beam.io.WriteToParquet(
                out.join(output, "videos"),
                out.VIDEO_SCHEMA,
                file_name_suffix=".parquet",
                shard_name_template="",
                codec="zstd",
            )
        )
        side["metrics"] = beam.pvalue.AsSingleton(
            records
            | "Metrics" >> beam.CombineGlobally(combiners.MetricsCombineFn(plan.num_classes, args.top_k))
        )
        if plan.segments:
            side["segments"] = beam.pvalue.AsSingleton(
                videos["rows"]
                | "ScoreSegments" >> inference.ScoreSegments(plan, args.batch_size)
                | "SegmentMap" >> beam.CombineGlobally(combiners.SegmentMapFn(args.segment_k))
            )
    if cascade is not None:
        side["cascade"] = beam.pvalue.AsSingleton(
            scored["stats"]
            | "CascadeStats" >> beam.CombineGlobally(routing.CascadeStatsFn(len(cascade.views)))
        )
    side["completed"] = beam.pvalue.AsList(completed | "AllOtherOutputs" >> beam.Flatten())
    base = {
        "model": plan.model_identity() if cascade is None else cascade.model_identity(),
        "input": plan.identity(),
        "top_k": args.top_k,
        "max_failed_fraction": args.max_failed_fraction,
        "fewframes_version": manifest.code_version(),
    }
    (
        pipeline
        | "SummaryTrigger" >> beam.Create([None])
        | "WriteSummary" >> beam.Map(_write_summary, output, summary_file(args.labels), base, names, **side)
    )


def cascade_summary(model: dict, stages: list[dict], source: dict) -> dict:
    """metrics.json's `cascade`: per stage its view, threshold, videos entering and exiting,
    frames its model read, frames its view added, model time; the input read once."""
    spec = model["cascade"]
    thresholds = list(spec["thresholds"]) + [None]
    return {
        "rule": spec["rule"],
        "input_read_once": True,
        "input_bytes": source["bytes"],
        "stages": [
            {"view": spec["stages"][i]["view"], "threshold": thresholds[i], **entry}
            for i, entry in enumerate(stages)
        ],
    }


def summary_file(labels: bool) -> str:
    return out.METRICS_FILE if labels else "summary.json"


def _write_summary(
    _,
    output,
    name,
    base,
    names,
    read_count,
    failed_count,
    stats,
    completed,
    metrics=None,
    segments=None,
    cascade=None,
):
    del completed  # a side input only so that this step runs after every other write
    summary = dict(base)
    summary.update(
        {
            "num_records": read_count,
            "num_videos": stats["videos"],
            "num_failed": failed_count,
            "balanced": read_count == stats["videos"] + failed_count,
            "frames": {k: stats[k] for k in ("mean_num_frames", "mean_frames_read", "fraction_read")},
            "timing": {k: stats[k] for k in ("model_seconds", "model_seconds_per_video")},
            **runner.failed_share(read_count, failed_count, base["max_failed_fraction"]),
        }
    )
    if cascade is not None:
        summary["cascade"] = cascade_summary(base["model"], cascade, base["input"])
    if metrics is not None:
        summary.update(metrics["metrics"])
        summary["map"] = summary["map_nonempty_classes"]
        summary["map_convention"] = (
            "map = map_nonempty_classes: mean AP over classes with at least one positive video; "
            "map_all_classes counts classes without positives as 0 (the starter's 'map')"
        )
        out.write_per_class(
            output,
            [
                {**row, "name": names.names[row["class"]], "vertical": names.verticals[row["class"]]}
                for row in metrics["per_class"]
            ],
        )
    if segments is not None:
        summary["segments"] = segments
    if not summary["balanced"]:  # the command exits 1 with this line (runner.exit_code)
        summary["unbalanced_reason"] = (
            f"record accounting does not balance: read {read_count}, "
            f"scored {stats['videos']}, failed {failed_count}"
        )
    out.write_bytes(
        out.join(output, name), json.dumps(summary, indent=2, sort_keys=True).encode(), "application/json"
    )
    return summary


def run(argv=None, test_pipeline=None, labels: bool = True, prog: str = "fewframes evaluate") -> dict:
    """Run the job; returns what it wrote to metrics.json (summary.json for predict)."""
    args, beam_args = parse_args(argv, labels, prog)
    options = PipelineOptions(beam_args)
    options.view_as(SetupOptions).save_main_session = False
    cascade = None
    try:
        if cascade_spec.is_cascade_dir(args.model):
            cascade = routing.plan_cascade(args.model, args.input)
            plan = cascade.read_plan
        else:
            plan = scoring_plan.plan_scoring(args.model, args.input)
    except scoring_plan.ScoringError as error:
        raise UsageError(str(error)) from None
    vocabulary = out.read_vocabulary(args.vocabulary, plan.metadata)
    names = out.ClassNames(plan.metadata, vocabulary)
    if (args.only_label or args.only_vertical) and not names.matching(args.only_label, args.only_vertical):
        raise UsageError(
            f"no class is named {args.only_label!r}"
            if args.only_label
            else f"no class is in vertical {args.only_vertical!r}"
        )
    prepare_output(args.output, args.overwrite)
    _LOG.info(
        "%s %d %s files (%s, %s-level) with %s (%s, view %s) -> %s",
        "evaluating" if labels else "scoring",
        len(plan.files),
        plan.source,
        ",".join(plan.patterns),
        plan.kind,
        plan.export_dir,
        plan.metadata.get("role"),
        plan.metadata.get("serving_view"),
        args.output,
    )
    pipeline = test_pipeline or runner.create_pipeline(options)
    build_pipeline(pipeline, args, plan, names, cascade)
    start = time.perf_counter()
    result = pipeline.run()
    result.wait_until_finish()
    wall = time.perf_counter() - start
    path = out.join(args.output.rstrip("/"), summary_file(labels))
    summary = json.loads(out.read_bytes(path))
    summary["timing"]["wall_seconds"] = round(wall, 3)
    out.write_bytes(path, json.dumps(summary, indent=2, sort_keys=True).encode(), "application/json")
    if labels and not args.no_report and summary["num_videos"]:
        from pipelines.scoring.report import write_evaluation_report

        write_evaluation_report(args.output.rstrip("/"))
    ownership.commit(args.output, EVALUATION_CLAIMS)
    return summary


def format_summary(summary: dict) -> str:
    lines = [
        f"videos {summary['num_videos']} scored, {summary['num_failed']} failed "
        f"(of {summary['num_records']} records); frames read {summary['frames']['fraction_read']:.3f} "
        f"of the video; model {1000 * summary['timing']['model_seconds_per_video']:.3f} ms/video"
    ]
    if "gap" in summary:
        lines.append(
            f"GAP {summary['gap']:.4f}  mAP {summary['map']:.4f} "
            f"(all classes {summary['map_all_classes']:.4f})  "
            f"Hit@1 {summary['hit_at_1']:.4f}  PERR {summary['perr']:.4f}"
        )
    if "segments" in summary:
        seg = summary["segments"]
        lines.append(
            f"segment mAP@{seg['k']} {seg['map_at_k']:.4f} over {seg['num_rated_pairs']} rated pairs"
        )
    return "\n".join(lines)


def main(argv=None, labels: bool = True, prog: str = "fewframes evaluate") -> int:
    def run_job(argv):
        return run(argv, labels=labels, prog=prog)

    return runner.job_main(prog, run_job, lambda summary, _seconds: format_summary(summary), argv)


if __name__ == "__main__":
    from trainer.startup import quiet_startup

    sys.exit(main(quiet_startup(sys.argv[1:])))
