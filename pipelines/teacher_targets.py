"""Compute a frozen teacher's outputs once, with Beam: a compact dataset to distill from.

    python -m pipelines.teacher_targets --teacher TEACHER_JOB_DIR --input gs://b/train_full \
        --output gs://b/train_targets [--view every_n:10] [--predictions all|top_k:K] \
        [Beam pipeline options]

In `serial` distillation the teacher is frozen, so its predictions and final
representation of a video never change: running it over all 300 frames at every
student step wastes most of the saving, and forces every student to read the full
view. This job runs the teacher once per video (RunInference over its export, batched
as in evaluation) and writes a new dataset with the student view only plus, per video,
the teacher's outputs (`schemas.targets`). `fewframes train --mode serial --targets
DIR` trains any student from it without loading the teacher.

Steps: read the input dataset's full view (Parquet, else TFRecord) -> validate rows
(a bad row is a dead letter with its reason) -> RunInference with the teacher's
`score_frames` signature (a batch it cannot score: its videos become dead letters) ->
cut the student view from the same frames with `schemas.views.View` (the frames online
`serial` training would cut) -> write shards, `errors/`, and `manifest.json` with
the teacher's identity and config. `records_read = records_written + records_failed`
is checked, as in preprocessing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import PredictionResult
from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions

from pipelines import runner
from pipelines.datasets import manifest, ownership, write
from pipelines.records import failures
from pipelines.records.coders import VideoRow
from pipelines.runner import UsageError
from pipelines.scoring import inference, read
from pipelines.scoring import plan as scoring_plan
from pipelines.scoring.inference import ExportModelHandler
from schemas import features as F
from schemas.preprocessed import (
    ERRORS_DIR,
    FORMATS,
    MANIFEST_NAME,
    TRANSFORM_DIR,
    DatasetLayout,
)
from schemas.targets import TargetsEncoding
from schemas.views import View
from trainer.job_dir import CONFIG_NAME, EXPORT_DIR, TEACHER_EXPORT_DIR

_LOG = logging.getLogger("pipelines.teacher_targets")  # not "__main__" under `python -m`

STAGE_TEACHER = "teacher"
TEACHER_EXPORT_DIRS = (TEACHER_EXPORT_DIR, EXPORT_DIR)  # a parallel job's teacher, a teacher job's model
# Beyond scoring's model identity: what a student trained on the targets is checked against.
TEACHER_IDENTITY_EXTRA_KEYS = ("model", "normalization", "weights_sha256", "representation_dim")


@dataclasses.dataclass(frozen=True)
class TargetsPlan:
    scoring: scoring_plan.ScoringPlan  # the teacher's export over the input's full view
    view: View  # the student view the output stores
    encoding: TargetsEncoding
    layout: DatasetLayout  # the output's
    input_manifest: dict

    @property
    def input_dir(self) -> str:
        return self.scoring.patterns[0]

    def full_columns(self) -> list[str]:
        return [F.full_view_column(f) for f in F.FRAME_FEATURES]

    def teacher_identity(self) -> dict:
        identity = self.scoring.model_identity(TEACHER_IDENTITY_EXTRA_KEYS)
        identity["export"] = identity.pop("path")
        identity["config"] = _job_config(identity["job_dir"])
        return identity


# ----- planning -------------------------------------------------------------------------
def resolve_teacher(teacher: str) -> tuple[str, dict]:
    """A teacher's export: the directory itself, or a teacher / parallel job dir's."""
    try:
        export_dir, metadata = scoring_plan.resolve_export(teacher, TEACHER_EXPORT_DIRS)
    except scoring_plan.InvalidExport as error:
        raise UsageError(f"--teacher {teacher}: {error}") from None
    except scoring_plan.ScoringError:
        raise UsageError(
            f"--teacher {teacher} is neither a fewframes export nor a training job dir with "
            f"{' or '.join(TEACHER_EXPORT_DIRS)}/"
        ) from None
    if metadata.get("role") != "teacher":
        raise UsageError(
            f"--teacher {teacher}: {export_dir} is a {metadata.get('role')}'s export; give a teacher "
            "(the job dir of a --mode teacher or parallel run, or its teacher export)"
        )
    if metadata.get("kind") != F.FRAME_LEVEL:
        raise UsageError(f"--teacher {teacher} is a video-level model: there are no frames to distill over")
    return export_dir, metadata


def plan_targets(teacher: str, dataset: str, view: str | None, predictions: str) -> TargetsPlan:
    export_dir, metadata = resolve_teacher(teacher)
    dataset = dataset.rstrip("/")
    if not FileSystems.exists(FileSystems.join(dataset, MANIFEST_NAME)):
        raise UsageError(
            f"--input {dataset} is not a preprocessed dataset (no {MANIFEST_NAME}); "
            "run `fewframes preprocess --teacher-view` first"
        )
    with FileSystems.open(FileSystems.join(dataset, MANIFEST_NAME)) as stream:
        input_manifest = json.loads(stream.read())
    if not DatasetLayout.from_dict(input_manifest["schema"]).teacher_view:
        raise UsageError(
            f"--input {dataset} has no full view: the teacher reads every frame "
            "(preprocess with --teacher-view)"
        )
    try:
        plan = scoring_plan.plan_dataset(export_dir, metadata, dataset)
    except scoring_plan.ScoringError as error:
        raise UsageError(str(error)) from None
    layout = plan.layout
    try:
        student_view = View.parse(view or layout.view)
        encoding = TargetsEncoding.parse(predictions)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if not student_view.is_deterministic:
        raise UsageError(f"--view {student_view} is random; a dataset stores one deterministic view")
    # Every video through the teacher's own view ("all"), from its full view.
    plan = dataclasses.replace(plan, frames=scoring_plan.WHOLE_VIDEOS, segments=False)
    num_classes = int(metadata["num_classes"])
    try:
        out_layout = DatasetLayout(
            F.FRAME_LEVEL,
            frame_dtype=layout.frame_dtype,
            view=str(student_view),
            teacher_targets=str(encoding),
            num_classes=num_classes,
            representation_dim=_representation_dim(export_dir, metadata),
        )
    except ValueError as error:
        raise UsageError(str(error)) from None
    return TargetsPlan(plan, student_view, encoding, out_layout, input_manifest)


def _representation_dim(export_dir: str, metadata: dict) -> int:
    if metadata.get("representation_dim"):
        return int(metadata["representation_dim"])
    # Exports written before the width was recorded: ask the model, on one zero frame.
    from trainer.export import LoadedExport

    features = metadata["features"]
    frames = {f: np.zeros((1, 1, F.FEATURE_DIMS[f]), np.float32) for f in features}
    out = LoadedExport(export_dir).score_frames(frames, np.ones(1, np.int32))
    return int(out["representation"].shape[-1])


def _job_config(job_dir: str | None) -> dict | None:
    """The teacher job's config.json, when its job dir is still reachable."""
    if not job_dir:
        return None
    path = FileSystems.join(job_dir, CONFIG_NAME)
    try:
        if not FileSystems.exists(path):
            return None
        with FileSystems.open(path) as stream:
            return json.loads(stream.read())
    except Exception:  # another machine's path, no permission: the export's metadata still names it
        return None


