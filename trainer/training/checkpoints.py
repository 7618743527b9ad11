"""Checkpoints that survive preemption: weights + optimizer state + position in the data.

`state.json` names the newest complete weights file and where training stood (epoch,
batches done in that epoch). It is written only after the weights file is whole, so a
process killed at any instant (SIGKILL included) leaves a consistent checkpoint. The
input order is a pure function of (seed, epoch) (`trainer.inputs`), so the resumed run
skips the batches the epoch already trained on and continues with the next one: no
batch is trained twice or skipped. Work after the last checkpoint is redone from it.

`state.json` also lists the other kept checkpoints (`previous`, newest first): when the
weights file it names is missing or damaged (a disk or copy gone wrong), the run resumes
from the newest readable one before it, saying so, instead of failing.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
import signal

import keras
import numpy as np

from trainer import storage
from trainer.job_dir import CHECKPOINT_STATE_NAME as STATE_NAME

KEEP = 2
# The checkpoints this module writes; pruning removes nothing else (not another process's
# `.tmp-PID-ckpt-*` file being written beside them).
CHECKPOINT_FILE = re.compile(r"ckpt-\d{9}\.weights\.h5")
LOG = logging.getLogger("fewframes.train")


class CheckpointUnreadable(ValueError):
    """No checkpoint that `state.json` names (or keeps) can be loaded."""


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

    def kept(self) -> list[TrainingState]:
        """The kept checkpoints, newest first, as `state.json` lists them (none: a new job)."""
        path = storage.join(self.directory, STATE_NAME)
        if not storage.exists(path):
            return []
        data = json.loads(storage.read_text(path))
        previous = data.pop("previous", [])  # absent in a job dir from before it was written
        return [TrainingState(**data), *(TrainingState(**p) for p in previous)]

    def state(self) -> TrainingState:
        kept = self.kept()
        return kept[0] if kept else TrainingState()

    def restore(self, model: keras.Model) -> TrainingState:
        """Load the newest readable kept checkpoint into `model`; its state (a new job: none)."""
        kept = self.kept()
        if not kept:
            return TrainingState()
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        problems = []
        for state in kept:
            path = storage.join(self.directory, state.weights)
            problem = None
            if not storage.exists(path):
                problem = "missing"
            else:
                try:
                    storage.load_weights(model, path)
                except (OSError, ValueError, KeyError) as error:  # h5py: truncated, not HDF5, ...
                    problem = (
                        f"unreadable ({str(error).splitlines()[0] if str(error) else type(error).__name__})"
                    )
            if problem is None:
                if problems:
                    LOG.warning("%s; resuming from the checkpoint before it, %s", "; ".join(problems), path)
                return state
            problems.append(f"checkpoint {path} is {problem}")
        raise CheckpointUnreadable(
            f"no kept checkpoint can be loaded: {'; '.join(problems)}; "
            f"remove {self.directory} to train this job from the start"
        )

    def save(self, model: keras.Model, epoch: int, step: int, global_step: int) -> TrainingState | None:
        if not self.writer:
            return None
        name = f"ckpt-{global_step:09d}.weights.h5"
        storage.makedirs(self.directory)
        storage.save_weights(model, storage.join(self.directory, name))
        state = TrainingState(epoch, step, global_step, name)
        # Checkpoints at or past this step are from a run resumed before them (after a
        # fallback): not kept.
        kept = [state, *(s for s in self.kept() if s.global_step < global_step)][:KEEP]
        record = {**dataclasses.asdict(state), "previous": [dataclasses.asdict(s) for s in kept[1:]]}
        storage.write_text(storage.join(self.directory, STATE_NAME), json.dumps(record))
        names = {s.weights for s in kept}
        for old in storage.listdir(self.directory):
            if CHECKPOINT_FILE.fullmatch(old) and old not in names:
                storage.remove(storage.join(self.directory, old))
        return state


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


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
