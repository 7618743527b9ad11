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
    for x, y in _as_numpy(I.batches(plan, fmt, batch_size)):
        outputs = model.predict_on_batch(x)
        for role, key in (("teacher", TEACHER_PREDICTIONS), ("student", STUDENT_PREDICTIONS)):
            if key in outputs:
                accumulators.setdefault(role, MetricsAccumulator(plan.label_space.num_classes, top_k))
                accumulators[role].add_batch(np.asarray(outputs[key], np.float32), np.asarray(y))
    return {role: acc.result() for role, acc in accumulators.items()}


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
