"""TensorBoard logs of a training job, with or without TensorFlow installed.

Keras's own `TensorBoard` callback writes through `tensorflow.summary`, so on a JAX or
PyTorch machine without TensorFlow (such as a GPU node built for those) it fails at the
first epoch. There the job writes the same epoch scalars, in the same layout (`train/`
and `validation/` run folders, `epoch_<metric>` tags, the epoch as the step), with the
`tensorboard` package's own event writer, which needs no TensorFlow.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time

import keras

LOG = logging.getLogger("fewframes.train")
TRAIN_RUN = "train"
VALIDATION_RUN = "validation"
VALIDATION_PREFIX = "val_"


def tensorflow_installed() -> bool:
    return importlib.util.find_spec("tensorflow") is not None


def tensorboard_callback(log_dir: str, use_tensorflow: bool | None = None) -> keras.callbacks.Callback | None:
    """Keras's TensorBoard callback where TensorFlow is installed, else `EpochScalars`.

    None (with a warning) where neither TensorFlow nor the `tensorboard` package is there.
    """
    if tensorflow_installed() if use_tensorflow is None else use_tensorflow:
        return keras.callbacks.TensorBoard(log_dir, write_graph=False)
    if importlib.util.find_spec("tensorboard") is None:
        LOG.warning("no TensorBoard logs: neither tensorflow nor tensorboard is installed")
        return None
    return EpochScalars(log_dir)


class EpochScalars(keras.callbacks.Callback):
    """Each epoch's logs as TensorBoard scalars, the way Keras's callback lays them out."""

    def __init__(self, log_dir: str):
        super().__init__()
        self.log_dir = log_dir
        self._writers = {}

    def _writer(self, run: str):
        if run not in self._writers:
            from tensorboard.summary.writer.event_file_writer import EventFileWriter

            path = os.path.join(self.log_dir, run)
            os.makedirs(path, exist_ok=True)
            self._writers[run] = EventFileWriter(path)
        return self._writers[run]

    def on_epoch_end(self, epoch, logs=None):
        from tensorboard.compat.proto import event_pb2, summary_pb2

        by_run = {}
        for name, value in (logs or {}).items():
            try:
                value = float(value)
            except (TypeError, ValueError):  # a non-scalar log entry has no scalar chart
                continue
            if name.startswith(VALIDATION_PREFIX):
                run, tag = VALIDATION_RUN, name[len(VALIDATION_PREFIX) :]
            else:
                run, tag = TRAIN_RUN, name
            scalar = summary_pb2.Summary.Value(tag=f"epoch_{tag}", simple_value=value)
            by_run.setdefault(run, []).append(scalar)
        for run, values in by_run.items():
            summary = summary_pb2.Summary(value=values)
            event = event_pb2.Event(wall_time=time.time(), step=epoch, summary=summary)
            writer = self._writer(run)
            writer.add_event(event)
            writer.flush()  # a preempted job keeps every finished epoch's scalars

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
