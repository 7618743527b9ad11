"""Aggregators: padding is invisible, and each model computes its published formula.

The references below are written in numpy from the papers' equations, on weights set
by hand, so a layer that runs but computes the wrong thing (a wrong axis, a reversed
sequence, padding leaking into a sum, a missing normalisation) fails.
"""

import keras
import numpy as np
import pytest

from trainer.models import (
    HierarchicalLSTM,
    LSTMAggregator,
    NetVLAD,
    NeXtVLAD,
    aggregator_names,
    build_aggregator,
)

D = 8
# Tiny configs of every registered aggregator; a new aggregator must be added here.
SMALL_PARAMS = {
    "mean": {},
    "max": {},
    "video": {},
    "dbof": {"cluster_size": 16, "hidden_size": 8},
    "lstm": {"units": 6, "num_layers": 2, "full_state": True},
    "hlstm": {"units": 6, "num_layers": 2, "chunk_size": 2},
    "netvlad": {"clusters": 4, "hidden_size": 8},
    "nextvlad": {"clusters": 4, "groups": 2, "expansion": 2, "hidden_size": 8, "gating_reduction": 2},
}


def prefix_mask(lengths, num_frames):
    return (np.arange(num_frames)[None, :] < np.asarray(lengths)[:, None]).astype("float32")


def videos(lengths, num_frames, dim=D, seed=0):
    """Random frames with zeros in the padded positions, and their mask."""
    rng = np.random.default_rng(seed)
    mask = prefix_mask(lengths, num_frames)
    frames = rng.normal(size=(len(lengths), num_frames, dim)).astype("float32") * mask[..., None]
    return frames, mask


def with_garbage_padding(frames, mask, extra, seed=1):
    """The same videos, padded `extra` frames longer, with garbage (huge, NaN, inf) as padding."""
    rng = np.random.default_rng(seed)
    batch, num_frames, dim = frames.shape
    longer = rng.normal(scale=1e3, size=(batch, num_frames + extra, dim)).astype("float32")
    longer[:, ::3, 0] = np.nan
    longer[:, 1::3, 1] = np.inf
    longer_mask = np.concatenate([mask, np.zeros((batch, extra), "float32")], axis=1)
    longer[longer_mask > 0] = frames[mask > 0]  # same (video, frame) order on both sides
    return longer, longer_mask


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def l2n(x, axis=-1):
    return x / np.sqrt(np.maximum((x * x).sum(axis=axis, keepdims=True), 1e-12))


def randomize(layer, rng, scale=0.5):
    """Replace every weight of a built layer by normal noise (default inits are too tame)."""
    layer.set_weights([rng.normal(scale=scale, size=w.shape).astype("float32") for w in layer.get_weights()])


# ----- every aggregator -----------------------------------------------------------------
def test_every_registered_aggregator_has_test_params():
    assert set(aggregator_names()) == set(SMALL_PARAMS)


@pytest.mark.parametrize("name", aggregator_names())
def test_padding_never_changes_the_output(name):
    frames, mask = videos([6, 3, 1, 0], 6)
    layer = build_aggregator(name, SMALL_PARAMS[name])
    longer, longer_mask = with_garbage_padding(frames, mask, extra=5)
    for training in (False, True):
        expected = keras.ops.convert_to_numpy(layer(frames, mask, training=training))
        got = keras.ops.convert_to_numpy(layer(longer, longer_mask, training=training))
        assert np.all(np.isfinite(got))
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", aggregator_names())
def test_output_dim_is_the_width_of_the_output(name):
    frames, mask = videos([4, 2], 4)
    layer = build_aggregator(name, SMALL_PARAMS[name])
    assert layer(frames, mask).shape == (2, layer.output_dim(D))


