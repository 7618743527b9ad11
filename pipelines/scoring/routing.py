"""Scoring with a cascade directory (`fewframes cascade fit`) in Beam: each video goes
through the stages until one is sure of it.

`plan_cascade` loads `cascade.json`, checks every stage copy inside the directory against
its graph's `metadata` signature and against the identity the fit recorded (view,
weights), and plans the input once, for the last stage: its view holds every earlier
stage's view (`pipelines.scoring.cascade.check_views_nest`).

`ScoreCascade`: the input is read and parsed once (raw records are read once; the rows
carry the finest view's frames, or a dataset's full view), and each row travels between
the stages with its frames: from raw records, their uint8 codes, which a stage
dequantizes for its own view only. Stage s runs RunInference (`CascadeStageHandler`) on the rows
still running only, handing its model just the frames of its own view, cut from the
row's frames by index. After each stage but the last the exit rule decides per video,
from the stage's top-k at the fit's k (so `--top-k` of the evaluation does not move
exits): exit with this stage's compact record, or go on with the stage's top classes
attached (the `agreement` rule compares the next stage with them). Every video exits at
the last stage at the latest, so no video skips a stage it needed.

Frames: a video's `frames_read` is the size of the union of the views of the stages it
went through, each frame counted once (`pipelines.scoring.cascade.frames_paid`); its
`model_seconds` is the sum of its shares of each stage's batch time. Parsing turns
the finest view's frame bytes into codes once for every video; the dequantization, the
arithmetic, is each stage's, over its view of the videos it scores. The per-stage
numbers (`CascadeStatsFn`): videos entering and exiting, frames the stage's model read,
frames its view added, model time.
"""

from __future__ import annotations

import dataclasses
import time

import apache_beam as beam
import numpy as np
from apache_beam.ml.inference.base import KeyedModelHandler, PredictionResult, RunInference

from pipelines.records.coders import VideoRow
from pipelines.scoring import cascade as C
from pipelines.scoring.inference import ExportModelHandler, _failed_batch, class_labels, model_frames
from pipelines.scoring.plan import (
    MODEL_IDENTITY_KEYS,
    RAW,
    VIEW_FRAMES,
    WHOLE_VIDEOS,
    ScoringError,
    ScoringPlan,
    plan_scoring,
    resolve_export,
)
from schemas import features as F
from schemas.quantization import dequantize
from schemas.views import ALL, View
from trainer.metrics import DEFAULT_TOP_K, score_videos

PREVIOUS_CLASSES = "_cascade_previous_classes"  # the last stage's top classes (agreement rule)
SECONDS_SO_FAR = "_cascade_model_seconds"  # model time of the stages already run
STATS = "stats"  # tagged output: one (stage, exited, model frames, new frames, seconds) per video


@dataclasses.dataclass(frozen=True)
class CascadePlan:
    directory: str
    spec: C.CascadeSpec
    read_plan: ScoringPlan  # how the input is read: the last stage's plan
    stage_plans: tuple[ScoringPlan, ...]  # each stage's model, fed its view's frames (VIEW_FRAMES)
    row_view: View  # the frames the rows hold
    codes: bool = False  # rows hold the frames' uint8 codes; each stage dequantizes its view

    @property
    def views(self) -> list[View]:
        return self.spec.views

    def model_identity(self) -> dict:
        """metrics.json's `model` for a cascade: the last stage's class space and features,
        the chain's views and presets, and each stage's identity."""
        last = self.stage_plans[-1].metadata
        chain = " -> ".join(stage.view for stage in self.spec.stages)
        identity = {k: last.get(k) for k in MODEL_IDENTITY_KEYS}
        identity.update(
            {
                "path": self.directory,
                "role": "cascade",
                "preset": " -> ".join(str(p.metadata.get("preset")) for p in self.stage_plans),
                "view": chain,
                "serving_view": chain,
                "cascade": {
                    "rule": self.spec.rule.name,
                    "thresholds": list(self.spec.thresholds),
                    "stages": [stage.to_dict() for stage in self.spec.stages],
                },
            }
        )
        return identity


