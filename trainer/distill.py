"""Teacher-student distillation as one Keras model with its own `compute_loss`.

`DistillationModel` holds a teacher and/or a student (`FramesClassifier`: the
normalization chain's model side + an aggregator/head classifier) and returns both
outputs; `compute_loss` combines the paper's terms, so `fit`, callbacks and
tf.distribute work unchanged. Modes (`trainer.config`):

- teacher:  L = L_CE(teacher)
- student:  L = L_CE(student)
- parallel: L = L_CE(teacher) + ce·L_CE(student) + rep·L_rep + pred·L_pred, with the
  teacher's outputs behind stop_gradient in the student's terms, so the extra terms
  never update the teacher (its weights follow a teacher-only run exactly);
- serial:   the teacher is rebuilt from a trained job and frozen (inference mode);
  L = ce·L_CE(student) + rep·L_rep + pred·L_pred. Offline (`targets_dims`), there is
  no teacher model: its outputs come with each batch from a teacher-targets dataset,
  and the same terms are computed from them.

All loss code is backend-neutral (`keras.ops`).
"""

from __future__ import annotations

import keras
from keras import ops

from schemas.features import MAX_FRAMES
from trainer.config import BERNOULLI_KL, CATEGORICAL_KL, MSE, PARALLEL, SERIAL, TEACHER, LossConfig
from trainer.inputs import (
    STUDENT_FRAMES,
    STUDENT_MASK,
    TARGET_PREDICTIONS,
    TARGET_REPRESENTATION,
    TEACHER_FRAMES,
    TEACHER_MASK,
)
from trainer.models import ModelSpec, VideoClassifier
from trainer.models.normalization import FrameNormalization

# The YT8M starter's CrossEntropyLoss adds this to probabilities before the log.
CE_EPSILON = 1e-5
KL_EPSILON = 1e-7

TEACHER_PREDICTIONS = "teacher_predictions"
TEACHER_REPRESENTATION = "teacher_representation"
STUDENT_PREDICTIONS = "student_predictions"
STUDENT_REPRESENTATION = "student_representation"
STUDENT_PROJECTION = "student_projection"


# ----- loss terms -----------------------------------------------------------------------
def cross_entropy(labels, probabilities):
    """The starter's sigmoid cross-entropy on probabilities: summed over classes, batch mean."""
    p = ops.cast(probabilities, "float32")
    labels = ops.cast(labels, "float32")
    per_class = -(labels * ops.log(p + CE_EPSILON) + (1.0 - labels) * ops.log(1.0 - p + CE_EPSILON))
    return ops.mean(ops.sum(per_class, axis=-1))


def representation_distance(teacher, student):
    """L_rep: squared Euclidean distance divided by the width, batch mean.

    Dividing by the width keeps the term's scale (and so the meaning of its weight)
    the same for a 64-wide and a 4096-wide representation; summed, it swamped L_CE
    and pulled the student's predictions away from the teacher's in our runs.
    """
    difference = ops.cast(teacher, "float32") - ops.cast(student, "float32")
    return ops.mean(difference * difference)


def prediction_distance(teacher, student, kind: str = BERNOULLI_KL):
    """L_pred between the teacher's and the student's class probabilities (batch mean)."""
    t = ops.clip(ops.cast(teacher, "float32"), KL_EPSILON, 1.0 - KL_EPSILON)
    s = ops.clip(ops.cast(student, "float32"), KL_EPSILON, 1.0 - KL_EPSILON)
    if kind == BERNOULLI_KL:
        per_class = t * (ops.log(t) - ops.log(s)) + (1.0 - t) * (ops.log(1.0 - t) - ops.log(1.0 - s))
        return ops.mean(ops.sum(per_class, axis=-1))
    if kind == MSE:
        return ops.mean(ops.sum((t - s) * (t - s), axis=-1))
    if kind == CATEGORICAL_KL:
        # The paper's code: renormalise the sigmoid outputs into one categorical each.
        p = t / ops.sum(t, axis=-1, keepdims=True)
        q = s / ops.sum(s, axis=-1, keepdims=True)
        return ops.mean(ops.sum(p * (ops.log(p) - ops.log(q)), axis=-1))
    raise ValueError(f"unknown prediction loss {kind!r}")


