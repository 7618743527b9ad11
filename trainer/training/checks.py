"""What a training run refuses before any work, each in one line (exit 2): an epoch with
no step, a teacher dir that trained no teacher or another setting, offline targets of
another teacher, evaluation data of another z-score, a job dir of another configuration.
"""

from __future__ import annotations

import json

from trainer import storage
from trainer.config import (
    PARALLEL,
    TEACHER,
    TrainConfig,
    UsageError,
)
from trainer.job_dir import CONFIG_NAME, weights_file, weights_info_file


def check_epoch_has_steps(plan, config: TrainConfig) -> None:
    """Refuse, before any work, a run whose epochs would train no step (it would export an
    untrained model): training drops the last partial batch."""
    from trainer import inputs as I

    if plan.num_videos == 0:
        raise UsageError(f"{config.train} holds no videos: nothing to train on")
    if I.steps_per_epoch(plan, config.batch_size) == 0:
        raise UsageError(
            f"--batch-size {config.batch_size} is larger than the {plan.num_videos} videos of "
            f"{config.train}: an epoch would train no step (the last partial batch is dropped); "
            f"use --batch-size {plan.num_videos} or less"
        )


def read_teacher_config(config: TrainConfig) -> TrainConfig:
    path = storage.join(config.teacher_dir, CONFIG_NAME)
    if not storage.exists(path):
        raise UsageError(f"--teacher-dir {config.teacher_dir} has no {CONFIG_NAME}: not a training job dir")
    teacher_config = TrainConfig.from_json(storage.read_text(path))
    if teacher_config.mode not in (TEACHER, PARALLEL):
        raise UsageError(
            f"--teacher-dir {config.teacher_dir} trained no teacher (mode {teacher_config.mode})"
        )
    if not storage.exists(weights_file(config.teacher_dir, "teacher")):
        raise UsageError(
            f"--teacher-dir {config.teacher_dir} has no finished teacher (weights/teacher.weights.h5)"
        )
    return teacher_config


def check_teacher_matches(config: TrainConfig, teacher_config: TrainConfig) -> None:
    for field in ("features", "label_space"):
        if getattr(config, field) != getattr(teacher_config, field):
            raise UsageError(
                f"the teacher in {config.teacher_dir} was trained with {field}="
                f"{getattr(teacher_config, field)}, this run asks for {getattr(config, field)}"
            )


def check_targets_teacher(config: TrainConfig, manifest: dict) -> None:
    """--teacher-dir with --targets: the targets must come from that teacher's weights."""
    saved = json.loads(storage.read_text(weights_info_file(config.teacher_dir, "teacher")))
    mine = saved.get("weights_sha256")
    theirs = manifest.get("teacher", {}).get("weights_sha256")
    if mine != theirs or mine is None:
        raise UsageError(
            f"the targets in {config.targets} were computed by another teacher "
            f"({manifest.get('teacher', {}).get('export')}, weights {str(theirs)[:12]}) than the one in "
            f"--teacher-dir {config.teacher_dir} (weights {str(mine)[:12]})"
        )


def check_same_zscore(train, evaluation) -> None:
    import numpy as np

    from trainer.inputs import InputMismatch

    if (train is None) != (evaluation is None) or (
        train is not None
        and not all(np.allclose(a, b, rtol=1e-6, atol=1e-6) for a, b in zip(train, evaluation, strict=True))
    ):
        raise InputMismatch(
            "the eval dataset's normalization differs from the training dataset's: preprocess it with "
            "--transform-from <train dataset dir>"
        )


def write_or_check_config(config: TrainConfig, chief: bool) -> None:
    path = storage.join(config.job_dir, CONFIG_NAME)
    if storage.exists(path):
        previous = TrainConfig.from_json(storage.read_text(path))
        differences = config.differences(previous)
        if differences:
            raise UsageError(
                f"{config.job_dir} holds a run with other settings ({', '.join(differences)}); "
                "use a new --job-dir to start a different run"
            )
    if chief:
        storage.makedirs(config.job_dir)
        storage.write_text(path, config.to_json())
