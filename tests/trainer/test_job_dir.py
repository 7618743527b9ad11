"""The job dir's names: where the job and checkpoint dirs come from, where weights live."""

import os

import pytest

from trainer import task
from trainer.job_dir import CHECKPOINTS_DIR, WEIGHTS_DIR, job_dirs, weights_file, weights_info_file


def test_vertex_ai_environment_supplies_the_job_and_checkpoint_dirs():
    assert job_dirs(None, {"AIP_MODEL_DIR": "gs://b/model", "AIP_CHECKPOINT_DIR": "gs://b/ckpt"}) == (
        "gs://b/model",
        "gs://b/ckpt",
    )
    assert job_dirs("/tmp/j", {}) == ("/tmp/j", os.path.join("/tmp/j", "checkpoints"))
    with pytest.raises(task.UsageError, match="--job-dir"):
        job_dirs(None, {})


def test_the_job_dir_flag_wins_over_vertex_ais_model_dir():
    assert job_dirs("/flag/j", {"AIP_MODEL_DIR": "gs://b/model"}) == ("/flag/j", "/flag/j/checkpoints")


def test_a_vertex_model_dir_without_a_checkpoint_dir_keeps_checkpoints_inside_it():
    assert job_dirs(None, {"AIP_MODEL_DIR": "gs://b/model/"}) == ("gs://b/model/", "gs://b/model/checkpoints")
    assert CHECKPOINTS_DIR == "checkpoints"


def test_weights_and_their_description_sit_side_by_side_under_weights_for_each_role():
    assert weights_file("/j", "teacher") == os.path.join("/j", WEIGHTS_DIR, "teacher.weights.h5")
    assert weights_info_file("/j", "student") == os.path.join("/j", "weights", "student.json")
    # A gs:// job dir is joined with "/" whatever the local separator is.
    assert weights_file("gs://b/j/", "student") == "gs://b/j/weights/student.weights.h5"