def plan_cascade(directory: str, inputs: list[str]) -> CascadePlan:
    directory = directory.rstrip("/")
    try:
        spec = C.read_cascade(directory)
    except C.CascadeError as error:
        raise ScoringError(str(error)) from None
    plans = []
    for i, stage in enumerate(spec.stages):
        export_dir, metadata = resolve_export(C.stage_dir(directory, stage), subdirs=())
        recorded = {k: stage.model.get(k) for k in ("serving_view", "weights_sha256", "num_classes")}
        found = {k: metadata.get(k) for k in recorded}
        if found != recorded or metadata.get("serving_view") != stage.view:
            raise ScoringError(
                f"stage {i} in {export_dir} is not the export {C.CASCADE_FILE} names "
                f"(recorded {recorded}, found {found})"
            )
        plans.append((export_dir, metadata))
    try:
        C.check_same_space([metadata for _, metadata in plans])
    except C.CascadeError as error:
        raise ScoringError(str(error)) from None
    read_plan = plan_scoring(plans[-1][0], inputs)
    if read_plan.kind != F.FRAME_LEVEL:
        raise ScoringError("a cascade scores frame-level input; the input is video-level")
    row_view = View(ALL) if read_plan.frames == WHOLE_VIDEOS else read_plan.view
    codes = read_plan.source == RAW and not read_plan.segments
    if codes:
        # Raw records are parsed once, to the frames' uint8 codes (bytes reinterpreted, no
        # arithmetic); a stage dequantizes only its own view of the videos still running.
        # (Segments are scored from the rows' frames as they are: those stay float32.)
        config = dataclasses.replace(read_plan.parse_config, frame_dtype="uint8")
        read_plan = dataclasses.replace(read_plan, parse_config=config)
    stage_plans = tuple(
        dataclasses.replace(
            read_plan, export_dir=export_dir, metadata=metadata, frames=VIEW_FRAMES, segments=False
        )
        for export_dir, metadata in plans
    )
    return CascadePlan(directory, spec, read_plan, stage_plans, row_view, codes)


def stage_frames(row: dict, columns: dict[str, str], row_view: View, view: View) -> dict:
    """A row's frames of `view`, cut by index from the frames of `row_view` it holds."""
    n = int(row[F.NUM_FRAMES])
    held = row_view.frame_indices(n)
    positions = np.searchsorted(held, view.frame_indices(n))
    return {feature: np.asarray(row[column])[positions] for feature, column in columns.items()}


class CascadeStageHandler(ExportModelHandler):
    """Stage `stage` of a cascade: rows -> PredictionResult(row, outcome), where outcome
    holds the video's compact record (`VIDEO_SCHEMA`, if it exits here), whether it exits,
    its top classes at the fit's k and its share of the batch's model time."""

    def __init__(self, cascade: CascadePlan, stage: int, top_k: int = DEFAULT_TOP_K, **batching):
        super().__init__(cascade.stage_plans[stage].export_dir, **batching)
        self._cascade, self._stage, self._top_k = cascade, stage, top_k

    def run_inference(self, batch, model, inference_args=None):
        cascade, stage = self._cascade, self._stage
        plan = cascade.stage_plans[stage]
        spec = cascade.spec
        views = cascade.views
        columns = cascade.read_plan.frame_columns()
        cut = [
            {F.ID: row[F.ID], **stage_frames(row, columns, cascade.row_view, views[stage])} for row in batch
        ]
        if cascade.codes:
            cut = [{k: v if k == F.ID else dequantize(v) for k, v in row.items()} for row in cut]
        inputs, lengths, frames_read = model_frames(plan, cut)
        start = time.perf_counter()
        outputs = model.score_view(inputs, lengths)
        share = (time.perf_counter() - start) / len(batch)
        predictions = outputs["predictions"]
        labels = [class_labels(row[F.LABELS], plan.entity_to_class) for row in batch]
        shown = score_videos(predictions, labels, self._top_k)
        decide = shown if spec.top_k == self._top_k else score_videos(predictions, labels, spec.top_k)
        paid = np.array([C.frames_paid(views, int(row[F.NUM_FRAMES]))[stage] for row in batch])
        before = np.array(
            [C.frames_paid(views, int(row[F.NUM_FRAMES]))[stage - 1] if stage else 0 for row in batch]
        )
        if stage == len(views) - 1:
            exits = np.ones(len(batch), dtype=bool)
        else:
            previous = np.array([row[PREVIOUS_CLASSES] for row in batch]) if stage else None
            scores = spec.rule.scores(stage, decide.classes, decide.scores, paid, previous)
            threshold = spec.thresholds[stage]
            exits = np.zeros(len(batch), dtype=bool) if threshold is None else scores >= threshold
        results = []
        for i, row in enumerate(batch):
            seconds = float(row.get(SECONDS_SO_FAR, 0.0)) + share
            outcome = {
                "exit": bool(exits[i]),
                "classes": decide.classes[i],
                "seconds": seconds,
                "stats": (stage, bool(exits[i]), int(frames_read[i]), int(paid[i] - before[i]), share),
            }
            if exits[i]:
                outcome["record"] = {
                    "id": row[F.ID],
                    "labels": labels[i].astype(np.int32).tolist(),
                    "top_classes": shown.classes[i].tolist(),
                    "top_scores": shown.scores[i].astype(np.float32).tolist(),
                    "perr": float(shown.perr[i]),
                    "num_frames": int(row[F.NUM_FRAMES]),
                    "frames_read": int(paid[i]),
                    "model_seconds": seconds,
                }
            results.append(PredictionResult(row, outcome))
        return results


