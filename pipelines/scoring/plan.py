"""Scoring a partition with an exported model: what `evaluate` and `predict` share.

`plan_scoring` checks, before any work, that the input fits the model (kind, class
count, view, features) and decides how rows reach it:

- raw shards: read with the preprocessing's damage-tolerant reader, parsed and
  validated in batches by the same `RecordParser` (so a malformed record becomes a
  dead-letter record with its reason, never a failed batch), the model's view cut
  while parsing, frames dequantized to float32; scored through `score_view`;
- a preprocessed dataset (Parquet, else TFRecord): its rows as stored; frames already
  in the model's view go through `score_view`, whole videos (the dataset's full view)
  through `score_frames`, which cuts the view in the graph.

`ReadVideos` yields rows and failures; `ScoreVideos` runs Beam's RunInference with a
keyed `VideoScoringHandler` and yields one compact record per video
(`evaluation_outputs.VIDEO_SCHEMA`: top-k classes and scores, labels in the model's
class space, PERR, frames read, model time), never the full score vector.
"""

from __future__ import annotations

import dataclasses
import json

from apache_beam.io.filesystems import FileSystems

from pipelines.records import read
from pipelines.records.parse import ParseConfig
from schemas import features as F
from schemas import raw
from schemas.preprocessed import MANIFEST_NAME, PARQUET, SHARD_PREFIX, TFRECORD, DatasetLayout
from schemas.views import ALL, View
from trainer.export import METADATA_NAME
from trainer.job_dir import EXPORT_DIR

RAW = "raw"
DATASET = "dataset"

# How frames reach the model.
VIEW_FRAMES = "view"  # rows hold the model's view: score_view
WHOLE_VIDEOS = "whole"  # rows hold every frame (a dataset's full view): score_frames cuts the view
VIDEO_VECTORS = "video"  # video-level features

STAGE_SCORE = "score"


# What names an export's model in a run's outputs (from its metadata).
MODEL_IDENTITY_KEYS = (
    "role",
    "preset",
    "kind",
    "view",
    "serving_view",
    "features",
    "label_space",
    "num_classes",
    "num_entities",
    "vocabulary_sha256",
    "mode",
    "job_dir",
    "top_k",
    "training_data",
    "frame_dtype",
)


class ScoringError(ValueError):
    """The model and the input do not fit, or one of them is not what it claims."""


class InvalidExport(ScoringError):
    """An export that is damaged or whose metadata file disagrees with its graph."""


@dataclasses.dataclass(frozen=True)
class ScoringPlan:
    export_dir: str
    metadata: dict
    source: str  # RAW or DATASET
    kind: str
    patterns: tuple[str, ...]  # raw globs, or the dataset directory
    files: tuple[str, ...]
    input_bytes: int
    frames: str  # VIEW_FRAMES, WHOLE_VIDEOS or VIDEO_VECTORS
    segments: bool
    parse_config: ParseConfig | None = None  # raw input
    layout: DatasetLayout | None = None  # dataset input
    dataset_format: str | None = None

    @property
    def view(self) -> View | None:
        return View.parse(self.metadata["serving_view"]) if self.kind == F.FRAME_LEVEL else None

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(self.metadata["features"])

    @property
    def num_classes(self) -> int:
        return int(self.metadata["num_classes"])

    @property
    def num_entities(self) -> int:
        return int(self.metadata.get("num_entities") or self.metadata["num_classes"])

    @property
    def entity_to_class(self) -> tuple[int, ...] | None:
        mapping = self.metadata.get("entity_to_class")
        return None if mapping is None else tuple(mapping)

    def frame_columns(self) -> dict[str, str]:
        """Model feature -> the row column its frames come from."""
        if self.frames == WHOLE_VIDEOS:
            return {f: F.full_view_column(f) for f in self.features}
        if self.frames == VIDEO_VECTORS:
            return {f: F.MEAN_FEATURE_OF[f] for f in self.features}
        return {f: f for f in self.features}

    def identity(self) -> dict:
        """The input's identity for metrics.json."""
        return {
            "source": self.source,
            "kind": self.kind,
            "patterns": list(self.patterns),
            "files": len(self.files),
            "bytes": self.input_bytes,
            "frames": self.frames,
            "dataset_format": self.dataset_format,
        }

    def model_identity(self, extra_keys: tuple[str, ...] = ()) -> dict:
        """The export's identity for metrics.json (`path` + MODEL_IDENTITY_KEYS + `extra_keys`)."""
        keys = MODEL_IDENTITY_KEYS + extra_keys
        return {"path": self.export_dir, **{k: self.metadata.get(k) for k in keys}}


# ----- planning ----------------------------------------------------------------------------
def resolve_export(model: str, subdirs: tuple[str, ...] = (EXPORT_DIR,)) -> tuple[str, dict]:
    """An export directory (or a job dir holding one of `subdirs`) and its metadata, as
    its graph's `metadata` signature gives it (`trainer.export.verified_metadata`)."""
    from trainer.export import verified_metadata

    model = model.rstrip("/")
    for candidate in (model, *(FileSystems.join(model, d) for d in subdirs)):
        path = FileSystems.join(candidate, METADATA_NAME)
        if FileSystems.exists(path):
            try:
                return candidate, verified_metadata(candidate)
            except ValueError as error:
                raise InvalidExport(str(error)) from None
    raise ScoringError(
        f"--model {model} is neither a fewframes export nor a training job dir with export/ "
        f"(no {METADATA_NAME})"
    )


