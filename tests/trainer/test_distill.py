"""The distillation losses on small known tensors, their weights, and which model each mode trains."""

import keras
import numpy as np
import pytest

from trainer import inputs as I
from trainer.config import BERNOULLI_KL, CATEGORICAL_KL, MSE, LossConfig, ModelChoice
from trainer.distill import (
    CE_EPSILON,
    STUDENT_PREDICTIONS,
    STUDENT_PROJECTION,
    STUDENT_REPRESENTATION,
    TEACHER_PREDICTIONS,
    TEACHER_REPRESENTATION,
    DistillationModel,
    FramesClassifier,
    cross_entropy,
    prediction_distance,
    representation_distance,
)

D, C = 12, 3
LABELS = np.array([[1, 0, 1], [0, 0, 1]], np.float32)
TEACHER_P = np.array([[0.9, 0.2, 0.6], [0.1, 0.5, 0.99]], np.float32)
STUDENT_P = np.array([[0.7, 0.4, 0.5], [0.3, 0.5, 0.8]], np.float32)


def _value(tensor) -> float:
    return float(keras.ops.convert_to_numpy(tensor))


def _classifier(preset="mean-moe-small"):
    return FramesClassifier(ModelChoice(preset).spec(), C, D).build_on(6)


def _batch(seed=0, batch=4, frames=6):
    rng = np.random.default_rng(seed)
    mask = np.ones((batch, frames), np.float32)
    mask[1, 4:] = 0
    x = {
        I.TEACHER_FRAMES: rng.normal(size=(batch, frames, D)).astype(np.float32),
        I.TEACHER_MASK: mask,
        I.STUDENT_FRAMES: rng.normal(size=(batch, 2, D)).astype(np.float32),
        I.STUDENT_MASK: np.ones((batch, 2), np.float32),
    }
    y = (rng.uniform(size=(batch, C)) < 0.5).astype(np.float32)
    return x, y


# ----- each term ------------------------------------------------------------------------------
def test_cross_entropy_is_the_starters_formula_summed_over_classes_and_averaged_over_videos():
    per_class = -(LABELS * np.log(TEACHER_P + CE_EPSILON) + (1 - LABELS) * np.log(1 - TEACHER_P + CE_EPSILON))
    assert _value(cross_entropy(LABELS, TEACHER_P)) == pytest.approx(per_class.sum(1).mean(), rel=1e-6)
    # Certain and right costs (almost) nothing; certain and wrong is bounded by the epsilon.
    assert _value(cross_entropy(np.ones((1, 2)), np.ones((1, 2)))) == pytest.approx(0, abs=1e-4)
    assert _value(cross_entropy(np.ones((1, 1)), np.zeros((1, 1)))) == pytest.approx(
        -np.log(CE_EPSILON), rel=1e-4
    )


def test_the_representation_distance_is_the_squared_distance_divided_by_the_width():
    teacher = np.array([[1.0, 2.0], [0.0, 0.0]], np.float32)
    student = np.array([[0.0, 0.0], [3.0, 4.0]], np.float32)
    assert _value(representation_distance(teacher, student)) == pytest.approx((5 + 25) / 2 / 2)
    # The same vectors repeated to twice the width: the same value.
    wide = representation_distance(np.tile(teacher, 2), np.tile(student, 2))
    assert _value(wide) == pytest.approx(7.5)


@pytest.mark.parametrize("kind", [BERNOULLI_KL, MSE, CATEGORICAL_KL])
def test_each_prediction_loss_on_known_probabilities(kind):
    t, s = TEACHER_P.astype(np.float64), STUDENT_P.astype(np.float64)
    if kind == BERNOULLI_KL:
        expected = (t * np.log(t / s) + (1 - t) * np.log((1 - t) / (1 - s))).sum(1).mean()
    elif kind == MSE:
        expected = ((t - s) ** 2).sum(1).mean()
    else:
        p, q = t / t.sum(1, keepdims=True), s / s.sum(1, keepdims=True)
        expected = (p * np.log(p / q)).sum(1).mean()
    assert _value(prediction_distance(TEACHER_P, STUDENT_P, kind)) == pytest.approx(expected, rel=1e-5)
    assert _value(prediction_distance(TEACHER_P, TEACHER_P, kind)) == pytest.approx(0, abs=1e-6)


def test_certain_probabilities_give_a_finite_prediction_loss_and_an_unknown_kind_is_refused():
    certain = np.array([[0.0, 1.0, 1.0]], np.float32)
    for kind in (BERNOULLI_KL, MSE, CATEGORICAL_KL):
        assert np.isfinite(_value(prediction_distance(certain, 1 - certain, kind)))
    with pytest.raises(ValueError, match="unknown prediction loss 'kl'"):
        prediction_distance(TEACHER_P, STUDENT_P, "kl")


