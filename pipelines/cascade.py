"""`fewframes cascade`: a coarse-to-fine cascade of trained models that stops per video.

    fewframes cascade fit --stage STUDENT_30 --stage STUDENT_10 --stage TEACHER \
        --input CALIBRATION --target 0.99 --output DIR [--rule top1|agreement|gate] \
        [--cost frames|time] [Beam pipeline options]

`fit` resolves every stage (a training job dir or an export), refuses in one line stages
of other class spaces or features, views that do not nest and a target outside (0, 1],
copies each export into `DIR/stages/<i>/` and checks the copy against its graph's
`metadata` signature (nothing outside DIR is loaded later), scores the calibration
partition (raw shards or a dataset) with every stage copy through the evaluation's Beam
scoring (`pipelines.scoring.read`, `pipelines.scoring.inference`: the same reading, dead
letters and RunInference; each stage reads the input itself, once), then searches the
exit thresholds (`pipelines.scoring.cascade.search_thresholds`: deterministic, documented
there) that minimise the mean cost subject to cascade GAP >= target x the last stage's
GAP on the calibration partition. It writes `DIR/cascade.json` (stages with their
export identity and view, rule, thresholds, and the calibration numbers: each stage's
GAP, frames and model time, the cascade's, and the GAP-vs-cost curve over thresholds),
`DIR/report.html` (that curve beside each stage's fixed point) and, under
`DIR/calibration/`, each stage's per-video records and dead letters.

`--cost time` uses each stage's model time per video measured once in this run (the
evaluation's batches) and recorded in cascade.json, so the search is deterministic given
them.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions

from pipelines import runner
from pipelines.datasets import manifest, ownership
from pipelines.records import failures
from pipelines.runner import UsageError
from pipelines.scoring import cascade as C
from pipelines.scoring import inference, read
from pipelines.scoring import outputs as out
from pipelines.scoring import plan as scoring_plan
from schemas import features as F
from schemas.views import View
from trainer.metrics import DEFAULT_TOP_K

_LOG = logging.getLogger("pipelines.cascade")
PROG = "fewframes cascade"
CALIBRATION_DIR = "calibration"
SUBCOMMANDS = ("fit", "export")

CASCADE_CLAIMS = ownership.Claims(
    "cascade",
    files=(C.CASCADE_FILE, out.REPORT_FILE),
    trees=(C.STAGES_DIR + "/", CALIBRATION_DIR + "/"),
)  # every file `cascade fit` may write under its output


# ----- command line ------------------------------------------------------------------------------
def build_fit_parser(prog: str = f"{PROG} fit") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Fit a cascade's exit thresholds on a calibration partition. "
        "Unrecognised flags are Beam pipeline options (--runner, --direct_num_workers, ...).",
    )
    parser.add_argument(
        "--stage",
        required=True,
        action="append",
        help="a training job dir or export, coarse to fine (repeat; at least two)",
    )
    parser.add_argument(
        "--input",
        required=True,
        action="append",
        help="the calibration partition: raw shards (glob; repeat or comma-separate) or a dataset dir",
    )
    parser.add_argument(
        "--target",
        required=True,
        type=float,
        help="R: the cascade's GAP must be >= R x the last stage's GAP (0 < R <= 1)",
    )
    parser.add_argument("--output", required=True, help="the cascade directory to write")
    parser.add_argument("--rule", default=C.RULE_TOP1, choices=C.RULES, help="the exit rule (default top1)")
    parser.add_argument(
        "--cost",
        default=C.COST_FRAMES,
        choices=C.COSTS,
        help="what the thresholds minimise: frames read (default) or model time",
    )
    parser.add_argument(
        "--agreement-k", type=int, default=C.DEFAULT_AGREEMENT_K, help="top-k compared by --rule agreement"
    )
    parser.add_argument(
        "--grid", type=int, default=C.DEFAULT_GRID, help="candidate thresholds per stage (quantiles)"
    )
    parser.add_argument("--top-k", type=int, default=DEFAULT_TOP_K, help="entries per video (GAP's k)")
    parser.add_argument("--batch-size", type=int, default=256, help="largest inference batch")
    parser.add_argument("--parse-batch-size", type=int, default=64)
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier cascade in --output")
    return parser


def parse_fit_args(argv):
    parser = build_fit_parser()
    args, beam_args = runner.parse_job_args(parser, argv)
    args.input = [p.strip() for group in args.input for p in group.split(",") if p.strip()]
    # One line (UsageError, rc 2), as the refusals that follow.
    if not 0 < args.target <= 1:
        raise UsageError(f"--target must lie in (0, 1], got {args.target}")
    if len(args.stage) < 2:
        raise UsageError(f"a cascade needs at least two --stage, got {len(args.stage)}")
    for name in ("agreement_k", "top_k", "batch_size", "parse_batch_size"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be positive")
    if args.grid < 2:
        raise UsageError("--grid must be at least 2")
    return args, beam_args


# ----- stages ------------------------------------------------------------------------------------
def resolve_stages(stages: list[str]) -> list[tuple[str, dict]]:
    """Each stage's export and verified metadata; refuses, in one line, stages that cannot
    form a cascade (video level, other class spaces or features, views that do not nest)."""
    resolved = []
    for i, stage in enumerate(stages):
        try:
            resolved.append(scoring_plan.resolve_export(stage))
        except scoring_plan.ScoringError as error:
            raise UsageError(f"--stage {i}: {error}") from None
        if resolved[-1][1]["kind"] != F.FRAME_LEVEL:
            raise UsageError(f"--stage {i} ({stage}) is a video-level model; a cascade's stages read frames")
    try:
        C.check_same_space([metadata for _, metadata in resolved])
        C.check_views_nest([View.parse(metadata["serving_view"]) for _, metadata in resolved])
    except C.CascadeError as error:
        raise UsageError(str(error)) from None
    return resolved


def copy_tree(source: str, destination: str) -> None:
    """Copy an export directory (local or gs://) file by file."""
    source = source.rstrip("/")
    if FileSystems.get_scheme(source) is None and FileSystems.get_scheme(destination) is None:
        # `ownership.claim` has emptied the output of an earlier fit's files, maybe not its folders.
        shutil.copytree(source, destination, dirs_exist_ok=True)
        return
    names = ownership.list_files(source)
    FileSystems.copy([f"{source}/{n}" for n in names], [f"{destination.rstrip('/')}/{n}" for n in names])


def copy_stage(index: int, export_dir: str, metadata: dict, output: str) -> tuple[C.Stage, str, dict]:
    """Copy a stage's export into the cascade dir and check the copy against its graph."""
    relative = f"{C.STAGES_DIR}/{index}"
    destination = FileSystems.join(output, C.STAGES_DIR, str(index))
    copy_tree(export_dir, destination)
    try:
        copied, verified = scoring_plan.resolve_export(destination, subdirs=())
    except scoring_plan.ScoringError as error:
        raise UsageError(f"the copy of stage {index} in {destination} does not load: {error}") from None
    if verified != metadata:
        raise UsageError(f"the copy of stage {index} in {destination} differs from {export_dir}")
    identity = {k: verified.get(k) for k in (*scoring_plan.MODEL_IDENTITY_KEYS, "weights_sha256")}
    identity["copied_from"] = export_dir
    return C.Stage(relative, verified["serving_view"], identity), copied, verified


# ----- the calibration pipeline --------------------------------------------------------------------
def stage_videos_prefix(output: str, index: int) -> str:
    return FileSystems.join(output, CALIBRATION_DIR, f"stage-{index}-videos")


def stage_counts_path(output: str, index: int) -> str:
    return FileSystems.join(output, CALIBRATION_DIR, f"stage-{index}-counts.json")


def build_calibration_pipeline(pipeline, plans: list[scoring_plan.ScoringPlan], args) -> None:
    """Score the calibration input with every stage: per stage, its videos' records
    (`VIDEO_SCHEMA`) in calibration/stage-<i>-videos.parquet, its dead letters in
    calibration/failed-stage-<i>-*.jsonl and its counts (records read, scored, failed)."""
    output = args.output.rstrip("/")
    for i, plan in enumerate(plans):
        name = f"Stage{i}"
        videos = pipeline | f"{name}Read" >> read.ReadVideos(plan, args.parse_batch_size)
        scored = videos["rows"] | f"{name}Score" >> inference.ScoreVideos(
            plan, args.top_k, min_batch_size=args.batch_size, max_batch_size=args.batch_size
        )
        failed = (videos["failed"], scored["failed"]) | f"{name}Failures" >> beam.Flatten()
        failed | f"{name}WriteFailures" >> failures.WriteJsonLines(
            FileSystems.join(output, CALIBRATION_DIR, f"failed-stage-{i}")
        )
        written = scored["scored"] | f"{name}WriteVideos" >> beam.io.WriteToParquet(
            stage_videos_prefix(output, i),
            out.VIDEO_SCHEMA,
            file_name_suffix=".parquet",
            shard_name_template="",
            codec="zstd",
        )
        (
            pipeline
            | f"{name}CountsTrigger" >> beam.Create([None])
            | f"{name}WriteCounts"
            >> beam.Map(
                _write_counts,
                stage_counts_path(output, i),
                read_count=beam.pvalue.AsSingleton(videos["read_count"]),
                scored_count=beam.pvalue.AsSingleton(
                    scored["scored"] | f"{name}CountScored" >> beam.combiners.Count.Globally()
                ),
                failed_count=beam.pvalue.AsSingleton(
                    failed | f"{name}CountFailed" >> beam.combiners.Count.Globally()
                ),
                written=beam.pvalue.AsList(written),
            )
        )


def _write_counts(_, path, read_count, scored_count, failed_count, written):
    del written  # a side input only so that the counts are written after the videos
    counts = {"records": read_count, "scored": scored_count, "failed": failed_count}
    out.write_bytes(path, json.dumps(counts, sort_keys=True).encode(), "application/json")


def read_stage_records(output: str, index: int) -> list[dict]:
    import pyarrow.parquet as pq

    with FileSystems.open(stage_videos_prefix(output, index) + ".parquet") as stream:
        return pq.read_table(stream).to_pylist()


# ----- fit -----------------------------------------------------------------------------------------
def calibration_numbers(
    stages: C.StageScores, result: C.SearchResult, counts: list[dict], seconds: list[float]
) -> dict:
    mean_num_frames = float(stages.num_frames.mean())

    def fraction(frames: float) -> float:
        return frames / mean_num_frames if mean_num_frames else 0.0

    per_stage = []
    for s in range(stages.num_stages):
        frames = float(stages.frames[:, s].mean())
        per_stage.append(
            {
                "gap": stages.stage_gap(s),
                "mean_frames_read": frames,
                "fraction_read": fraction(frames),
                "model_seconds_per_video": seconds[s],
                **counts[s],
            }
        )
    best = result.best
    return {
        "num_videos": stages.num_videos,
        "num_positives": stages.num_positives,
        "mean_num_frames": mean_num_frames,
        "stages": per_stage,
        "cascade": best.to_dict() | {"fraction_read": fraction(best.mean_frames)},
        "last_stage_gap": result.last_gap,
        "target_gap": result.target_gap,
        "search": {"method": result.method, "points_evaluated": len(result.points)},
        "curve": [p.to_dict() | {"fraction_read": fraction(p.mean_frames)} for p in result.frontier()],
    }


def fit(argv=None, test_pipeline=None) -> dict:
    """Run `cascade fit`; returns what it wrote to cascade.json, with `balanced`."""
    args, beam_args = parse_fit_args(argv)
    output = args.output.rstrip("/")
    resolved = resolve_stages(args.stage)
    # Planning the input against each stage refuses input that does not fit before anything is written.
    for i, (export_dir, _) in enumerate(resolved):
        try:
            scoring_plan.plan_scoring(export_dir, args.input)
        except scoring_plan.ScoringError as error:
            raise UsageError(f"--stage {i}: {error}") from None
    ownership.claim(
        output, args.overwrite, CASCADE_CLAIMS, "no cascade fit wrote", "choose another --output", UsageError
    )
    copied = [
        copy_stage(i, export_dir, metadata, output) for i, (export_dir, metadata) in enumerate(resolved)
    ]
    plans = [scoring_plan.plan_scoring(path, args.input) for _, path, _ in copied]
    _LOG.info(
        "scoring the calibration input %s with %d stages -> %s", ",".join(args.input), len(plans), output
    )
    options = PipelineOptions(beam_args)
    options.view_as(SetupOptions).save_main_session = False
    pipeline = test_pipeline or runner.create_pipeline(options)
    build_calibration_pipeline(pipeline, plans, args)
    pipeline.run().wait_until_finish()

    counts = [json.loads(out.read_bytes(stage_counts_path(output, i))) for i in range(len(plans))]
    records = [read_stage_records(output, i) for i in range(len(plans))]
    views = [View.parse(stage.view) for stage, _, _ in copied]
    stages = C.StageScores.from_records(views, records)
    if stages.num_videos == 0:
        raise UsageError(
            f"no calibration video was scored by every stage (records read, scored, failed per stage: "
            f"{[tuple(c.values()) for c in counts]}); the dead letters are in {output}/{CALIBRATION_DIR}/"
        )
    seconds = [
        sum(r["model_seconds"] for r in stage_records) / len(stage_records) if stage_records else 0.0
        for stage_records in records
    ]
    try:
        gates = C.fit_gates(stages) if args.rule == C.RULE_GATE else ()
        rule = C.ExitRule(args.rule, args.agreement_k, gates)
        cost = C.time_matrix(seconds, stages.num_videos) if args.cost == C.COST_TIME else None
        result = C.search_thresholds(stages, C.exit_scores(rule, stages), args.target, cost, args.grid)
    except C.CascadeError as error:
        raise UsageError(str(error)) from None
    spec = C.CascadeSpec(
        stages=tuple(
            C.Stage(stage.path, stage.view, stage.model, seconds[i]) for i, (stage, _, _) in enumerate(copied)
        ),
        rule=rule,
        thresholds=result.best.thresholds,
        cost=args.cost,
        target=args.target,
        top_k=args.top_k,
        calibration=calibration_numbers(stages, result, counts, seconds)
        | {"input": list(args.input), "grid": args.grid, "fewframes_version": manifest.code_version()},
    )
    C.write_cascade(output, spec)
    from pipelines.scoring.cascade_report import write_cascade_report

    write_cascade_report(output, spec)
    ownership.commit(output, CASCADE_CLAIMS)
    summary = spec.to_dict()
    summary["balanced"] = all(c["records"] == c["scored"] + c["failed"] for c in counts)
    return summary


def format_fit(summary: dict, _seconds: float = 0.0) -> str:
    calibration = summary["calibration"]
    lines = [
        f"calibration: {calibration['num_videos']} videos scored by every stage; "
        f"rule {summary['rule']['name']}, thresholds {summary['thresholds']}"
    ]
    for i, stage in enumerate(calibration["stages"]):
        lines.append(
            f"  stage {i} ({summary['stages'][i]['view']}): GAP {stage['gap']:.4f}, "
            f"frames read {stage['fraction_read']:.3f}"
        )
    best = calibration["cascade"]
    lines.append(
        f"cascade: GAP {best['gap']:.4f} (target {calibration['target_gap']:.4f}), frames read "
        f"{best['fraction_read']:.3f}, exits per stage {best['exits']}"
    )
    return "\n".join(lines)


# ----- export ---------------------------------------------------------------------------------
def export(argv=None) -> dict:
    """Run `cascade export DIR --output EXPORT`: the cascade as one SavedModel
    (`pipelines.scoring.cascade_export`)."""
    parser = argparse.ArgumentParser(
        prog=f"{PROG} export",
        description="Write a fitted cascade as one SavedModel whose serving_default(example_bytes) runs "
        "its stages in the graph and also returns the stage each video exited at.",
    )
    parser.add_argument("cascade", help="the cascade directory (`fewframes cascade fit --output`)")
    parser.add_argument("--output", required=True, help="the export directory to write (must not hold files)")
    args = parser.parse_args(argv)
    try:
        spec = C.read_cascade(args.cascade)
    except C.CascadeError as error:
        raise UsageError(str(error)) from None
    if FileSystems.exists(args.output) and ownership.list_files(args.output, UsageError):
        raise UsageError(f"{args.output} already holds files; choose another --output")
    from pipelines.scoring.cascade_export import export_cascade

    try:
        export_cascade(args.cascade, args.output)
    except (scoring_plan.ScoringError, C.CascadeError) as error:
        raise UsageError(str(error)) from None
    return {"output": args.output, "stages": [s.view for s in spec.stages], "balanced": True}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        usage = f"usage: {PROG} {{{','.join(SUBCOMMANDS)}}} [options]  (`{PROG} fit --help`)"
        print(usage, file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "fit":
        return runner.job_main(f"{PROG} fit", fit, format_fit, rest)
    if command == "export":
        return runner.job_main(
            f"{PROG} export",
            export,
            lambda summary, _: (
                f"wrote {summary['output']}: {' -> '.join(summary['stages'])} in one SavedModel"
            ),
            rest,
        )
    print(
        f"{PROG}: error: unknown subcommand {command!r}; expected one of {', '.join(SUBCOMMANDS)}",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    from trainer.startup import quiet_startup

    sys.exit(main(quiet_startup(sys.argv[1:])))
