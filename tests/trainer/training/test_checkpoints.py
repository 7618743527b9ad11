"""Checkpoints of a small real Keras model: fallback from a damaged checkpoint, pruning."""

import json
import logging

import keras
import numpy as np
import pytest

from trainer.training.checkpoints import STATE_NAME, CheckpointManager, CheckpointUnreadable


def _model(value: float) -> keras.Model:
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    model.optimizer.build(model.trainable_variables)
    for variable in model.trainable_variables:
        variable.assign(np.full(variable.shape, value, np.float32))
    return model


def _saved(directory, steps) -> CheckpointManager:
    """Checkpoints at global steps `steps` (epoch 0, step = global step), weights = the step."""
    manager = CheckpointManager(str(directory))
    for step in steps:
        manager.save(_model(float(step)), 0, step, step)
    return manager


def _kernel(model) -> float:
    return float(keras.ops.convert_to_numpy(model.trainable_variables[0])[0, 0])


@pytest.mark.parametrize("damage", ["truncated", "missing"])
def test_a_damaged_checkpoint_named_by_state_json_falls_back_to_the_previous_one(tmp_path, damage, caplog):
    manager = _saved(tmp_path, [1, 2, 3])
    newest = tmp_path / "ckpt-000000003.weights.h5"
    assert json.loads((tmp_path / STATE_NAME).read_text())["weights"] == newest.name
    if damage == "truncated":
        newest.write_bytes(newest.read_bytes()[:1000])
    else:
        newest.unlink()
    model = _model(0.0)
    with caplog.at_level(logging.WARNING, "fewframes.train"):
        state = manager.restore(model)
    assert (state.epoch, state.step, state.global_step) == (0, 2, 2)
    assert _kernel(model) == 2.0
    assert f"checkpoint {newest} is {damage if damage == 'missing' else 'unreadable'}" in caplog.text
    assert "resuming from the checkpoint before it" in caplog.text
    # Training on from step 2 keeps step 2 and the new step 3, not the damaged one.
    manager.save(_model(3.5), 0, 3, 3)
    assert [s.global_step for s in manager.kept()] == [3, 2]
    assert _kernel(_restored(manager)) == 3.5


def _restored(manager):
    model = _model(0.0)
    manager.restore(model)
    return model


def test_no_readable_checkpoint_left_is_one_line(tmp_path):
    manager = _saved(tmp_path, [1, 2])
    (tmp_path / "ckpt-000000002.weights.h5").write_bytes(b"not hdf5")
    (tmp_path / "ckpt-000000001.weights.h5").unlink()
    with pytest.raises(CheckpointUnreadable) as error:
        manager.restore(_model(0.0))
    message = str(error.value)
    assert "\n" not in message
    assert "ckpt-000000002.weights.h5 is unreadable" in message
    assert "ckpt-000000001.weights.h5 is missing" in message
    assert f"remove {tmp_path} to train this job from the start" in message


def test_pruning_leaves_another_process_s_temporary_checkpoint_alone(tmp_path):
    foreign = tmp_path / ".tmp-424242-ckpt-000000001.weights.h5"
    foreign.write_bytes(b"being written by another process")
    _saved(tmp_path, [1, 2, 3, 4])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        foreign.name, "ckpt-000000003.weights.h5", "ckpt-000000004.weights.h5", STATE_NAME,
    ]  # fmt: skip