@pytest.mark.parametrize("name", aggregator_names())
def test_compiled_call_equals_eager_call(name):
    # TensorFlow: model.fit traces with the batch (and possibly the time) dimension unknown.
    # JAX: jit, where the shapes are static but every op must be traceable.
    frames, mask = videos([5, 2, 1], 5)
    layer = build_aggregator(name, SMALL_PARAMS[name])
    eager = keras.ops.convert_to_numpy(layer(frames, mask))
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        compiled = tf.function(
            lambda f, m: layer(f, m),
            input_signature=[tf.TensorSpec([None, None, D]), tf.TensorSpec([None, None])],
        )
    elif keras.backend.backend() == "jax":
        import jax

        compiled = jax.jit(lambda f, m: layer(f, m))
    else:
        pytest.skip(f"no compiled path tested for {keras.backend.backend()}")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(compiled(frames, mask)), eager, atol=1e-5)


@pytest.mark.parametrize("name", aggregator_names())
def test_get_config_round_trip_rebuilds_the_same_function(name):
    frames, mask = videos([4, 2], 4)
    layer = build_aggregator(name, SMALL_PARAMS[name], name="agg")
    expected = keras.ops.convert_to_numpy(layer(frames, mask))
    config = layer.get_config()
    assert config["config"] == {**layer.config_cls().to_dict(), **SMALL_PARAMS[name]}
    clone = type(layer).from_config(config)
    clone(frames, mask)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(clone(frames, mask)), expected, atol=1e-6)


# ----- pooling --------------------------------------------------------------------------
def test_mean_averages_only_the_real_frames():
    frames, mask = videos([3, 1], 4)
    got = keras.ops.convert_to_numpy(build_aggregator("mean")(frames, mask))
    np.testing.assert_allclose(got, [frames[0, :3].mean(0), frames[1, 0]], atol=1e-6)


def test_max_ignores_padding_even_when_every_value_is_negative():
    frames = -1.0 - np.abs(videos([3, 2], 4)[0])  # all real values below zero, padding 0 below
    mask = prefix_mask([3, 2], 4)
    got = keras.ops.convert_to_numpy(build_aggregator("max")(frames, mask))
    np.testing.assert_allclose(got, [frames[0, :3].max(0), frames[1, :2].max(0)], atol=1e-6)
    assert np.all(got < 0)


def test_video_takes_the_single_frame():
    frames = np.random.default_rng(0).normal(size=(3, 1, D)).astype("float32")
    got = keras.ops.convert_to_numpy(build_aggregator("video")(frames, np.ones((3, 1), "float32")))
    np.testing.assert_array_equal(got, frames[:, 0])


def test_dbof_matches_the_starter_formula():
    rng = np.random.default_rng(3)
    frames, mask = videos([5, 2], 5)
    for pooling in ("max", "mean"):
        params = {"cluster_size": 6, "hidden_size": 4, "pooling": pooling, "batch_norm": False}
        layer = build_aggregator("dbof", params)
        layer(frames, mask)
        randomize(layer, rng)
        w, b = layer.cluster.get_weights()
        wh, bh = layer.hidden.dense.get_weights()
        got = keras.ops.convert_to_numpy(layer(frames, mask))
        for video in range(2):
            n = int(mask[video].sum())
            activations = np.clip(frames[video, :n] @ w + b, 0, 6)
            pooled = activations.max(0) if pooling == "max" else activations.mean(0)
            np.testing.assert_allclose(got[video], np.clip(pooled @ wh + bh, 0, 6), atol=1e-5)


# ----- NetVLAD / NeXtVLAD ---------------------------------------------------------------
def netvlad_reference(x, w, b, centres):
    """Arandjelović et al.: V_k = sum_t a_tk (x_t - c_k), intra-normalised, then l2-normalised."""
    a = softmax(x @ w + b)  # [T, K]
    v = np.stack([(a[:, k : k + 1] * (x - centres[k])).sum(0) for k in range(len(centres))])
    return l2n(l2n(v).reshape(-1))


def test_netvlad_matches_the_published_formula():
    rng = np.random.default_rng(1)
    frames, mask = videos([5, 3, 1], 5)
    layer = build_aggregator(
        "netvlad", {"clusters": 3, "hidden_size": 0, "batch_norm": False, "gating": False}
    )
    layer(frames, mask)
    randomize(layer, rng)
    w, b = layer.assignment.get_weights()
    centres = keras.ops.convert_to_numpy(layer.centres.value)
    got = keras.ops.convert_to_numpy(layer(frames, mask))
    for video, n in enumerate([5, 3, 1]):
        np.testing.assert_allclose(got[video], netvlad_reference(frames[video, :n], w, b, centres), atol=1e-5)