# ----- inference ----------------------------------------------------------------------------
class TeacherTargetsHandler(ExportModelHandler):
    """Rows with the full view -> output rows: the student view and the teacher's outputs.

    A video whose outputs are not finite comes back as a failure dict instead of a row.
    """

    def __init__(self, plan: TargetsPlan, **batching):
        super().__init__(plan.scoring.export_dir, **batching)
        self._plan = plan

    def run_inference(self, batch, model, inference_args=None):
        plan = self._plan
        inputs, lengths, _ = inference.model_frames(plan.scoring, batch)
        outputs = model.score_frames(inputs, lengths)
        predictions, representations = outputs["predictions"], outputs["representation"]
        finite = np.isfinite(predictions).all(axis=1) & np.isfinite(representations).all(axis=1)
        encoded = plan.encoding.encode(np.where(finite[:, None], predictions, 0.0))
        results = []
        for i, row in enumerate(batch):
            if not finite[i]:
                result = failures.failure(
                    "", -1, -1, STAGE_TEACHER, "the teacher's outputs are not finite", row[F.ID]
                )
            else:
                result = student_row(row, plan.view, encoded[i], representations[i])
            results.append(PredictionResult(row[F.ID], result))
        return results


def student_row(row: dict, view: View, targets: dict, representation: np.ndarray) -> VideoRow:
    """A full-view row -> the output row: the view's frames (as stored) and the targets."""
    columns = {f: F.full_view_column(f) for f in F.FRAME_FEATURES}
    indices = view.frame_indices(len(row[columns[F.RGB]]))
    out = VideoRow(
        {
            F.ID: row[F.ID],
            F.LABELS: row[F.LABELS],
            F.NUM_FRAMES: row[F.NUM_FRAMES],
            F.FRAME_INDEX: indices.astype(np.int16),
        }
    )
    for feature, column in columns.items():
        out[feature] = np.ascontiguousarray(row[column][indices])
    out.update(targets)
    out[F.TEACHER_REPRESENTATION] = np.asarray(representation, np.float32)
    return out


