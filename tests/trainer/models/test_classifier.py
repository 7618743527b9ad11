"""ModelSpec, presets, the registry's errors and VideoClassifier end to end."""

import json

import keras
import numpy as np
import pytest

from trainer.models import (
    PREDICTIONS,
    REPRESENTATION,
    ModelSpec,
    VideoClassifier,
    aggregator_names,
    build_aggregator,
    get_preset,
    make_config,
    preset_names,
)

D, C = 12, 5
YT8M_FRAME_DIM = 1024 + 128


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


def inputs(lengths=(6, 3, 1), num_frames=6, dim=D, seed=0):
    rng = np.random.default_rng(seed)
    mask = (np.arange(num_frames)[None, :] < np.asarray(lengths)[:, None]).astype("float32")
    frames = rng.normal(size=(len(lengths), num_frames, dim)).astype("float32") * mask[..., None]
    return {"frames": frames, "mask": mask}


def numpy_outputs(outputs):
    return {key: keras.ops.convert_to_numpy(value) for key, value in outputs.items()}


# ----- ModelSpec and the registry ---------------------------------------------------------
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


def test_make_config_checks_kind_types_and_values():
    with pytest.raises(ValueError, match=r"unknown kind 'backbone'; expected one of aggregator, head"):
        make_config("backbone", "mean", {})
    with pytest.raises(ValueError, match=r"DBoFConfig.pooling must be one of max, mean; got 'sum'"):
        make_config("aggregator", "dbof", {"pooling": "sum"})
    with pytest.raises(ValueError, match=r"HierarchicalLSTMConfig.full_state must be bool, got 1"):
        make_config("aggregator", "hlstm", {"full_state": 1})
    with pytest.raises(ValueError, match=r"need hidden_size > 0"):
        make_config("aggregator", "netvlad", {"hidden_size": 0})
    # JSON writes 1.0 as 1: an int is accepted for a float field, and stored as a float.
    assert make_config("head", "moe", {"l2_penalty": 1}).l2_penalty == 1.0


def test_build_aggregator_takes_layer_kwargs():
    layer = build_aggregator("lstm", {"units": 3}, name="teacher_lstm")
    assert layer.name == "teacher_lstm" and layer.config.units == 3


# ----- presets ------------------------------------------------------------------------------
REQUIRED_PRESETS = {
    "hlstm",
    "lstm",
    "dbof",
    "netvlad",
    "nextvlad",
    "mean-logistic",
    "max-logistic",
    "video-logistic",
    "video-moe",
    "hlstm-small",
    "nextvlad-small",
    "dbof-small",
    "mean-moe-small",
}


def test_required_presets_exist():
    assert REQUIRED_PRESETS <= set(preset_names())


def test_unknown_preset_lists_the_names():
    with pytest.raises(ValueError, match=r"unknown model preset 'hrnn'; valid presets: dbof, dbof-small"):
        get_preset("hrnn")


def test_the_paper_presets():
    teacher, student = get_preset("hlstm"), get_preset("hlstm-student")
    assert (teacher.aggregator, teacher.head) == ("hlstm", "moe")
    # The paper's representation loss compares the two final states directly.
    assert (
        teacher.representation_dim(YT8M_FRAME_DIM) == student.representation_dim(YT8M_FRAME_DIM) == 4 * 1024
    )


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_has_a_representation_width_for_yt8m_frames(name):
    assert get_preset(name).representation_dim(YT8M_FRAME_DIM) > 0


@pytest.mark.parametrize("name", [name for name in preset_names() if name.endswith("-small")])
def test_small_presets_build_and_stay_small(name):
    model = VideoClassifier(get_preset(name), num_classes=C, input_dim=D)
    outputs = numpy_outputs(model(inputs()))
    assert outputs[REPRESENTATION].shape == (3, model.representation_dim)
    assert outputs[PREDICTIONS].shape == (3, C)
    assert model.representation_dim <= 64
    assert np.all(np.isfinite(outputs[REPRESENTATION]))


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