def test_netvlad_hidden_layer_and_context_gating():
    rng = np.random.default_rng(2)
    frames, mask = videos([4, 2], 4)
    params = {"clusters": 3, "hidden_size": 5, "batch_norm": False, "gating": True}
    layer = build_aggregator("netvlad", params)
    layer(frames, mask)
    randomize(layer, rng)
    w, b = layer.assignment.get_weights()
    centres = keras.ops.convert_to_numpy(layer.centres.value)
    wh, bh = layer.hidden.dense.get_weights()
    wg, bg = layer.hidden.context_gating.gate.get_weights()
    got = keras.ops.convert_to_numpy(layer(frames, mask))
    for video, n in enumerate([4, 2]):
        hidden = netvlad_reference(frames[video, :n], w, b, centres) @ wh + bh
        np.testing.assert_allclose(got[video], hidden * sigmoid(hidden @ wg + bg), atol=1e-5)


def test_netvlad_parameter_count_without_hidden_layer():
    clusters = 5
    layer = NetVLAD({"clusters": clusters, "hidden_size": 0, "batch_norm": False, "gating": False})
    layer.build((None, None, D))
    assert layer.count_params() == 2 * clusters * D + clusters


def nextvlad_reference(x, we, be, wa, ba, wc, bc, centres, groups):
    """Lin et al.: x' = x We + be split into G groups; attention sigmoid(x' Wa + ba)_g; soft
    assignment softmax_k(x' Wc + bc) per group; V_k = sum_{t,g} att_tg a_tgk (x'_tg - c_k)."""
    expanded = x @ we + be  # [T, λD]
    attention = sigmoid(expanded @ wa + ba)  # [T, G]
    clusters, group_dim = centres.shape
    assign = softmax((expanded @ wc + bc).reshape(len(x), groups, clusters))  # [T, G, K]
    grouped = expanded.reshape(len(x), groups, group_dim)  # [T, G, λD/G]
    v = np.zeros((clusters, group_dim))
    for t in range(len(x)):
        for g in range(groups):
            for k in range(clusters):
                v[k] += attention[t, g] * assign[t, g, k] * (grouped[t, g] - centres[k])
    return l2n(v).reshape(-1)


