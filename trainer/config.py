"""The training run's configuration: typed dataclasses, saved as `config.json`.

A run is fully described by `TrainConfig`; the command line only fills it in. The
saved copy is what `serial` mode reads back to rebuild a teacher, and what a resumed
run checks so that one job dir never mixes two different runs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os

from schemas import features as F
from schemas.views import View


class UsageError(ValueError):
    """A problem with the command line or its inputs, found before any work: every command
    (the Beam jobs, the trainer, compare, demo) reports it in one line and exits 2."""


TEACHER = "teacher"
PARALLEL = "parallel"
SERIAL = "serial"
STUDENT = "student"
MODES = (TEACHER, PARALLEL, SERIAL, STUDENT)
DISTILLATION_MODES = (PARALLEL, SERIAL)

ENTITIES = "entities"
VERTICALS = "verticals"
LABEL_SPACES = (ENTITIES, VERTICALS)

BERNOULLI_KL = "bernoulli_kl"
MSE = "mse"
CATEGORICAL_KL = "categorical_kl"
PREDICTION_LOSSES = (BERNOULLI_KL, MSE, CATEGORICAL_KL)

# Fields holding a path: compared by the file or directory they name, not their spelling.
PATH_FIELDS = ("train", "eval", "teacher_dir", "targets", "vocabulary")
CONFIG_VERSION = 1


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """Weights of the student's loss terms: L = ce·L_CE + rep·L_rep + pred·L_pred.

    The paper ("Efficient Video Classification Using Fewer Frames", Bhardwaj et al.,
    CVPR 2019, Sec. 3) adds the three terms unweighted, so every weight defaults to
    1. L_rep is the squared Euclidean distance between the teacher's and the student's
    final representations divided by their width (so its scale does not grow with the
    width), averaged over the batch; L_pred
    defaults to the per-class Bernoulli KL(teacher || student), which matches the
    sigmoid outputs of a multi-label model; `categorical_kl` is the paper code's
    renormalised-categorical KL, kept for fidelity; `mse` the squared distance of the
    probabilities.
    """

    ce_weight: float = 1.0
    rep_weight: float = 1.0
    pred_weight: float = 1.0
    prediction_loss: str = BERNOULLI_KL

    def __post_init__(self):
        if self.prediction_loss not in PREDICTION_LOSSES:
            raise ValueError(
                f"unknown prediction loss {self.prediction_loss!r}; "
                f"expected one of {', '.join(PREDICTION_LOSSES)}"
            )
        for name in ("ce_weight", "rep_weight", "pred_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")


@dataclasses.dataclass(frozen=True)
class ModelChoice:
    """A model by preset name, with optional overrides of its aggregator/head fields."""

    preset: str
    aggregator_params: dict = dataclasses.field(default_factory=dict)
    head_params: dict = dataclasses.field(default_factory=dict)

    def spec(self):
        from trainer.models import ModelSpec, get_preset

        base = get_preset(self.preset)
        return ModelSpec(
            aggregator=base.aggregator,
            head=base.head,
            aggregator_params={**base.aggregator_params, **self.aggregator_params},
            head_params={**base.head_params, **self.head_params},
        )


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    train: str
    job_dir: str
    mode: str = STUDENT
    eval: str | None = None
    teacher: ModelChoice | None = None
    student: ModelChoice | None = None
    teacher_dir: str | None = None
    targets: str | None = None  # a teacher-targets dataset: serial without running the teacher
    view: str = "every_n:10"
    features: tuple[str, ...] = F.FRAME_FEATURES
    epochs: int = 5
    batch_size: int = 64
    learning_rate: float = 1e-3
    clipnorm: float | None = None  # per variable: global-norm clipping would couple teacher and student
    seed: int = 0
    checkpoint_every: int = 200  # steps
    label_space: str = ENTITIES
    vocabulary: str | None = None
    input_format: str = "auto"
    shuffle_buffer: int = 1024
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    mixed_precision: str = "auto"
    export_top_k: int = 20
    max_steps_per_epoch: int | None = None

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; expected one of {', '.join(MODES)}")
        if self.label_space not in LABEL_SPACES:
            raise ValueError(f"unknown label space {self.label_space!r}; expected one of {LABEL_SPACES}")
        if self.label_space == VERTICALS and not self.vocabulary:
            raise ValueError("--label-space verticals needs --vocabulary (the vocabulary CSV)")
        View.parse(self.view)
        unknown = [f for f in self.features if f not in F.FRAME_FEATURES]
        if unknown or not self.features or len(set(self.features)) != len(self.features):
            raise ValueError(f"--features must be a non-empty subset of {','.join(F.FRAME_FEATURES)}")
        needs_teacher = self.mode in (TEACHER, PARALLEL)
        needs_student = self.mode != TEACHER
        if needs_teacher and self.teacher is None:
            raise ValueError(f"--mode {self.mode} needs --teacher NAME")
        if needs_student and self.student is None:
            raise ValueError(f"--mode {self.mode} needs --student NAME")
        if self.mode == SERIAL and not (self.teacher_dir or self.targets):
            raise ValueError(
                "--mode serial needs --teacher-dir (a trained teacher's job dir) or --targets "
                "(its outputs, from `fewframes teacher-targets`)"
            )
        if self.targets and self.mode != SERIAL:
            raise ValueError("--targets feeds --mode serial only")
        if self.targets and self.train != self.targets:
            raise ValueError("--targets is the training dataset; drop --train")
        if self.mode != SERIAL and self.teacher_dir:
            raise ValueError("--teacher-dir is only used by --mode serial")
        for name in ("epochs", "batch_size", "checkpoint_every", "export_top_k", "shuffle_buffer"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.max_steps_per_epoch is not None and self.max_steps_per_epoch < 1:
            raise ValueError("max_steps_per_epoch must be >= 1 (or unset: the whole epoch)")
        if not (math.isfinite(self.learning_rate) and self.learning_rate >= 0):
            raise ValueError(f"learning_rate must be a finite number >= 0, not {self.learning_rate}")
        if self.clipnorm is not None and not (math.isfinite(self.clipnorm) and self.clipnorm > 0):
            raise ValueError(f"clipnorm must be a finite number > 0, not {self.clipnorm}")
        if self.input_format not in ("auto", "tfrecord", "parquet"):
            raise ValueError("--input-format must be auto, tfrecord or parquet")
        if self.mixed_precision not in ("auto", "on", "off"):
            raise ValueError("--mixed-precision must be auto, on or off")

    @property
    def student_view(self) -> View:
        return View.parse(self.view)

    # ----- JSON ---------------------------------------------------------------
    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["features"] = list(self.features)
        return {"config_version": CONFIG_VERSION, **data}

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        data = dict(data)
        version = data.pop("config_version", None)
        if version != CONFIG_VERSION:
            raise ValueError(f"config version {version} is not supported (this is {CONFIG_VERSION})")
        for role in ("teacher", "student"):
            if data.get(role) is not None:
                data[role] = ModelChoice(**data[role])
        data["loss"] = LossConfig(**data.get("loss", {}))
        data["features"] = tuple(data["features"])
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        return cls.from_dict(json.loads(text))

    def differences(self, other: TrainConfig, ignore=("epochs", "eval", "job_dir")) -> list[str]:
        """Fields that differ, except those a resumed run may change.

        The job dir is the directory holding the saved config, so it is not compared: a job
        dir that was moved (or is spelled another way) resumes. Other paths are the same
        when they are spelled the same or name the same local file (`./ds`, its absolute
        path, a symlink to it).
        """
        mine, theirs = self.to_dict(), other.to_dict()
        return sorted(
            k
            for k in mine
            if k not in ignore
            and mine[k] != theirs.get(k)
            and not (k in PATH_FIELDS and _same_path(mine[k], theirs.get(k)))
        )


def _same_path(a: str | None, b: str | None) -> bool:
    """Two spellings of one local path (resolved against this process's directory)."""
    if a is None or b is None or "://" in a or "://" in b:
        return a == b
    return os.path.realpath(a) == os.path.realpath(b)
