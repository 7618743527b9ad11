"""Eval-time metrics during training: every video of the eval set, each trained role's own
predictions, either reader, and the `val_<role>_<metric>` logs."""

import keras
import numpy as np
import pytest

from schemas.views import View
from trainer import inputs as I
from trainer.config import ModelChoice
from trainer.distill import STUDENT_PREDICTIONS, TEACHER_PREDICTIONS, DistillationModel, FramesClassifier
from trainer.labels import LabelSpace
from trainer.metrics import MetricsAccumulator
from trainer.training.evaluation import REPORTED, EvalCallback, evaluate

CLASSES = 8


@pytest.fixture(scope="module")
def parallel_model():
    """An untrained parallel-mode model: a DBoF teacher and a mean-pooling student."""
    keras.utils.set_random_seed(3)
    teacher = FramesClassifier(ModelChoice("dbof-small").spec(), CLASSES, 1152).build_on(60)
    student = FramesClassifier(ModelChoice("mean-moe-small").spec(), CLASSES, 1152).build_on(15)
    model = DistillationModel("parallel", teacher, student, projection_dim=teacher.representation_dim)
    return model.build_on(15)


@pytest.fixture(scope="module")
def plan(tiny_frame_dataset):
    label_space = LabelSpace.build("entities", CLASSES, None)
    return I.plan_inputs(
        str(tiny_frame_dataset), "parallel", View.parse("every_n:4"), ("rgb", "audio"), label_space
    )


def _reference(model, plan):
    """Each role's metrics from the model called once on the whole eval set."""
    (x, y), *rest = list(I.numpy_batches(plan, plan.num_videos))
    assert rest == []
    outputs = model(x, training=False)
    return {
        role: MetricsAccumulator(CLASSES, 20)
        .add_batch(np.asarray(keras.ops.convert_to_numpy(outputs[key]), np.float32), y)
        .result()
        for role, key in (("teacher", TEACHER_PREDICTIONS), ("student", STUDENT_PREDICTIONS))
    }


@pytest.mark.parametrize("fmt", ["parquet", "tfrecord"])
def test_evaluate_scores_every_video_with_each_roles_own_predictions(parallel_model, plan, fmt):
    metrics = evaluate(parallel_model, plan, fmt, batch_size=16)  # batches of 16, 16 and 8
    expected = _reference(parallel_model, plan)
    assert set(metrics) == {"teacher", "student"}
    for role in ("teacher", "student"):
        assert metrics[role]["num_videos"] == 40
        for name in ("gap", "hit_at_1", "perr", "map_nonempty_classes", "num_positives"):
            assert metrics[role][name] == pytest.approx(expected[role][name], rel=1e-5, abs=1e-6), (
                role,
                name,
            )
    assert metrics["teacher"]["gap"] != pytest.approx(metrics["student"]["gap"])  # two models, not one twice


def test_a_student_only_model_reports_the_student_alone(plan):
    keras.utils.set_random_seed(4)
    student = FramesClassifier(ModelChoice("mean-moe-small").spec(), CLASSES, 1152).build_on(15)
    model = DistillationModel("student", None, student).build_on(15)
    student_plan = I.plan_inputs(
        plan.dataset_dir, "student", View.parse("every_n:4"), plan.features, plan.label_space
    )
    assert set(evaluate(model, student_plan, "parquet", 8)) == {"student"}


def test_the_callback_adds_each_reported_metric_of_each_role_to_the_epoch_logs(parallel_model, plan):
    callback = EvalCallback(plan, "parquet", 16)
    callback.set_model(parallel_model)
    logs = {"loss": 1.5}
    callback.on_epoch_end(0, logs)
    expected = evaluate(parallel_model, plan, "parquet", 16)
    assert callback.last.keys() == expected.keys()
    assert set(logs) == {"loss"} | {
        f"val_{role}_{name}" for role in ("teacher", "student") for name in REPORTED
    }
    for role in ("teacher", "student"):
        for name in REPORTED:
            assert logs[f"val_{role}_{name}"] == pytest.approx(expected[role][name])
            assert isinstance(logs[f"val_{role}_{name}"], float)
    callback.on_epoch_end(1, None)  # Keras may pass no logs: the metrics are still kept
    assert callback.last["student"]["num_videos"] == 40
