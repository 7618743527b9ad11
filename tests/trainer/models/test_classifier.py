"""ModelSpec (its JSON and its errors) and VideoClassifier end to end."""

import json

import keras
import numpy as np
import pytest

from tests.trainer.models.batches import D, inputs, numpy_outputs
from trainer.models import (
    PREDICTIONS,
    REPRESENTATION,
    ModelSpec,
    VideoClassifier,
    aggregator_names,
    get_preset,
)

C = 5


# ----- ModelSpec ------------------------------------------------------------------------------
def test_model_spec_round_trips_through_json():
    spec = ModelSpec("netvlad", "moe", {"clusters": 8}, {"num_mixtures": 3})
    assert ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_model_spec_copies_its_params():
    params = {"clusters": 8}
    spec = ModelSpec("netvlad", "moe", params)
    params["clusters"] = 16
    assert spec.aggregator_params == {"clusters": 8}


def test_model_spec_errors_name_the_valid_choices():
    with pytest.raises(ValueError, match=r"unknown aggregator 'vlad'; valid aggregators: dbof, hlstm, lstm"):
        ModelSpec("vlad", "moe")
    with pytest.raises(ValueError, match=r"unknown head 'svm'; valid heads: logistic, moe"):
        ModelSpec("mean", "svm")
    with pytest.raises(
        ValueError, match=r"unknown field\(s\) cells for aggregator 'lstm'; valid fields: units, num_layers"
    ):
        ModelSpec("lstm", "moe", {"cells": 3})
    with pytest.raises(
        ValueError, match=r"unknown field\(s\) units for aggregator 'mean'; valid fields: none"
    ):
        ModelSpec("mean", "moe", {"units": 3})
    with pytest.raises(ValueError, match=r"unknown ModelSpec key\(s\) model; valid keys: aggregator, head"):
        ModelSpec.from_dict({"aggregator": "mean", "head": "moe", "model": "x"})


# ----- VideoClassifier ----------------------------------------------------------------------
SPEC = ModelSpec("nextvlad", "moe", {"clusters": 4, "groups": 2, "hidden_size": 8}, {"num_mixtures": 2})


def test_classifier_outputs():
    model = VideoClassifier(SPEC, num_classes=C, input_dim=D)
    outputs = numpy_outputs(model(inputs()))
    assert set(outputs) == {REPRESENTATION, PREDICTIONS}
    assert outputs[REPRESENTATION].shape == (3, 8)
    assert outputs[PREDICTIONS].dtype == np.float32
    assert np.all((outputs[PREDICTIONS] > 0) & (outputs[PREDICTIONS] < 1))


def test_get_config_round_trip_gives_identical_outputs():
    model = VideoClassifier(get_preset("hlstm-small"), num_classes=C, input_dim=D, name="teacher")
    x = inputs()
    expected = numpy_outputs(model(x))
    config = json.loads(json.dumps(model.get_config()))  # it must be plain JSON
    clone = VideoClassifier.from_config(config).build_on(6)
    assert clone.name == "teacher" and clone.spec == model.spec
    clone.set_weights(model.get_weights())
    for key, value in numpy_outputs(clone(x)).items():
        np.testing.assert_array_equal(value, expected[key])


def test_keras_save_and_load_round_trip(tmp_path):
    model = VideoClassifier(get_preset("netvlad-small"), num_classes=C, input_dim=D)
    x = inputs()
    expected = numpy_outputs(model(x))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, VideoClassifier)
    for key, value in numpy_outputs(loaded(x)).items():
        np.testing.assert_allclose(value, expected[key], atol=1e-6)


@pytest.mark.parametrize(
    "head_params", [{}, {"hidden_size": 4, "input_context_gating": True, "context_gating": True}]
)
@pytest.mark.parametrize("name", aggregator_names())
def test_build_creates_every_weight_without_data(name, head_params):
    # keras.saving rebuilds a model with build() and then restores weights into it.
    from tests.trainer.models.test_aggregators import SMALL_PARAMS

    model = VideoClassifier(
        ModelSpec(name, "moe", SMALL_PARAMS[name], head_params), num_classes=C, input_dim=D
    )
    model.build(None)
    count = model.count_params()
    model(inputs())
    assert model.count_params() == count > 0


def test_mixed_precision_classifier():
    model = VideoClassifier(get_preset("hlstm-small"), num_classes=C, input_dim=D, dtype="mixed_float16")
    outputs = model(inputs())
    assert keras.backend.standardize_dtype(outputs[PREDICTIONS].dtype) == "float32"
    assert keras.backend.standardize_dtype(outputs[REPRESENTATION].dtype) == "float16"
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(outputs[PREDICTIONS])))


def test_padding_never_changes_a_classifier_output():
    model = VideoClassifier(get_preset("hlstm-small"), num_classes=C, input_dim=D)
    x = inputs()
    longer = {
        "frames": np.concatenate([x["frames"], np.full((3, 4, D), 7.0, "float32")], axis=1),
        "mask": np.concatenate([x["mask"], np.zeros((3, 4), "float32")], axis=1),
    }
    for key, value in numpy_outputs(model(longer)).items():
        np.testing.assert_allclose(value, numpy_outputs(model(x))[key], atol=1e-5)


def test_a_few_steps_of_gradient_descent_reduce_the_loss():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the training step below uses tf.GradientTape")
    import tensorflow as tf

    # Toy task: class c is present when the mean of feature c over the real frames is > 0.
    x = inputs(lengths=[10, 8, 6, 4, 3, 2, 9, 7] * 2, num_frames=10, seed=3)
    counts = x["mask"].sum(1, keepdims=True)
    labels = (x["frames"].sum(1)[:, :C] / counts > 0).astype("float32")
    model = VideoClassifier(get_preset("hlstm-small"), num_classes=C, input_dim=D)
    optimizer = keras.optimizers.Adam(learning_rate=0.01)

    def loss_fn():
        p = model(x, training=True)[PREDICTIONS]
        return -tf.reduce_mean(labels * tf.math.log(p + 1e-6) + (1 - labels) * tf.math.log(1 - p + 1e-6))

    losses = []
    for _ in range(15):
        with tf.GradientTape() as tape:
            loss = loss_fn()
        variables = model.trainable_variables
        gradients = tape.gradient(loss, variables)
        assert all(g is not None for g in gradients)  # every weight is on the path to the output
        optimizer.apply_gradients(zip(gradients, variables, strict=True))
        losses.append(float(loss))
    assert losses[-1] < 0.8 * losses[0], losses


@pytest.mark.parametrize("dtype", ["float32", "mixed_float16"])
@pytest.mark.parametrize("name", aggregator_names())
def test_every_aggregator_in_a_classifier(name, dtype):
    from tests.trainer.models.test_aggregators import SMALL_PARAMS

    spec = ModelSpec(name, "logistic", SMALL_PARAMS[name])
    model = VideoClassifier(spec, num_classes=C, input_dim=D, dtype=dtype)
    outputs = numpy_outputs(model(inputs(lengths=(6, 3, 1, 0))))
    assert outputs[PREDICTIONS].shape == (4, C) and outputs[PREDICTIONS].dtype == np.float32
    for value in outputs.values():
        assert np.all(np.isfinite(value))
