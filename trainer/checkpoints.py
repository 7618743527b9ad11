"""Checkpoints that survive preemption: weights + optimizer state + position in the data.

`state.json` names the newest complete weights file and where training stood (epoch,
batches done in that epoch). It is written only after the weights file is whole, so a
process killed at any instant (SIGKILL included) leaves a consistent checkpoint. The
input order is a pure function of (seed, epoch) (`trainer.inputs`), so the resumed run
skips the batches the epoch already trained on and continues with the next one: no
batch is trained twice or skipped. Work after the last checkpoint is redone from it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import signal

import keras
import numpy as np

from trainer import storage

STATE_NAME = "state.json"
KEEP = 2


@dataclasses.dataclass(frozen=True)
class TrainingState:
    epoch: int = 0  # the epoch in progress (or the next one when step == 0)
    step: int = 0  # batches of that epoch already trained on
    global_step: int = 0
    weights: str | None = None


class CheckpointManager:
    def __init__(self, directory: str, writer: bool = True):
        self.directory = directory
        self.writer = writer  # only the chief writes; other workers only read

    def state(self) -> TrainingState:
        path = storage.join(self.directory, STATE_NAME)
        if not storage.exists(path):
            return TrainingState()
        return TrainingState(**json.loads(storage.read_text(path)))

    def restore(self, model: keras.Model) -> TrainingState:
        state = self.state()
        if state.weights is None:
            return state
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        storage.load_weights(model, storage.join(self.directory, state.weights))
        return state

    def save(self, model: keras.Model, epoch: int, step: int, global_step: int) -> TrainingState | None:
        if not self.writer:
            return None
        name = f"ckpt-{global_step:09d}.weights.h5"
        storage.makedirs(self.directory)
        storage.save_weights(model, storage.join(self.directory, name))
        state = TrainingState(epoch, step, global_step, name)
        storage.write_text(storage.join(self.directory, STATE_NAME), json.dumps(dataclasses.asdict(state)))
        for old in sorted(f for f in storage.listdir(self.directory) if f.endswith(".weights.h5"))[:-KEEP]:
            storage.remove(storage.join(self.directory, old))
        return state


def weights_finite(model: keras.Model) -> bool:
    return all(np.isfinite(keras.ops.convert_to_numpy(v)).all() for v in model.trainable_variables)


class StopRequest:
    """Set by SIGTERM (what Kubernetes and Vertex AI send before preempting a node)."""

    def __init__(self):
        self.requested = False

    def install(self):
        signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame):
        self.requested = True


class CheckpointCallback(keras.callbacks.Callback):
    """Saves every `every` steps and at epoch end; never saves non-finite weights.

    On a stop request it saves at the end of the current batch and stops training.
    """

    def __init__(
        self,
        manager: CheckpointManager,
        epoch: int,
        first_step: int,
        global_step: int,
        every: int,
        stop: StopRequest,
        epoch_steps: int | None = None,
    ):
        super().__init__()
        self.manager, self.epoch, self.every, self.stop = manager, epoch, every, stop
        self.epoch_steps = epoch_steps  # the epoch's last batch is saved by on_epoch_end
        self.step, self.global_step = first_step, global_step
        self.non_finite = False

    def _save(self, epoch: int, step: int):
        if not weights_finite(self.model):
            self.non_finite = True
            self.model.stop_training = True
            return
        self.manager.save(self.model, epoch, step, self.global_step)

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        self.global_step += 1
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.non_finite = True
            self.model.stop_training = True
            return
        if self.stop.requested:
            self._save(self.epoch, self.step)
            self.model.stop_training = True
        elif self.step % self.every == 0 and self.step != self.epoch_steps:
            self._save(self.epoch, self.step)

    def on_epoch_end(self, epoch, logs=None):
        if not self.non_finite and not self.stop.requested:
            self._save(self.epoch + 1, 0)
