"""Eval-time metrics during training: GAP, Hit@1, PERR and mAP of each trained model.

Runs over the eval dataset at each epoch end and adds `val_<role>_<metric>` to the
epoch logs, so TensorBoard, the progress bar and `summary.json` carry them.
"""

from __future__ import annotations

import keras
import numpy as np

from trainer import inputs as I
from trainer.distill import STUDENT_PREDICTIONS, TEACHER_PREDICTIONS
from trainer.metrics import MetricsAccumulator

REPORTED = ("gap", "hit_at_1", "perr", "map_nonempty_classes")


def evaluate(model, plan: I.InputPlan, fmt: str, batch_size: int, top_k: int = 20) -> dict:
    """{role: metrics dict} of a DistillationModel over a whole dataset."""
    accumulators = {}
    predict = _predictor(model)
    for x, y in _as_numpy(I.batches(plan, fmt, batch_size)):
        outputs = predict(x)
        for role, key in (("teacher", TEACHER_PREDICTIONS), ("student", STUDENT_PREDICTIONS)):
            if key in outputs:
                accumulators.setdefault(role, MetricsAccumulator(plan.label_space.num_classes, top_k))
                accumulators[role].add_batch(np.asarray(outputs[key], np.float32), np.asarray(y))
    return {role: acc.result() for role, acc in accumulators.items()}


def _predictor(model):
    """`predict_on_batch`, except under a tf.distribute strategy of several replicas: there
    it would hand every replica the whole batch and concatenate their copies, so the model
    is called directly (each worker evaluates the whole eval set with its own copy of the
    weights, which are the same on every worker)."""
    strategy = getattr(model, "distribute_strategy", None)
    if strategy is None or strategy.num_replicas_in_sync <= 1:
        return model.predict_on_batch
    import tensorflow as tf

    call = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    return lambda x: {k: v.numpy() for k, v in call(x).items()}


def _as_numpy(batches):
    for x, y in batches:
        yield {k: keras.ops.convert_to_numpy(v) for k, v in x.items()}, keras.ops.convert_to_numpy(y)


class EvalCallback(keras.callbacks.Callback):
    def __init__(self, plan: I.InputPlan, fmt: str, batch_size: int):
        super().__init__()
        self.plan, self.fmt, self.batch_size = plan, fmt, batch_size
        self.last: dict = {}

    def on_epoch_end(self, epoch, logs=None):
        self.last = evaluate(self.model, self.plan, self.fmt, self.batch_size)
        if logs is not None:
            for role, metrics in self.last.items():
                for name in REPORTED:
                    logs[f"val_{role}_{name}"] = float(metrics[name])