# ----- the weighted total ---------------------------------------------------------------------
def test_the_total_loss_weights_the_students_terms_and_never_the_teachers_own():
    loss = LossConfig(ce_weight=0.5, rep_weight=2.0, pred_weight=3.0, prediction_loss=MSE)
    model = DistillationModel("parallel", _classifier(), _classifier(), loss)
    rng = np.random.default_rng(1)
    rep_t, rep_s = rng.normal(size=(2, 4)).astype(np.float32), rng.normal(size=(2, 4)).astype(np.float32)
    y_pred = {
        TEACHER_PREDICTIONS: TEACHER_P,
        TEACHER_REPRESENTATION: rep_t,
        STUDENT_PREDICTIONS: STUDENT_P,
        STUDENT_REPRESENTATION: rep_s,
        STUDENT_PROJECTION: rep_s,
    }
    terms = {k: _value(v) for k, v in model.loss_terms(LABELS, y_pred).items()}
    assert terms == pytest.approx(
        {
            "teacher_ce": _value(cross_entropy(LABELS, TEACHER_P)),
            "student_ce": _value(cross_entropy(LABELS, STUDENT_P)),
            "rep": float(((rep_t - rep_s) ** 2).mean()),
            "pred": float(((TEACHER_P - STUDENT_P) ** 2).sum(1).mean()),
        },
        rel=1e-5,
    )
    regularisation = sum(_value(v) for v in model.losses)  # the heads' l2 penalties
    total = _value(model.compute_loss(y=LABELS, y_pred=y_pred))
    expected = terms["teacher_ce"] + 0.5 * terms["student_ce"] + 2.0 * terms["rep"] + 3.0 * terms["pred"]
    assert total == pytest.approx(expected + regularisation, rel=1e-5)
    # Each term's tracker holds its unweighted value (what the logs show).
    assert {k: _value(t.result()) for k, t in model.trackers.items()} == pytest.approx(terms, rel=1e-5)


@pytest.mark.parametrize("mode,terms", [("teacher", {"teacher_ce"}), ("student", {"student_ce"})])
def test_a_run_without_distillation_has_only_its_cross_entropy(mode, terms):
    teacher, student = (_classifier(), None) if mode == "teacher" else (None, _classifier())
    model = DistillationModel(mode, teacher, student)
    y_pred = model(_batch()[0])
    assert set(model.loss_terms(_batch()[1], y_pred)) == terms == set(model.trackers)
    assert STUDENT_PROJECTION not in y_pred


# ----- what each mode trains ------------------------------------------------------------------
def test_serial_freezes_the_teacher_and_a_training_step_moves_only_the_student():
    keras.utils.set_random_seed(0)
    teacher, student = _classifier("dbof-small"), _classifier()
    model = DistillationModel("serial", teacher, student, projection_dim=teacher.representation_dim)
    model.build_on(2)
    assert not teacher.trainable
    trainable = {id(v) for v in model.trainable_variables}
    assert not any(id(v) in trainable for v in teacher.weights)
    model.compile(optimizer=keras.optimizers.Adam(0.1))
    before_teacher = [np.array(w) for w in teacher.get_weights()]
    before_student = [np.array(w) for w in student.get_weights()]
    model.train_on_batch(*_batch(seed=2))
    for old, new in zip(before_teacher, teacher.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
    assert any(
        not np.array_equal(old, new) for old, new in zip(before_student, student.get_weights(), strict=True)
    )


def test_in_parallel_mode_the_students_terms_give_the_teacher_no_gradient():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("uses tf.GradientTape")
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    teacher = _classifier("dbof-small")  # weights before its representation, too
    model = DistillationModel("parallel", teacher, _classifier(), projection_dim=teacher.representation_dim)
    model.build_on(2)
    x, y = _batch(seed=3)
    with tf.GradientTape(persistent=True) as tape:
        terms = model.loss_terms(y, model(x, training=True))
        distillation = terms["rep"] + terms["pred"]
    teacher_vars = model.teacher.trainable_variables
    for gradient in tape.gradient(distillation, teacher_vars):
        assert gradient is None or not np.any(gradient.numpy())
    # ... while the teacher's own cross-entropy does reach it, and the distillation the student.
    assert any(g is not None and np.any(g.numpy()) for g in tape.gradient(terms["teacher_ce"], teacher_vars))
    student_grads = tape.gradient(distillation, model.student.trainable_variables)
    assert any(g is not None and np.any(g.numpy()) for g in student_grads)


def test_offline_serial_takes_the_teachers_outputs_from_the_batch():
    model = DistillationModel("serial", None, _classifier(), targets_dims=(C, 5), projection_dim=5)
    x, y = _batch(seed=4)
    x = {k: v for k, v in x.items() if k.startswith("student")}
    x[I.TARGET_PREDICTIONS] = np.tile(TEACHER_P[:1], (4, 1))
    x[I.TARGET_REPRESENTATION] = np.arange(20, dtype=np.float32).reshape(4, 5)
    out = model(x)
    np.testing.assert_array_equal(out[TEACHER_PREDICTIONS], x[I.TARGET_PREDICTIONS])
    assert out[STUDENT_PROJECTION].shape == (4, 5)
    assert set(model.loss_terms(y, out)) == {"student_ce", "rep", "pred"}
    # Evaluation batches carry no targets: the student alone.
    del x[I.TARGET_PREDICTIONS], x[I.TARGET_REPRESENTATION]
    assert TEACHER_PREDICTIONS not in model(x)


def test_a_model_that_cannot_distil_is_refused():
    with pytest.raises(ValueError, match="serial mode needs a trained teacher or its stored outputs"):
        DistillationModel("serial", None, _classifier())
    with pytest.raises(ValueError, match="stored teacher outputs replace the teacher in serial mode only"):
        DistillationModel("parallel", _classifier(), _classifier(), targets_dims=(C, 4))