class _Route(beam.DoFn):
    """A stage's outcome -> the exiting video's record, or the row going on (tagged `running`)."""

    def process(self, keyed):
        _, result = keyed
        outcome = result.inference
        yield beam.pvalue.TaggedOutput(STATS, outcome["stats"])
        if outcome["exit"]:
            yield outcome["record"]
            return
        row = VideoRow(result.example)
        row[PREVIOUS_CLASSES] = np.asarray(outcome["classes"])
        row[SECONDS_SO_FAR] = outcome["seconds"]
        yield beam.pvalue.TaggedOutput("running", row)


class ScoreCascade(beam.PTransform):
    """Rows -> `scored` (one record per video, from the stage it exited at), `failed` (one
    dead letter per video of a batch a stage could not score) and `stats` (per video per
    stage entered, for `CascadeStatsFn`)."""

    def __init__(
        self, cascade: CascadePlan, top_k: int = DEFAULT_TOP_K, min_batch_size=64, max_batch_size=256
    ):
        super().__init__()
        self._cascade, self._top_k = cascade, top_k
        self._batching = {"min_batch_size": min_batch_size, "max_batch_size": max_batch_size}

    def expand(self, rows):
        cascade = self._cascade
        keep = {F.ID, F.LABELS, F.NUM_FRAMES, *cascade.read_plan.frame_columns().values()}
        running = rows | "KeepColumns" >> beam.Map(
            lambda row: VideoRow({k: v for k, v in row.items() if k in keep})
        ).with_output_types(VideoRow)
        scored, failed, stats = [], [], []
        for stage in range(len(cascade.stage_plans)):
            name = f"Stage{stage}"
            handler = CascadeStageHandler(cascade, stage, self._top_k, **self._batching)
            main, other = (
                running
                | f"{name}Key" >> beam.Map(lambda row: (row[F.ID], row))
                | f"{name}Inference" >> RunInference(KeyedModelHandler(handler)).with_exception_handling()
            )
            failed.append(other.failed_inferences | f"{name}FailedBatches" >> beam.FlatMap(_failed_batch))
            routed = main | f"{name}Route" >> beam.ParDo(_Route()).with_outputs(
                STATS, "running", main="scored"
            )
            scored.append(routed.scored)
            stats.append(routed[STATS])
            running = routed.running
        return {
            "scored": tuple(scored) | "AllExits" >> beam.Flatten(),
            "failed": tuple(failed) | "AllStageFailures" >> beam.Flatten(),
            "stats": tuple(stats) | "AllStageStats" >> beam.Flatten(),
        }


class CascadeStatsFn(beam.CombineFn):
    """Per stage: videos entering and exiting, frames its model read, frames its view
    added (read for the first time), model seconds."""

    def __init__(self, num_stages: int):
        self._num_stages = num_stages

    def create_accumulator(self):
        return [[0, 0, 0, 0, 0.0] for _ in range(self._num_stages)]

    def add_input(self, acc, stat):
        stage, exited, model_frames_read, new_frames, seconds = stat
        entry = acc[stage]
        entry[0] += 1
        entry[1] += int(exited)
        entry[2] += model_frames_read
        entry[3] += new_frames
        entry[4] += seconds
        return acc

    def merge_accumulators(self, accs):
        merged = self.create_accumulator()
        for acc in accs:
            for stage, entry in enumerate(acc):
                merged[stage] = [a + b for a, b in zip(merged[stage], entry, strict=True)]
        return merged

    def extract_output(self, acc):
        return [
            {
                "stage": stage,
                "videos_entering": entering,
                "videos_exiting": exiting,
                "model_frames_read": model_frames_read,
                "new_frames_read": new_frames,
                "model_seconds": seconds,
            }
            for stage, (entering, exiting, model_frames_read, new_frames, seconds) in enumerate(acc)
        ]
