"""TensorBoard logs without TensorFlow: the epoch scalars in Keras's layout."""

import os

from trainer.training.summaries import EpochScalars, tensorboard_callback


def _scalars(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir))
    accumulator.Reload()
    return {
        tag: [(event.step, round(event.value, 6)) for event in accumulator.Scalars(tag)]
        for tag in accumulator.Tags()["scalars"]
    }


def test_epoch_scalars_land_in_train_and_validation_runs(tmp_path):
    callback = tensorboard_callback(str(tmp_path), use_tensorflow=False)
    assert isinstance(callback, EpochScalars)
    callback.on_epoch_end(0, {"loss": 2.5, "student_ce": 1.25, "val_student_gap": 0.5, "note": "text"})
    callback.on_train_end()
    callback.on_epoch_end(1, {"loss": 1.5, "student_ce": 0.75, "val_student_gap": 0.625})  # a resumed fit
    callback.on_train_end()
    assert sorted(os.listdir(tmp_path)) == ["train", "validation"]
    assert _scalars(tmp_path / "train") == {
        "epoch_loss": [(0, 2.5), (1, 1.5)],
        "epoch_student_ce": [(0, 1.25), (1, 0.75)],
    }
    assert _scalars(tmp_path / "validation") == {"epoch_student_gap": [(0, 0.5), (1, 0.625)]}


def test_keras_tensorboard_is_used_where_tensorflow_is_installed(tmp_path):
    import keras

    assert isinstance(tensorboard_callback(str(tmp_path), use_tensorflow=True), keras.callbacks.TensorBoard)
