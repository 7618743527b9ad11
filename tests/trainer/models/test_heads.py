"""Heads: the starter's logistic and MoE formulas, their parameter counts, and the options."""

import keras
import numpy as np
import pytest

from trainer.models import ContextGating, LogisticHead, MoEHead, build_head, head_names

R, C = 6, 4


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def representation(batch=3, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, R)).astype("float32")


def built(head, width=R):
    head.build((None, width))
    return head


def randomize(layer, rng, scale=0.7):
    layer.set_weights([rng.normal(scale=scale, size=w.shape).astype("float32") for w in layer.get_weights()])


def moe_reference(x, gate_kernel, expert_kernel, expert_bias, num_classes, mixtures):
    """The starter's MoeModel: per class, softmax over M+1 gates (the last a dummy expert
    that predicts 0) times M sigmoid experts."""
    gates = softmax((x @ gate_kernel).reshape(len(x), num_classes, mixtures + 1))
    experts = sigmoid((x @ expert_kernel + expert_bias).reshape(len(x), num_classes, mixtures))
    return (gates[..., :mixtures] * experts).sum(-1)


def test_heads_are_registered():
    assert set(head_names()) >= {"logistic", "moe"}


def test_logistic_parameter_count():
    assert built(LogisticHead(C)).count_params() == R * C + C


@pytest.mark.parametrize("mixtures", [1, 2, 4])
def test_moe_parameter_count_matches_the_starter(mixtures):
    # The starter's gates have no bias (biases_initializer=None); its experts have one.
    gates = R * C * (mixtures + 1)
    experts = R * C * mixtures + C * mixtures
    assert built(MoEHead(C, {"num_mixtures": mixtures})).count_params() == gates + experts


def test_context_gating_and_hidden_layer_parameter_counts():
    base = R * C + C
    assert built(LogisticHead(C, {"context_gating": True})).count_params() == base + C * C + C
    assert built(LogisticHead(C, {"input_context_gating": True})).count_params() == base + R * R + R
    assert built(LogisticHead(C, {"hidden_size": 5})).count_params() == (R * 5 + 5) + (5 * C + C)


def test_logistic_is_a_sigmoid_of_an_affine_map():
    rng = np.random.default_rng(1)
    head = built(LogisticHead(C))
    randomize(head, rng)
    kernel, bias = head.logits.get_weights()
    x = representation()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(head(x)), sigmoid(x @ kernel + bias), atol=1e-6)


@pytest.mark.parametrize("mixtures", [1, 3])
def test_moe_matches_the_starter_formula(mixtures):
    rng = np.random.default_rng(2)
    head = built(MoEHead(C, {"num_mixtures": mixtures}))
    randomize(head, rng)
    (gate_kernel,) = head.gates.get_weights()
    expert_kernel, expert_bias = head.experts.get_weights()
    x = representation()
    expected = moe_reference(x, gate_kernel, expert_kernel, expert_bias, C, mixtures)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(head(x)), expected, atol=1e-6)


def test_context_gating_is_x_times_sigmoid_of_an_affine_map():
    rng = np.random.default_rng(3)
    gating = ContextGating()
    gating.build((None, R))
    randomize(gating, rng)
    kernel, bias = gating.gate.get_weights()
    x = representation()
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(gating(x)), x * sigmoid(x @ kernel + bias), atol=1e-6
    )


def test_bottlenecked_context_gating():
    rng = np.random.default_rng(4)
    gating = ContextGating(reduction=2)
    gating.build((None, R))
    randomize(gating, rng)
    w1, b1 = gating.squeeze.get_weights()
    w2, b2 = gating.gate.get_weights()
    assert w1.shape == (R, R // 2)
    x = representation()
    expected = x * sigmoid(np.maximum(x @ w1 + b1, 0) @ w2 + b2)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(gating(x)), expected, atol=1e-6)


@pytest.mark.parametrize("name", ["logistic", "moe"])
@pytest.mark.parametrize(
    "params", [{}, {"context_gating": True}, {"input_context_gating": True, "hidden_size": 5}]
)
def test_outputs_are_probabilities(name, params):
    head = build_head(name, C, params)
    head.build((None, R))
    randomize(head, np.random.default_rng(5), scale=2.0)
    moderate = keras.ops.convert_to_numpy(head(representation(batch=16) * 0.1))
    assert moderate.shape == (16, C)
    assert np.all((moderate > 0) & (moderate < 1))
    # Large logits saturate float32's sigmoid at exactly 0 or 1, never beyond.
    extreme = keras.ops.convert_to_numpy(head(representation(batch=16) * 100))
    assert np.all((extreme >= 0) & (extreme <= 1))


@pytest.mark.parametrize("name", ["logistic", "moe"])
def test_outputs_are_float32_under_mixed_precision(name):
    head = build_head(name, C, {"context_gating": True}, dtype="mixed_float16")
    out = head(representation())
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    classifier = head.gates if name == "moe" else head.logits
    assert classifier.compute_dtype == "float16"  # the matmuls do run in float16
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(out)))


def test_l2_penalty_is_the_starters_slim_regulariser():
    # slim.l2_regularizer(p)(w) = p * sum(w**2) / 2, one term per kernel.
    penalty = 1e-3
    head = built(MoEHead(C, {"l2_penalty": penalty}))
    head(representation())
    kernels = [head.gates.kernel, head.experts.kernel]
    expected = sum(penalty * float(np.sum(keras.ops.convert_to_numpy(k) ** 2)) / 2 for k in kernels)
    got = sum(float(keras.ops.convert_to_numpy(loss)) for loss in head.losses)
    assert got == pytest.approx(expected, rel=1e-5)
    assert built(MoEHead(C, {"l2_penalty": 0.0})).losses == []


@pytest.mark.parametrize("name", ["logistic", "moe"])
def test_get_config_round_trip(name):
    head = build_head(name, C, {"hidden_size": 5, "context_gating": True}, name="head")
    x = representation()
    expected = keras.ops.convert_to_numpy(head(x))
    config = head.get_config()
    assert config["num_classes"] == C and config["config"]["hidden_size"] == 5
    clone = type(head).from_config(config)
    clone(x)
    clone.set_weights(head.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(clone(x)), expected, atol=1e-7)