def test_nextvlad_matches_the_published_formula():
    rng = np.random.default_rng(4)
    dim, groups = 6, 3
    frames, mask = videos([4, 2, 1], 4, dim=dim)
    params = {
        "clusters": 2,
        "groups": groups,
        "expansion": 2,
        "hidden_size": 0,
        "batch_norm": False,
        "gating": False,
    }
    layer = build_aggregator("nextvlad", params)
    layer(frames, mask)
    randomize(layer, rng)
    weights = [*layer.expand.get_weights(), *layer.attention.get_weights(), *layer.assignment.get_weights()]
    centres = keras.ops.convert_to_numpy(layer.centres.value)
    assert centres.shape == (2, 2 * dim // groups)
    got = keras.ops.convert_to_numpy(layer(frames, mask))
    for video, n in enumerate([4, 2, 1]):
        expected = nextvlad_reference(frames[video, :n], *weights, centres, groups)
        np.testing.assert_allclose(got[video], expected, atol=1e-5)


def test_nextvlad_refuses_groups_that_do_not_divide_the_expanded_width():
    layer = NeXtVLAD(
        {"clusters": 2, "groups": 5, "expansion": 1, "hidden_size": 0, "batch_norm": False, "gating": False}
    )
    with pytest.raises(ValueError, match="divisible by groups"):
        layer.build((None, None, 8))


# ----- LSTM and H-LSTM --------------------------------------------------------------------
def lstm_reference(sequence, kernel, recurrent, bias):
    """One Keras-layout LSTM layer (gates i, f, c, o) over `sequence`: (outputs, h, c)."""
    units = recurrent.shape[0]
    h, c = np.zeros(units), np.zeros(units)
    outputs = []
    for x in sequence:
        z = x @ kernel + h @ recurrent + bias
        i, f, g, o = (
            sigmoid(z[:units]),
            sigmoid(z[units : 2 * units]),
            np.tanh(z[2 * units : 3 * units]),
            sigmoid(z[3 * units :]),
        )
        c = f * c + i * g
        h = o * np.tanh(c)
        outputs.append(h)
    return np.array(outputs), h, c


def stack_reference(sequence, layer_weights, full_state):
    states = []
    for weights in layer_weights:
        sequence, h, c = lstm_reference(sequence, *weights)
        states += [c, h]
    return np.concatenate(states) if full_state else states[-1]


def _lstm_weights(lstms):
    return [lstm.get_weights() for lstm in lstms]


@pytest.mark.parametrize("full_state", [False, True])
def test_lstm_is_the_final_state_at_the_last_real_frame(full_state):
    rng = np.random.default_rng(5)
    frames, mask = videos([5, 3, 1], 5)
    layer = LSTMAggregator({"units": 4, "num_layers": 2, "full_state": full_state})
    layer(frames, mask)
    randomize(layer, rng)
    got = keras.ops.convert_to_numpy(layer(frames, mask))
    for video, n in enumerate([5, 3, 1]):
        expected = stack_reference(frames[video, :n], _lstm_weights(layer.lstms), full_state)
        np.testing.assert_allclose(got[video], expected, atol=1e-5)


@pytest.mark.parametrize("full_state", [False, True])
def test_hlstm_with_one_chunk_is_a_plain_two_layer_lstm(full_state):
    """chunk_size >= T: the frame LSTM reads the whole video, the chunk LSTM one step."""
    rng = np.random.default_rng(6)
    lengths = [6, 4, 1]
    frames, mask = videos(lengths, 6)
    layer = HierarchicalLSTM({"units": 5, "num_layers": 1, "chunk_size": 8, "full_state": full_state})
    layer(frames, mask)
    randomize(layer, rng)
    got = keras.ops.convert_to_numpy(layer(frames, mask))

    # The same weights in two plain keras LSTM layers, run on the real frames only.
    first = keras.layers.LSTM(5, return_state=True)
    second = keras.layers.LSTM(5, return_state=True)
    first.build((None, None, D))
    second.build((None, None, 10 if full_state else 5))
    first.set_weights(layer.frame_lstms[0].get_weights())
    second.set_weights(layer.chunk_lstms[0].get_weights())
    for video, n in enumerate(lengths):
        _, h, c = first(frames[video : video + 1, :n])
        chunk_state = keras.ops.concatenate([c, h], -1) if full_state else h
        _, h, c = second(keras.ops.expand_dims(chunk_state, 1))
        expected = keras.ops.concatenate([c, h], -1) if full_state else h
        np.testing.assert_allclose(got[video], keras.ops.convert_to_numpy(expected)[0], atol=1e-5)


def test_hlstm_runs_the_chunk_lstm_over_chunk_states_in_order():
    rng = np.random.default_rng(7)
    lengths, chunk = [7, 4, 3, 1, 0], 2
    frames, mask = videos(lengths, 7)
    layer = HierarchicalLSTM({"units": 3, "num_layers": 2, "chunk_size": chunk, "full_state": True})
    layer(frames, mask)
    randomize(layer, rng)
    got = keras.ops.convert_to_numpy(layer(frames, mask))
    lower, upper = _lstm_weights(layer.frame_lstms), _lstm_weights(layer.chunk_lstms)
    for video, n in enumerate(lengths):
        if n == 0:
            np.testing.assert_array_equal(got[video], 0)
            continue
        chunk_states = [
            stack_reference(frames[video, s : min(s + chunk, n)], lower, True) for s in range(0, n, chunk)
        ]
        expected = stack_reference(np.array(chunk_states), upper, True)
        np.testing.assert_allclose(got[video], expected, atol=1e-5)