class _SplitFailures(beam.DoFn):
    def process(self, result):
        if isinstance(result, VideoRow):
            yield result
        else:
            yield beam.pvalue.TaggedOutput(failures.FAILED, result)


class ComputeTeacherTargets(beam.PTransform):
    """Full-view rows -> `rows` of the targets dataset and `failed` dead letters."""

    def __init__(self, plan: TargetsPlan, batch_size: int = 256):
        super().__init__()
        self._plan, self._batch_size = plan, batch_size

    def expand(self, rows):
        plan = self._plan
        keep = {F.ID, F.LABELS, F.NUM_FRAMES, *plan.full_columns()}
        # Fixed-size batches, as in evaluation: adaptive batching starts at one video.
        handler = TeacherTargetsHandler(
            plan, min_batch_size=self._batch_size, max_batch_size=self._batch_size
        )
        out = rows | "Teacher" >> inference.RunKeyedInference(handler, keep)
        split = out["results"] | "SplitFailures" >> beam.ParDo(_SplitFailures()).with_output_types(
            VideoRow
        ).with_outputs(failures.FAILED, main="rows")
        failed = (out["failed"], split[failures.FAILED]) | "TeacherFailures" >> beam.Flatten()
        return {"rows": split.rows, "failed": failed}


# ----- options ------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fewframes teacher-targets",
        description="Run a trained teacher once over a dataset's full view; write the student view "
        "plus the teacher's predictions and representation (for `train --mode serial --targets`). "
        "Unrecognised flags are Beam pipeline options (--runner, --direct_num_workers, ...).",
    )
    parser.add_argument(
        "--teacher", required=True, help="a teacher or parallel job dir, or a teacher export (local or gs://)"
    )
    parser.add_argument("--input", required=True, help="a preprocessed dataset with the full view")
    parser.add_argument("--output", required=True, help="output dataset directory, local or gs://")
    parser.add_argument("--view", help="student view to store (default: the input's stored view)")
    parser.add_argument(
        "--predictions",
        default="all",
        help="all (every class, 4·C bytes a video) or top_k:K (6·K+4 bytes; the rest as their mean)",
    )
    parser.add_argument("--format", help="comma-separated: parquet,tfrecord (default: the input's formats)")
    parser.add_argument("--batch-size", type=int, default=256, help="videos per teacher call")
    parser.add_argument("--overwrite", action="store_true", help="replace a dataset already at --output")
    write.add_output_arguments(parser)
    runner.add_max_failed_fraction_argument(parser)
    return parser


def parse_args(argv):
    parser = build_parser()
    args, beam_args = runner.parse_job_args(parser, argv)
    if args.format is not None:
        args.format = [f.strip() for f in args.format.split(",") if f.strip()]
        unknown = sorted(set(args.format) - set(FORMATS))
        if not args.format or unknown:
            parser.error(f"--format takes parquet and/or tfrecord, got {','.join(args.format) or 'nothing'}")
    if args.batch_size < 1 or args.num_shards < 0:
        parser.error("--batch-size must be positive and --num-shards not negative")
    runner.check_max_failed_fraction(parser, args.max_failed_fraction)
    return args, beam_args