# ----- models ---------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="fewframes")
class FramesClassifier(keras.Model):
    """Dequantized frames + mask -> normalised -> classifier: the unit that is exported."""

    def __init__(self, spec: ModelSpec, num_classes: int, input_dim: int, zscore=None, **kwargs):
        super().__init__(**kwargs)
        self.spec, self.num_classes, self.input_dim = spec, num_classes, input_dim
        mean, std = zscore if zscore is not None else (None, None)
        self.normalization = FrameNormalization(mean, std, name="normalization")
        self.classifier = VideoClassifier(spec, num_classes, input_dim, name="classifier")

    def call(self, inputs, training=False):
        frames = self.normalization(inputs["frames"], inputs["mask"])
        return self.classifier({"frames": frames, "mask": inputs["mask"]}, training=training)

    @property
    def representation_dim(self) -> int:
        return self.classifier.representation_dim

    def build_on(self, max_frames: int):
        """Create the weights by one call on zeros (needed before loading weights)."""
        self(self.classifier.dummy_inputs(max_frames))
        return self

    def get_config(self):
        config = super().get_config()
        mean = self.normalization._mean_init
        zscore = None if mean is None else (mean.tolist(), self.normalization._std_init.tolist())
        config.update(
            spec=self.spec.to_dict(), num_classes=self.num_classes, input_dim=self.input_dim, zscore=zscore
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["spec"] = ModelSpec.from_dict(config["spec"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="fewframes")
class DistillationModel(keras.Model):
    def __init__(
        self,
        mode: str,
        teacher: FramesClassifier | None = None,
        student: FramesClassifier | None = None,
        loss_config: LossConfig | None = None,
        projection_dim: int | None = None,
        targets_dims: tuple[int, int] | None = None,
        **kwargs,
    ):
        """`targets_dims` = (classes, representation width) of a teacher whose outputs come
        with the inputs (`serial` from a teacher-targets dataset) instead of a `teacher`."""
        super().__init__(**kwargs)
        self.mode = mode
        self.loss_config = loss_config or LossConfig()
        self.teacher = teacher
        self.student = student
        self.targets_dims = targets_dims
        self.distilling = mode in (PARALLEL, SERIAL)
        self.teacher_trained = mode in (TEACHER, PARALLEL)
        if targets_dims is not None and (mode != SERIAL or teacher is not None):
            raise ValueError("stored teacher outputs replace the teacher in serial mode only")
        if mode == SERIAL and teacher is None and targets_dims is None:
            raise ValueError("serial mode needs a trained teacher or its stored outputs")
        if mode == SERIAL and teacher is not None:
            teacher.trainable = False
        # L_rep compares final representations; a learned projection bridges different widths.
        self.projection = (
            keras.layers.Dense(projection_dim, name="student_projection")
            if self.distilling and projection_dim is not None
            else None
        )
        self.trackers = {}
        names = []
        if self.teacher_trained:
            names.append("teacher_ce")
        if student is not None:
            names.append("student_ce")
        if self.distilling:
            names += ["rep", "pred"]
        for name in names:
            tracker = keras.metrics.Mean(name=name)
            setattr(self, f"_{name}_tracker", tracker)  # tracked, so it is reset each epoch
            self.trackers[name] = tracker

    def call(self, inputs, training=False):
        outputs = {}
        if self.teacher is not None:
            teacher = self.teacher(
                {"frames": inputs[TEACHER_FRAMES], "mask": inputs[TEACHER_MASK]},
                training=training and self.teacher_trained,
            )
            outputs[TEACHER_PREDICTIONS] = teacher["predictions"]
            outputs[TEACHER_REPRESENTATION] = teacher["representation"]
        elif self.targets_dims is not None and TARGET_PREDICTIONS in inputs:
            # Absent from evaluation batches, which feed the student only.
            outputs[TEACHER_PREDICTIONS] = inputs[TARGET_PREDICTIONS]
            outputs[TEACHER_REPRESENTATION] = inputs[TARGET_REPRESENTATION]
        if self.student is not None:
            student = self.student(
                {"frames": inputs[STUDENT_FRAMES], "mask": inputs[STUDENT_MASK]}, training=training
            )
            outputs[STUDENT_PREDICTIONS] = student["predictions"]
            outputs[STUDENT_REPRESENTATION] = student["representation"]
            if self.distilling:
                projected = student["representation"]
                if self.projection is not None:
                    projected = self.projection(projected)
                outputs[STUDENT_PROJECTION] = projected
        return outputs

    def loss_terms(self, y, y_pred) -> dict:
        """Each term of the loss, unweighted (for logs and tests)."""
        terms = {}
        if self.teacher_trained:
            terms["teacher_ce"] = cross_entropy(y, y_pred[TEACHER_PREDICTIONS])
        if self.student is not None:
            terms["student_ce"] = cross_entropy(y, y_pred[STUDENT_PREDICTIONS])
        if self.distilling:
            teacher_rep = ops.stop_gradient(y_pred[TEACHER_REPRESENTATION])
            teacher_pred = ops.stop_gradient(y_pred[TEACHER_PREDICTIONS])
            terms["rep"] = representation_distance(teacher_rep, y_pred[STUDENT_PROJECTION])
            terms["pred"] = prediction_distance(
                teacher_pred, y_pred[STUDENT_PREDICTIONS], self.loss_config.prediction_loss
            )
        return terms

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        terms = self.loss_terms(y, y_pred)
        weights = {
            "teacher_ce": 1.0,  # the teacher learns from labels only, in every mode
            "student_ce": self.loss_config.ce_weight,
            "rep": self.loss_config.rep_weight,
            "pred": self.loss_config.pred_weight,
        }
        total = 0.0
        for name, value in terms.items():
            self.trackers[name].update_state(value)
            total = total + weights[name] * value
        if self.losses:
            total = total + ops.sum(ops.stack([ops.cast(v, "float32") for v in self.losses]))
        return total

    def build_on(self, student_frames: int | None):
        inputs = {}
        if self.teacher is not None:
            inputs[TEACHER_FRAMES] = ops.zeros((1, MAX_FRAMES, self.teacher.input_dim))
            inputs[TEACHER_MASK] = ops.ones((1, MAX_FRAMES))
        if self.targets_dims is not None:
            inputs[TARGET_PREDICTIONS] = ops.zeros((1, self.targets_dims[0]))
            inputs[TARGET_REPRESENTATION] = ops.zeros((1, self.targets_dims[1]))
        if self.student is not None:
            inputs[STUDENT_FRAMES] = ops.zeros((1, student_frames, self.student.input_dim))
            inputs[STUDENT_MASK] = ops.ones((1, student_frames))
        self(inputs)
        return self
