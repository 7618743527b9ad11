"""What a training run refuses before any work: an epoch with no step, a teacher dir that
does not fit, offline targets of another teacher, another z-score, a job dir of another run."""

import dataclasses
import json

import numpy as np
import pytest

from schemas.views import View
from tests.conftest import assert_refused_before_any_work
from trainer import inputs as I
from trainer import task
from trainer.config import ModelChoice, TrainConfig, UsageError
from trainer.inputs import InputMismatch
from trainer.labels import LabelSpace
from trainer.training import checks

SMALL = ["--batch-size", "8", "--verbose", "0"]


def _train(argv):
    return task.train_from_argv(argv, verbose=0)


def _command(dataset, job_dir, *extra):
    return [
        "--train", str(dataset), "--job-dir", str(job_dir), "--view", "every_n:4", *SMALL, *extra,
    ]  # fmt: skip


def _config(job_dir, **fields):
    """A student run's configuration (nothing is read: the checks only compare configs)."""
    base = {"train": "ds", "job_dir": str(job_dir), "student": ModelChoice("mean-moe-small")}
    return TrainConfig(**{**base, **fields})


def _teacher_dir(root, mode="teacher", finished=True, **fields):
    """A job dir as a finished teacher run leaves it: config.json and weights/teacher.*."""
    root.mkdir(parents=True)
    roles = {"teacher": ModelChoice("mean-moe-small"), "student": None}
    if mode != "teacher":
        roles["student"] = ModelChoice("mean-moe-small")
    config = TrainConfig(train="ds", job_dir=str(root), mode=mode, **{**roles, **fields})
    (root / "config.json").write_text(config.to_json())
    if finished:
        (root / "weights").mkdir()
        (root / "weights" / "teacher.weights.h5").write_bytes(b"weights")
        (root / "weights" / "teacher.json").write_text(json.dumps({"weights_sha256": "ab" * 32}))
    return config


# ----- through the command line -------------------------------------------------------------
def test_serial_mode_refuses_a_teacher_of_other_features(tmp_path, tiny_frame_dataset):
    _train(_command(tiny_frame_dataset, tmp_path / "t", "--mode", "teacher", "--teacher", "mean-moe-small",
                    "--epochs", "1", "--features", "rgb"))  # fmt: skip
    with pytest.raises(task.UsageError, match="features"):
        _train(_command(tiny_frame_dataset, tmp_path / "s", "--mode", "serial", "--student", "mean-moe-small",
                        "--teacher-dir", str(tmp_path / "t")))  # fmt: skip


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--batch-size", "41"], "--batch-size 41 is larger than the 40 videos"),
    ],
)
def test_a_run_that_cannot_train_is_refused_before_any_work(tmp_path, tiny_frame_dataset, argv, message,
                                                             capsys):  # fmt: skip
    command = _command(tiny_frame_dataset, tmp_path / "j", "--student", "mean-moe-small", *argv)
    assert_refused_before_any_work(command, tmp_path / "j", message, capsys)


def test_a_job_dir_holding_another_run_is_refused(tmp_path, tiny_frame_dataset):
    base = _command(tiny_frame_dataset, tmp_path / "j", "--mode", "student", "--student", "mean-moe-small",
                    "--epochs", "1")  # fmt: skip
    _train(base)
    with pytest.raises(task.UsageError, match="other settings.*learning_rate"):
        _train(base + ["--learning-rate", "0.5"])