# ----- the pipeline -----------------------------------------------------------------------------
def build_pipeline(pipeline, args, plan: TargetsPlan) -> None:
    output = args.output.rstrip("/")
    layout = plan.layout
    videos = pipeline | "ReadFullView" >> read.ReadVideos(plan.scoring, frame_columns=plan.full_columns())
    targets = videos["rows"] | "ComputeTeacherTargets" >> ComputeTeacherTargets(plan, args.batch_size)
    rows = targets["rows"]
    all_failures = (videos["failed"], targets["failed"]) | "AllFailures" >> beam.Flatten()

    written = write.write_formats(rows, output, layout, args)
    completed = [all_failures | "WriteFailures" >> failures.WriteJsonLines(f"{output}/{ERRORS_DIR}/failures")]
    num_entities = int(plan.input_manifest["num_classes"])
    stats = rows | "SummarizeDataset" >> beam.CombineGlobally(manifest.DatasetStatsFn(num_entities))
    source = plan.input_manifest
    base = {
        "fewframes_version": manifest.code_version(),
        "schema": layout.to_dict(),
        "columns": layout.column_names,
        "kind": layout.kind,
        "view": layout.view,
        "frame_dtype": layout.frame_dtype,
        "teacher_view": False,
        "num_classes": num_entities,
        "partition": source.get("partition", ""),
        "max_failed_fraction": args.max_failed_fraction,
        "input_patterns": source.get("input_patterns", []),
        "source_dataset": {
            "path": plan.input_dir,
            "created": source.get("created"),
            "view": source.get("view"),
            "records_written": source.get("records_written"),
            "format": plan.scoring.dataset_format,
        },
        "input_files": len(plan.scoring.files),
        "bytes_in": plan.scoring.input_bytes,
        "formats": args.format,
        "normalization": source.get("normalization"),
        "teacher": plan.teacher_identity(),
        "targets": {
            "predictions": str(plan.encoding),
            "num_classes": layout.num_classes,
            "representation_dim": layout.representation_dim,
            "bytes_per_video": plan.encoding.bytes_per_video(layout.num_classes, layout.representation_dim),
        },
        "options": {**write.output_options(args), "batch_size": args.batch_size},
    }
    manifest.write_last(
        pipeline,
        f"{output}/{MANIFEST_NAME}",
        base,
        stats=stats,
        read_count=videos["read_count"],
        all_failures=all_failures,
        written=written,
        completed=completed,
        duplicates={"dropped": False, "checked": False},  # rows come from a checked dataset
    )


def run(argv=None, test_pipeline=None) -> dict:
    """Run the job; returns the manifest it wrote. Raises UsageError on bad arguments."""
    args, beam_args = parse_args(argv)
    options = PipelineOptions(beam_args)
    options.view_as(SetupOptions).save_main_session = False
    plan = plan_targets(args.teacher, args.input, args.view, args.predictions)
    if args.format is None:
        args.format = [f for f in FORMATS if f in plan.input_manifest.get("formats", [])]
    if args.output.rstrip("/") == plan.input_dir:
        raise UsageError("--output cannot be the --input dataset")
    write.prepare_output(args.output, args.overwrite)
    normalization = plan.input_manifest.get("normalization") or {}
    if normalization.get("zscore", "none") != "none":
        # The student normalises its frames with the statistics the teacher's data had.
        FileSystems.copy(
            [f"{plan.input_dir}/{TRANSFORM_DIR}/"], [f"{args.output.rstrip('/')}/{TRANSFORM_DIR}/"]
        )
    _LOG.info(
        "teacher targets: %s (%s) over %d %s files of %s -> %s, view %s, predictions %s",
        plan.scoring.export_dir,
        plan.scoring.metadata.get("preset"),
        len(plan.scoring.files),
        plan.scoring.dataset_format,
        plan.input_dir,
        args.output,
        plan.view,
        plan.encoding,
    )
    pipeline = test_pipeline or runner.create_pipeline(options)
    build_pipeline(pipeline, args, plan)
    result = pipeline.run()
    result.wait_until_finish()
    ownership.commit(args.output, write.DATASET_CLAIMS)
    return manifest.read_json(f"{args.output.rstrip('/')}/{MANIFEST_NAME}")


def format_summary(summary: dict, seconds: float) -> str:
    targets = summary["targets"]
    records, transferred = manifest.accounting_lines(summary)
    lines = [
        f"teacher targets in {seconds:.1f}s: teacher {summary['teacher']['export']} "
        f"({summary['teacher'].get('preset')})",
        records,
        f"  view {summary['view']} as {summary['frame_dtype']}; predictions {targets['predictions']} "
        f"over {targets['num_classes']} classes, representation {targets['representation_dim']} wide",
        transferred,
        *manifest.output_lines(summary),
    ]
    if summary["records_failed"]:
        lines.append(f"  errors: see {ERRORS_DIR}/ in the output directory")
    return "\n".join(lines)


def main(argv=None) -> int:
    return runner.job_main("fewframes teacher-targets", run, format_summary, argv)


if __name__ == "__main__":
    from trainer.startup import quiet_startup

    sys.exit(main(quiet_startup(sys.argv[1:])))