def plan_scoring(model: str, inputs: list[str]) -> ScoringPlan:
    """Check that `inputs` fit the model and decide how to read and score them."""
    export_dir, metadata = resolve_export(model)
    if len(inputs) == 1 and FileSystems.exists(FileSystems.join(inputs[0].rstrip("/"), MANIFEST_NAME)):
        return plan_dataset(export_dir, metadata, inputs[0].rstrip("/"))
    return _plan_raw(export_dir, metadata, inputs)


def _check_kind(metadata: dict, kind: str, what: str) -> None:
    if metadata["kind"] != kind:
        raise ScoringError(f"the model is {metadata['kind']}-level but {what} is {kind}-level")


CLASS_CHECK_RECORDS = 64  # leading raw records whose labels are checked against the model's classes


def _check_class_space(records: list[bytes], num_entities: int, metadata: dict) -> None:
    """Refuse raw input whose first labelled records mostly carry labels the model has no
    class for (other data, or another release's class ids): every such video would be
    dead-lettered and the rest scored as if nothing were wrong. A few bad labels among
    them are left to the dead letters and --max-failed-fraction."""
    labelled, outside = 0, []
    for record in records:
        parsed = raw.id_and_labels(record)
        if parsed is None or not parsed[1]:
            continue
        labelled += 1
        bad = [label for label in parsed[1] if not 0 <= label < num_entities]
        if bad:
            outside.append((parsed[0], bad[0]))
    if outside and 2 * len(outside) > labelled:
        video_id, label = outside[0]
        raise ScoringError(
            f"the input is not in the model's class space: {len(outside)} of the first {labelled} labelled "
            f"records have labels outside the model's {num_entities} classes (label space "
            f"{metadata.get('label_space') or 'classes'}; video {video_id!r} has label {label})"
        )


def _plan_raw(export_dir: str, metadata: dict, patterns: list[str]) -> ScoringPlan:
    try:
        files = read.match_inputs(patterns)
        paths = [m.path for m in files]
        first = read.first_record(paths)
        kind = raw.detect_kind(first)
        leading = read.leading_records(paths, CLASS_CHECK_RECORDS)
        # Whether any shard is segment-rated, from the first record of each.
        shard_firsts = read.first_record_of_each(paths) if kind == F.FRAME_LEVEL else []
    except (ValueError, OSError) as error:
        raise ScoringError(str(error)) from None
    _check_kind(metadata, kind, "the input")
    num_entities = int(metadata.get("num_entities") or metadata["num_classes"])
    _check_class_space(leading, num_entities, metadata)
    segments = any(raw.has_segments(record) for record in shard_firsts)
    view = View.parse(metadata["serving_view"]) if kind == F.FRAME_LEVEL else None
    config = ParseConfig(
        kind=kind,
        num_classes=num_entities,
        view=view,
        frame_dtype="float32",
        # Segments are scored on their own frames, which the view may have dropped.
        teacher_view=segments and view.kind != ALL,
        segments=segments,
    )
    return ScoringPlan(
        export_dir=export_dir,
        metadata=metadata,
        source=RAW,
        kind=kind,
        patterns=tuple(patterns),
        files=tuple(m.path for m in files),
        input_bytes=sum(m.size_in_bytes for m in files),
        frames=VIEW_FRAMES if kind == F.FRAME_LEVEL else VIDEO_VECTORS,
        segments=segments,
        parse_config=config,
    )


def plan_dataset(export_dir: str, metadata: dict, dataset: str) -> ScoringPlan:
    with FileSystems.open(FileSystems.join(dataset, MANIFEST_NAME)) as stream:
        manifest = json.loads(stream.read())
    layout = DatasetLayout.from_dict(manifest["schema"])
    _check_kind(metadata, layout.kind, f"dataset {dataset}")
    num_entities = int(metadata.get("num_entities") or metadata["num_classes"])
    if int(manifest["num_classes"]) != num_entities:
        raise ScoringError(
            f"dataset {dataset} has {manifest['num_classes']} classes but the model was trained on "
            f"{num_entities}"
        )
    frames = VIDEO_VECTORS
    if layout.kind == F.FRAME_LEVEL:
        view = View.parse(metadata["serving_view"])
        if layout.view == str(view):
            frames = VIEW_FRAMES
        elif layout.teacher_view:
            frames = WHOLE_VIDEOS
        else:
            raise ScoringError(
                f"dataset {dataset} stores view {layout.view} without the full view, and the model "
                f"reads {view}: preprocess with --view {view} or --teacher-view"
            )
    fmt = PARQUET if PARQUET in manifest.get("formats", [PARQUET]) else TFRECORD
    matched = FileSystems.match([FileSystems.join(dataset, fmt, SHARD_PREFIX + "-*")])[0].metadata_list
    if not matched:
        raise ScoringError(f"dataset {dataset} has no {fmt} files")
    files = sorted(matched, key=lambda m: m.path)
    return ScoringPlan(
        export_dir=export_dir,
        metadata=metadata,
        source=DATASET,
        kind=layout.kind,
        patterns=(dataset,),
        files=tuple(m.path for m in files),
        input_bytes=sum(m.size_in_bytes for m in files),
        frames=frames,
        # Segments are scored on their own frames: the full view, or a view keeping all.
        segments=layout.segments and (layout.teacher_view or layout.view == ALL),
        layout=layout,
        dataset_format=fmt,
    )