def test_a_job_dir_resumes_under_another_spelling_of_its_paths_and_after_a_move(
    tmp_path, tiny_frame_dataset, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").symlink_to(tiny_frame_dataset.parent)
    args = ["--mode", "student", "--student", "mean-moe-small", "--max-steps-per-epoch", "2"]
    first = _train(_command("data/ds", "./jobs/x", *args, "--epochs", "1"))
    assert first["global_step"] == 2
    # The dataset by its absolute path, the job dir by its absolute path with a trailing slash.
    second = _train(_command(tiny_frame_dataset, f"{tmp_path / 'jobs' / 'x'}/", *args, "--epochs", "2"))
    assert second["outcome"] == "completed" and second["global_step"] == 4
    (tmp_path / "jobs" / "x").rename(tmp_path / "moved")
    third = _train(_command(tiny_frame_dataset, tmp_path / "moved", *args, "--epochs", "3"))
    assert third["outcome"] == "completed" and third["global_step"] == 6
    other = tmp_path / "other"
    other.symlink_to(tiny_frame_dataset)  # resolves to the same files: the same dataset
    _train(_command(other, tmp_path / "moved", *args, "--epochs", "3"))
    # ... and another dataset is still another setting.
    parsed = task.build_parser().parse_args(_command(tmp_path, "moved", *args))
    with pytest.raises(task.UsageError, match=r"other settings \(train\)"):
        checks.write_or_check_config(task.config_from_args(parsed, {})[0], True)


# ----- each check on its own ----------------------------------------------------------------
def test_an_epoch_needs_one_whole_batch_and_an_empty_dataset_is_refused_by_name(tmp_path, tiny_frame_dataset):
    plan = I.plan_inputs(
        str(tiny_frame_dataset), "student", View.parse("every_n:4"), ("rgb", "audio"),
        LabelSpace.build("entities", 8, None),
    )  # fmt: skip
    checks.check_epoch_has_steps(plan, _config(tmp_path, train=str(tiny_frame_dataset), batch_size=40))
    with pytest.raises(UsageError, match="--batch-size 41 is larger than the 40 videos.*use --batch-size 40"):
        checks.check_epoch_has_steps(plan, _config(tmp_path, batch_size=41))
    empty = dataclasses.replace(plan, manifest={**plan.manifest, "videos": 0})
    with pytest.raises(UsageError, match="^ds holds no videos: nothing to train on$"):
        checks.check_epoch_has_steps(empty, _config(tmp_path, batch_size=1))


def test_a_teacher_dir_must_hold_a_finished_teacher_run(tmp_path):
    def serial(teacher_dir):
        return _config(tmp_path / "s", mode="serial", teacher_dir=str(teacher_dir))

    with pytest.raises(UsageError, match="has no config.json: not a training job dir"):
        checks.read_teacher_config(serial(tmp_path / "nothing"))
    _teacher_dir(tmp_path / "student", mode="student", teacher=None)
    with pytest.raises(UsageError, match=r"trained no teacher \(mode student\)"):
        checks.read_teacher_config(serial(tmp_path / "student"))
    _teacher_dir(tmp_path / "unfinished", finished=False)
    with pytest.raises(UsageError, match="has no finished teacher"):
        checks.read_teacher_config(serial(tmp_path / "unfinished"))
    saved = _teacher_dir(tmp_path / "parallel", mode="parallel", seed=7)
    assert checks.read_teacher_config(serial(tmp_path / "parallel")) == saved


def test_a_teacher_of_another_label_space_is_refused_naming_both_settings(tmp_path):
    vocabulary = tmp_path / "vocabulary.csv"
    teacher = _teacher_dir(tmp_path / "t", label_space="verticals", vocabulary=str(vocabulary))
    config = _config(tmp_path / "s", mode="serial", teacher_dir=str(tmp_path / "t"))
    with pytest.raises(UsageError, match="trained with label_space=verticals, this run asks for entities"):
        checks.check_teacher_matches(config, teacher)
    same = _teacher_dir(tmp_path / "same")
    checks.check_teacher_matches(config, same)  # the same features and label space: accepted


def test_offline_targets_must_come_from_the_teacher_dirs_weights(tmp_path):
    _teacher_dir(tmp_path / "t")
    config = _config(tmp_path / "s", mode="serial", teacher_dir=str(tmp_path / "t"), targets="ds")
    checks.check_targets_teacher(config, {"teacher": {"weights_sha256": "ab" * 32}})
    with pytest.raises(
        UsageError, match=r"computed by another teacher \(gs://e/export, weights cdcdcdcdcdcd\)"
    ):
        checks.check_targets_teacher(
            config, {"teacher": {"weights_sha256": "cd" * 32, "export": "gs://e/export"}}
        )
    # Targets that do not say whose they are are refused too.
    with pytest.raises(UsageError, match="another teacher"):
        checks.check_targets_teacher(config, {})
    # ... and so is a teacher dir whose weights carry no fingerprint, even by targets without one.
    (tmp_path / "t" / "weights" / "teacher.json").write_text("{}")
    with pytest.raises(UsageError, match="another teacher"):
        checks.check_targets_teacher(config, {"teacher": {}})


def test_training_and_evaluation_data_must_share_one_zscore():
    mean, std = np.linspace(-1, 1, 4, dtype=np.float32), np.full(4, 0.5, np.float32)
    checks.check_same_zscore(None, None)
    checks.check_same_zscore((mean, std), (mean.copy(), std * (1 + 1e-8)))
    for evaluation in (None, (mean + 1e-3, std)):
        with pytest.raises(InputMismatch, match="--transform-from <train dataset dir>"):
            checks.check_same_zscore((mean, std), evaluation)
    with pytest.raises(InputMismatch):
        checks.check_same_zscore(None, (mean, std))


def test_only_the_chief_writes_the_config_and_a_resume_may_change_the_epochs(tmp_path):
    job = tmp_path / "j"
    checks.write_or_check_config(_config(job), chief=False)
    assert not job.exists()
    checks.write_or_check_config(_config(job), chief=True)
    assert TrainConfig.from_json((job / "config.json").read_text()) == _config(job)
    checks.write_or_check_config(_config(job, epochs=9, eval="other"), chief=True)
    assert TrainConfig.from_json((job / "config.json").read_text()).epochs == 9
    with pytest.raises(UsageError, match=r"other settings \(batch_size, seed\)"):
        checks.write_or_check_config(_config(job, batch_size=3, seed=1), chief=False)
    assert TrainConfig.from_json((job / "config.json").read_text()).batch_size == 64
