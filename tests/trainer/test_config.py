"""The run's configuration: JSON round trip, validation, and what a resume may change."""

import json

import pytest

from trainer.config import (
    CATEGORICAL_KL,
    CONFIG_VERSION,
    LossConfig,
    ModelChoice,
    TrainConfig,
    UsageError,
)
from trainer.models import ModelSpec, get_preset


def _student(**fields):
    return TrainConfig(**{"train": "ds", "job_dir": "j", "student": ModelChoice("mean-moe-small"), **fields})


def test_a_full_config_round_trips_through_json_with_its_nested_choices():
    config = TrainConfig(
        train="gs://b/ds",
        job_dir="gs://b/job",
        mode="parallel",
        eval="gs://b/eval",
        teacher=ModelChoice("hlstm-small", {"units": 16}),
        student=ModelChoice("dbof-small", {}, {"num_mixtures": 3}),
        view="uniform:8",
        features=("rgb",),
        clipnorm=2.5,
        loss=LossConfig(0.5, 2.0, 0.0, CATEGORICAL_KL),
        max_steps_per_epoch=7,
    )
    text = config.to_json()
    data = json.loads(text)
    assert data["config_version"] == CONFIG_VERSION and data["features"] == ["rgb"]
    assert data["loss"] == {
        "ce_weight": 0.5,
        "rep_weight": 2.0,
        "pred_weight": 0.0,
        "prediction_loss": "categorical_kl",
    }
    back = TrainConfig.from_json(text)
    assert back == config and isinstance(back.teacher, ModelChoice) and back.features == ("rgb",)
    assert back.to_json() == text


def test_a_config_of_another_version_is_refused():
    data = _student().to_dict()
    data["config_version"] = 99
    with pytest.raises(
        ValueError, match=f"config version 99 is not supported \\(this is {CONFIG_VERSION}\\)"
    ):
        TrainConfig.from_dict(data)
    del data["config_version"]
    with pytest.raises(ValueError, match="config version None is not supported"):
        TrainConfig.from_dict(data)


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"mode": "distill"}, "unknown mode 'distill'"),
        ({"mode": "teacher", "student": None}, "--mode teacher needs --teacher NAME"),
        ({"student": None}, "--mode student needs --student NAME"),
        ({"mode": "serial"}, "--mode serial needs --teacher-dir"),
        ({"teacher_dir": "t"}, "--teacher-dir is only used by --mode serial"),
        ({"targets": "ds"}, "--targets feeds --mode serial only"),
        ({"mode": "serial", "targets": "other"}, "--targets is the training dataset; drop --train"),
        ({"label_space": "genres"}, "unknown label space 'genres'"),
        ({"label_space": "verticals"}, "--label-space verticals needs --vocabulary"),
        ({"features": ("rgb", "rgb")}, "--features must be a non-empty subset of rgb,audio"),
        ({"features": ()}, "--features must be a non-empty subset"),
        ({"view": "every_n:0"}, "view every_n needs a positive number, got 0"),
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"export_top_k": 0}, "export_top_k must be >= 1"),
        ({"max_steps_per_epoch": 0}, "max_steps_per_epoch must be >= 1"),
        ({"learning_rate": float("inf")}, "learning_rate must be a finite number >= 0, not inf"),
        ({"clipnorm": -1.0}, "clipnorm must be a finite number > 0, not -1.0"),
        ({"input_format": "csv"}, "--input-format must be auto, tfrecord or parquet"),
        ({"mixed_precision": "yes"}, "--mixed-precision must be auto, on or off"),
    ],
)
def test_an_invalid_config_is_refused_naming_the_setting(fields, message):
    with pytest.raises(ValueError, match=message):
        _student(**fields)


def test_loss_weights_must_be_non_negative_and_the_prediction_loss_known():
    assert LossConfig() == LossConfig(1.0, 1.0, 1.0, "bernoulli_kl")  # the paper: unweighted terms
    with pytest.raises(ValueError, match="rep_weight must be >= 0"):
        LossConfig(rep_weight=-0.1)
    with pytest.raises(
        ValueError, match="unknown prediction loss 'kl'; expected one of bernoulli_kl, mse, categorical_kl"
    ):
        LossConfig(prediction_loss="kl")
    LossConfig(0.0, 0.0, 0.0)


def test_a_model_choice_overrides_single_fields_of_its_preset():
    spec = ModelChoice("dbof-small", {"cluster_size": 16}, {"num_mixtures": 4}).spec()
    base = get_preset("dbof-small")
    assert spec == ModelSpec(
        "dbof", "moe", {**base.aggregator_params, "cluster_size": 16}, {**base.head_params, "num_mixtures": 4}
    )
    assert base.aggregator_params["cluster_size"] == 64  # the preset itself is unchanged
    with pytest.raises(ValueError, match="unknown model preset 'nope'"):
        ModelChoice("nope").spec()


def test_differences_ignore_what_a_resume_may_change_and_other_spellings_of_a_local_path(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ds").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "ds")
    config = _student(train="ds")
    assert (
        config.differences(_student(train=str(tmp_path / "ds"), job_dir="elsewhere", epochs=9, eval="e"))
        == []
    )
    assert config.differences(_student(train="./link/")) == []
    assert config.differences(_student(train="other", seed=3, batch_size=2)) == [
        "batch_size",
        "seed",
        "train",
    ]
    # A remote path is compared by its spelling.
    assert _student(train="gs://b/ds").differences(_student(train="gs://b/ds/")) == ["train"]


def test_a_usage_error_is_a_value_error_so_every_command_reports_it_in_one_line():
    assert issubclass(UsageError, ValueError)
    with pytest.raises(ValueError, match="^bad flag$"):
        raise UsageError("bad flag")
