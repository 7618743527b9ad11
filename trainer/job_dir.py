"""Every file and folder name of a training job dir, once.

    config.json        the resolved configuration (a rerun must match it)
    train.lock         while a training runs: host, pid (one training per job dir)
    checkpoints/       state.json and the two newest ckpt-NNNNNNNNN.weights.h5
    logs/              TensorBoard
    weights/           each trained role's final weights and what rebuilding them needs
    summary.json       what the finished run measured
    export/            the SavedModel the job produced (the student; the teacher in teacher mode)
    export_teacher/    parallel mode's teacher

Everything that reads or writes a job dir (the trainer, `teacher-targets`, the scoring
jobs, the demo) takes the names from here.
"""

from __future__ import annotations

from trainer import storage
from trainer.config import UsageError

CONFIG_NAME = "config.json"
LOCK_NAME = "train.lock"
CHECKPOINTS_DIR = "checkpoints"
CHECKPOINT_STATE_NAME = "state.json"  # in the checkpoint dir: the kept checkpoints, newest last
LOGS_DIR = "logs"
WEIGHTS_DIR = "weights"
SUMMARY_NAME = "summary.json"
EXPORT_DIR = "export"
TEACHER_EXPORT_DIR = "export_teacher"


def job_dirs(job_dir: str | None, environ) -> tuple[str, str]:
    """(job dir, checkpoint dir): flags first, then Vertex AI's AIP_* variables."""
    job_dir = job_dir or environ.get("AIP_MODEL_DIR")
    if not job_dir:
        raise UsageError("--job-dir is required (or run where AIP_MODEL_DIR is set)")
    checkpoints = environ.get("AIP_CHECKPOINT_DIR") or storage.join(job_dir, CHECKPOINTS_DIR)
    return job_dir, checkpoints


def weights_file(job_dir: str, role: str) -> str:
    """A finished job's final weights of `role` ("teacher" or "student")."""
    return storage.join(job_dir, WEIGHTS_DIR, f"{role}.weights.h5")


def weights_info_file(job_dir: str, role: str) -> str:
    """What rebuilding those weights needs: label space, input width, fingerprint."""
    return storage.join(job_dir, WEIGHTS_DIR, f"{role}.json")
