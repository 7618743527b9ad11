"""Frame aggregators ("backbones"): frames [B, T, D] + mask [B, T] -> representation [B, R].

The mask is 1.0 for a real frame and 0.0 for padding, and the real frames are a
prefix. Every aggregator here gives the same representation for a video whatever is
in its padded positions and however many there are: padding is first replaced by
zeros (so NaN or garbage cannot leak through a multiply by zero), and every pooling
step (mean, max, NetVLAD residual sums, LSTM steps) skips it. A video with no real
frame pools to zeros (a hidden layer after the pooling then maps those zeros as it
maps any input); it never produces NaN.

Frame-level batch normalisation, which the starter's DBoF and the NetVLAD/NeXtVLAD
sources apply to per-frame activations, would take its statistics over padding too;
those layers use a bias instead, and batch normalisation (where enabled) is applied
only to the pooled, per-video vectors.

Only `keras` and `keras.ops` are used, so the same code runs on the TensorFlow, JAX
and PyTorch backends.
"""

from __future__ import annotations

import dataclasses
import math

import keras
from keras import ops

from schemas.normalization import L2_EPSILON
from trainer.models import registry
from trainer.models.heads import PACKAGE, ContextGating

ACTIVATIONS = ("relu6", "relu", "linear")
POOLINGS = ("max", "mean")


# ----- masking helpers ------------------------------------------------------------------
def zero_padding(frames, mask):
    """(frames with padded positions set to 0, mask as the frames' float dtype, mask as bool)."""
    valid = ops.greater(mask, 0)
    frames = ops.where(ops.expand_dims(valid, -1), frames, ops.zeros_like(frames))
    return frames, ops.cast(valid, frames.dtype), valid


def masked_mean(values, mask):
    """Mean over axis 1 of [B, T, F] `values` (padding already zero) weighted by `mask` [B, T]."""
    count = ops.sum(mask, axis=1, keepdims=True)
    return ops.sum(values, axis=1) / ops.maximum(count, ops.ones_like(count))


def masked_max(values, valid):
    """Max over axis 1 of [B, T, F] `values` where `valid` [B, T]; 0 for a video with no frame."""
    expanded = ops.expand_dims(valid, -1)
    lowest = ops.full_like(values, float("-inf"))
    pooled = ops.max(ops.where(expanded, values, lowest), axis=1)
    has_frames = ops.any(valid, axis=1, keepdims=True)
    return ops.where(has_frames, pooled, ops.zeros_like(pooled))


def l2_normalize(x, axis=-1):
    """tf.nn.l2_normalize in keras.ops, computed in float32 (so that the norm survives
    float16) and returned in x's dtype."""
    x32 = ops.cast(x, "float32")
    squared = ops.sum(x32 * x32, axis=axis, keepdims=True)
    return ops.cast(x32 * ops.rsqrt(ops.maximum(squared, L2_EPSILON)), x.dtype)


def _first_step(length):
    """[1, length] bool, True only at step 0."""
    return ops.expand_dims(ops.equal(ops.arange(length), 0), 0)


def _runnable_mask(valid):
    """`valid` with step 0 switched on for sequences that have no valid step.

    cuDNN (which keras.layers.LSTM uses on a GPU) rejects fully masked sequences, so a
    sequence without any valid step runs one step over its (zeroed) first frame, and
    the caller throws that result away.
    """
    has_steps = ops.any(valid, axis=1)
    empty_first = ops.logical_and(
        ops.expand_dims(ops.logical_not(has_steps), 1), _first_step(ops.shape(valid)[1])
    )
    return ops.logical_or(valid, empty_first), has_steps


# ----- base class -----------------------------------------------------------------------
class Aggregator(keras.layers.Layer):
    """Base of the aggregators: `aggregator(frames, mask, training=False) -> [B, R]`.

    Subclasses are registered with `registry.register_aggregator(name, ConfigClass)`;
    the constructor takes the config (dataclass, dict, or None for the defaults) and
    keras Layer kwargs. `output_dim(input_dim)` is R for frames of width D.
    """

    config_cls: type
    registered_name: str

    def __init__(self, config=None, **kwargs):
        super().__init__(**kwargs)
        self.config = registry.as_config(registry.AGGREGATOR, self.registered_name, config)

    def build(self, frames_shape):
        """Create the weights for frames [B, T, D]; subclasses with weights override it."""

    def output_dim(self, input_dim: int) -> int:
        return self.config.output_dim(input_dim)

    def compute_output_shape(self, frames_shape):
        return (frames_shape[0], self.output_dim(frames_shape[-1]))

    def compute_mask(self, inputs, previous_mask=None):
        # The frame mask is consumed here; the [B, R] output has no time axis to mask.
        return None

    def get_config(self):
        config = super().get_config()
        config.update(config=self.config.to_dict())
        return config

    def _prepare(self, frames, mask):
        frames = ops.cast(frames, self.compute_dtype)
        return zero_padding(frames, ops.cast(mask, self.compute_dtype))


@dataclasses.dataclass(frozen=True)
class PoolingConfig(registry.Config):
    """Nothing to configure."""

    def output_dim(self, input_dim: int) -> int:
        return input_dim


@registry.register_aggregator("mean", PoolingConfig)
@keras.saving.register_keras_serializable(package=PACKAGE)
class MeanPooling(Aggregator):
    """Average of the real frames (the starter's FrameLevelLogisticModel input)."""

    def call(self, frames, mask, training=False):
        frames, mask, _ = self._prepare(frames, mask)
        return masked_mean(frames, mask)


@registry.register_aggregator("max", PoolingConfig)
@keras.saving.register_keras_serializable(package=PACKAGE)
class MaxPooling(Aggregator):
    """Element-wise max over the real frames (padding never wins, even below zero)."""

    def call(self, frames, mask, training=False):
        frames, _, valid = self._prepare(frames, mask)
        return masked_max(frames, valid)


@registry.register_aggregator("video", PoolingConfig)
@keras.saving.register_keras_serializable(package=PACKAGE)
class VideoFeatures(Aggregator):
    """Video-level features as a one-frame video: frames [B, 1, D] -> [B, D].

    Lets the starter's video-level models (logistic, MoE on mean_rgb/mean_audio) share
    the frame-level interface. Takes the first frame; zeros if it is masked.
    """

    def call(self, frames, mask, training=False):
        frames, _, _ = self._prepare(frames, mask)
        return frames[:, 0, :]


# ----- the hidden layer shared by DBoF, NetVLAD and NeXtVLAD -----------------------------
@keras.saving.register_keras_serializable(package=PACKAGE)
class HiddenLayer(keras.layers.Layer):
    """Dense -> (batch norm instead of the bias) -> activation -> (context gating).

    The video-level fully connected layer that DBoF ("hidden1"), Willow's NetVLAD and
    NeXtVLAD put after pooling. It sees one vector per video, so batch normalisation
    here is unaffected by padding.
    """

    def __init__(
        self,
        units: int,
        activation: str = "linear",
        batch_norm: bool = False,
        gating: bool = False,
        gating_reduction: int = 1,
        kernel_stddev: float | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = int(units)
        self.activation_name = activation
        self.batch_norm = bool(batch_norm)
        self.gating = bool(gating)
        self.gating_reduction = int(gating_reduction)
        self.kernel_stddev = kernel_stddev
        initializer = (
            keras.initializers.RandomNormal(stddev=kernel_stddev) if kernel_stddev else "glorot_uniform"
        )
        self.dense = keras.layers.Dense(
            self.units,
            use_bias=not self.batch_norm,
            kernel_initializer=initializer,
            name="dense",
            dtype=self.dtype_policy,
        )
        self.norm = (
            keras.layers.BatchNormalization(name="batch_norm", dtype=self.dtype_policy)
            if self.batch_norm
            else None
        )
        self.activation = keras.activations.get(activation)
        self.context_gating = (
            ContextGating(self.gating_reduction, name="context_gating", dtype=self.dtype_policy)
            if self.gating
            else None
        )

    def build(self, input_shape):
        self.dense.build(tuple(input_shape))
        output_shape = (*tuple(input_shape)[:-1], self.units)
        if self.norm is not None:
            self.norm.build(output_shape)
        if self.context_gating is not None:
            self.context_gating.build(output_shape)

    def call(self, inputs, training=False):
        x = self.dense(inputs)
        if self.norm is not None:
            x = self.norm(x, training=training)
        x = self.activation(x)
        if self.context_gating is not None:
            x = self.context_gating(x)
        return x

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            activation=self.activation_name,
            batch_norm=self.batch_norm,
            gating=self.gating,
            gating_reduction=self.gating_reduction,
            kernel_stddev=self.kernel_stddev,
        )
        return config


class _HiddenConfigMixin:
    """Checks of the hidden-layer fields that DBoF, NetVLAD and NeXtVLAD share."""

    def _validate_hidden(self):
        self._require_positive("hidden_size", allow_zero=True)
        self._require_positive("gating_reduction")
        self._require_choice("hidden_activation", ACTIVATIONS)
        if self.hidden_size == 0 and (self.gating or self.batch_norm):
            raise ValueError(
                f"{type(self).__name__}: gating and batch_norm act on the hidden layer; "
                "they need hidden_size > 0"
            )


def _hidden_layer(config, kernel_stddev=None, dtype=None):
    if not config.hidden_size:
        return None
    return HiddenLayer(
        config.hidden_size,
        activation=config.hidden_activation,
        batch_norm=config.batch_norm,
        gating=config.gating,
        gating_reduction=config.gating_reduction,
        kernel_stddev=kernel_stddev,
        name="hidden",
        dtype=dtype,
    )


# ----- DBoF -----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class DBoFConfig(_HiddenConfigMixin, registry.Config):
    """Defaults from the starter's DbofModel flags: dbof_cluster_size=8192,
    dbof_hidden_size=1024, dbof_pooling_method=max, relu6, dbof_add_batch_norm=True
    (applied here to the hidden layer only; see the module docstring). The starter's
    random sampling of 30 frames is not part of the model: views choose frames."""

    cluster_size: int = 8192
    hidden_size: int = 1024
    pooling: str = "max"
    cluster_activation: str = "relu6"
    hidden_activation: str = "relu6"
    batch_norm: bool = True
    gating: bool = False
    gating_reduction: int = 1

    def validate(self):
        self._require_positive("cluster_size")
        self._require_choice("pooling", POOLINGS)
        self._require_choice("cluster_activation", ACTIVATIONS)
        self._validate_hidden()

    def output_dim(self, input_dim: int) -> int:
        return self.hidden_size or self.cluster_size


@registry.register_aggregator("dbof", DBoFConfig)
@keras.saving.register_keras_serializable(package=PACKAGE)
class DBoF(Aggregator):
    """Deep Bag of Frames (the starter's DbofModel, Abu-El-Haija et al. 2016).

    Each frame is projected to `cluster_size` units (+ bias, activation), the projections
    are pooled over real frames (max or mean), and a hidden layer follows. Weights start
    as the starter's: normal with stddev 1/sqrt(fan_in).
    """

    def __init__(self, config: DBoFConfig | dict | None = None, **kwargs):
        super().__init__(config, **kwargs)
        self.cluster = None
        self.hidden = _hidden_layer(
            self.config, kernel_stddev=1.0 / math.sqrt(self.config.cluster_size), dtype=self.dtype_policy
        )

    def build(self, frames_shape):
        input_dim = int(frames_shape[-1])
        stddev = 1.0 / math.sqrt(input_dim)
        self.cluster = keras.layers.Dense(
            self.config.cluster_size,
            activation=self.config.cluster_activation,
            kernel_initializer=keras.initializers.RandomNormal(stddev=stddev),
            bias_initializer=keras.initializers.RandomNormal(stddev=stddev),
            name="cluster",
            dtype=self.dtype_policy,
        )
        self.cluster.build((None, None, input_dim))
        if self.hidden is not None:
            self.hidden.build((None, self.config.cluster_size))

    def call(self, frames, mask, training=False):
        frames, mask, valid = self._prepare(frames, mask)
        activations = self.cluster(frames)
        if self.config.pooling == "max":
            pooled = masked_max(activations, valid)
        else:
            pooled = masked_mean(activations * ops.expand_dims(mask, -1), mask)
        return pooled if self.hidden is None else self.hidden(pooled, training=training)


# ----- LSTMs ----------------------------------------------------------------------------
def _lstm_stack(units: int, num_layers: int, prefix: str, dtype):
    return [
        keras.layers.LSTM(
            units,
            return_sequences=index < num_layers - 1,
            return_state=True,
            name=f"{prefix}_{index}",
            dtype=dtype,
        )
        for index in range(num_layers)
    ]


def _build_lstm_stack(lstms, input_dim: int) -> int:
    """Build stacked LSTMs for inputs of width `input_dim`; returns the top layer's units."""
    width = input_dim
    for lstm in lstms:
        lstm.build((None, None, width))
        width = lstm.units
    return width


def _run_lstm_stack(lstms, sequences, valid, full_state: bool, training):
    """Final state of stacked LSTMs at each sequence's last valid step.

    Returns the last layer's h, or with `full_state` the concatenation [c_1, h_1, ...,
    c_L, h_L] over layers, the state layout of TF1's MultiRNNCell(BasicLSTMCell,
    state_is_tuple=False) that the paper's code passes on.
    """
    states = []
    x = sequences
    for lstm in lstms:
        x, h, c = lstm(x, mask=valid, training=training)
        states += [c, h]
    return ops.concatenate(states, axis=-1) if full_state else states[-1]


@dataclasses.dataclass(frozen=True)
class LSTMConfig(registry.Config):
    """Defaults from the starter's LstmModel flags: lstm_cells=1024, lstm_layers=2, and
    its representation, the last layer's h (`state[-1].h`). keras.layers.LSTM starts the
    forget-gate bias at 1, as BasicLSTMCell's forget_bias=1.0."""

    units: int = 1024
    num_layers: int = 2
    full_state: bool = False

    def validate(self):
        self._require_positive("units", "num_layers")

    def output_dim(self, input_dim: int) -> int:
        return 2 * self.num_layers * self.units if self.full_state else self.units


@registry.register_aggregator("lstm", LSTMConfig)
@keras.saving.register_keras_serializable(package=PACKAGE)
class LSTMAggregator(Aggregator):
    """Stacked LSTM over the real frames; the final state at the last real frame."""

    def __init__(self, config: LSTMConfig | dict | None = None, **kwargs):
        super().__init__(config, **kwargs)
        self.lstms = _lstm_stack(self.config.units, self.config.num_layers, "lstm", self.dtype_policy)

    def build(self, frames_shape):
        _build_lstm_stack(self.lstms, int(frames_shape[-1]))

    def call(self, frames, mask, training=False):
        frames, _, valid = self._prepare(frames, mask)
        runnable, has_frames = _runnable_mask(valid)
        state = _run_lstm_stack(self.lstms, frames, runnable, self.config.full_state, training)
        return ops.where(ops.expand_dims(has_frames, -1), state, ops.zeros_like(state))


@dataclasses.dataclass(frozen=True)
class HierarchicalLSTMConfig(registry.Config):
    """Defaults from the paper's code (Bhardwaj et al., CVPR 2019, HierarchicalLstmModel):
    lstm_cells=1024 and lstm_layers=2 at both levels, the full concatenated (c, h) state
    passed up and used as the representation (4 * 1024 wide), and chunks of 15 frames
    (its teacher splits 300 frames into num_inputs_to_lstm=20 chunks; its student splits
    30 frames into 5 chunks of 6, see the `hlstm-student` preset)."""

    units: int = 1024
    num_layers: int = 2
    chunk_size: int = 15
    full_state: bool = True

    def validate(self):
        self._require_positive("units", "num_layers", "chunk_size")

    def output_dim(self, input_dim: int) -> int:
        return 2 * self.num_layers * self.units if self.full_state else self.units


@registry.register_aggregator("hlstm", HierarchicalLSTMConfig)
@keras.saving.register_keras_serializable(package=PACKAGE)
class HierarchicalLSTM(Aggregator):
    """H-LSTM, the paper's teacher and student ("Efficient Video Classification Using
    Fewer Frames", Bhardwaj et al., CVPR 2019, after Pan et al.'s hierarchical encoder).

    The frames are cut into consecutive chunks of `chunk_size`; a frame-level LSTM
    stack encodes each chunk separately (its final state at the chunk's last real
    frame), and a chunk-level LSTM stack runs over those chunk states. The
    representation is the chunk-level stack's final state. Chunks are counted from the
    first frame, so padding only ever adds chunks with no real frame, which the
    chunk-level LSTM skips (as the paper's code does with sequence lengths
    ceil(num_frames / chunk)).
    """

    def __init__(self, config: HierarchicalLSTMConfig | dict | None = None, **kwargs):
        super().__init__(config, **kwargs)
        units, layers = self.config.units, self.config.num_layers
        self.frame_lstms = _lstm_stack(units, layers, "frame_lstm", self.dtype_policy)
        self.chunk_lstms = _lstm_stack(units, layers, "chunk_lstm", self.dtype_policy)

    def build(self, frames_shape):
        _build_lstm_stack(self.frame_lstms, int(frames_shape[-1]))
        # The chunk-level LSTM reads what the frame-level one hands up: h, or the full state.
        _build_lstm_stack(self.chunk_lstms, self.config.output_dim(int(frames_shape[-1])))

    def call(self, frames, mask, training=False):
        chunk = self.config.chunk_size
        frames, _, valid = self._prepare(frames, mask)
        num_frames = ops.shape(frames)[1]
        input_dim = frames.shape[-1]
        num_chunks = (num_frames + chunk - 1) // chunk
        pad = num_chunks * chunk - num_frames
        frames = ops.pad(frames, [[0, 0], [0, pad], [0, 0]])
        valid = ops.greater(ops.pad(ops.cast(valid, "int32"), [[0, 0], [0, pad]]), 0)

        # Level 1: every chunk of every video is one sequence of `chunk` frames.
        chunk_frames = ops.reshape(frames, (-1, chunk, input_dim))
        chunk_runnable, chunk_has_frames = _runnable_mask(ops.reshape(valid, (-1, chunk)))
        chunk_states = _run_lstm_stack(
            self.frame_lstms, chunk_frames, chunk_runnable, self.config.full_state, training
        )
        state_dim = chunk_states.shape[-1]

        # Level 2: the chunk states of a video, in order; chunks without a real frame are masked.
        chunk_states = ops.reshape(chunk_states, (-1, num_chunks, state_dim))
        video_runnable, video_has_frames = _runnable_mask(ops.reshape(chunk_has_frames, (-1, num_chunks)))
        state = _run_lstm_stack(
            self.chunk_lstms, chunk_states, video_runnable, self.config.full_state, training
        )
        return ops.where(ops.expand_dims(video_has_frames, -1), state, ops.zeros_like(state))


# ----- NetVLAD and NeXtVLAD ---------------------------------------------------------------
def _vlad(assignments, features, centres):
    """Intra-normalised VLAD residuals, flattened cluster-major.

    assignments [B, N, K] (zero for padding), features [B, N, F], centres [K, F]:
    V_k = sum_n a_nk (x_n - c_k) = (A^T X)_k - (sum_n a_nk) c_k, each V_k l2-normalised.
    Returns [B, K * F] with index k * F + f.
    """
    weighted = ops.matmul(ops.transpose(assignments, (0, 2, 1)), features)  # [B, K, F]
    mass = ops.expand_dims(ops.sum(assignments, axis=1), -1)  # [B, K, 1]
    residuals = weighted - mass * ops.expand_dims(centres, 0)
    residuals = l2_normalize(residuals, axis=-1)
    return ops.reshape(residuals, (-1, centres.shape[0] * centres.shape[1]))


@dataclasses.dataclass(frozen=True)
class NetVLADConfig(_HiddenConfigMixin, registry.Config):
    """Defaults after Willow's YouTube-8M NetVLAD (Miech et al. 2017, NetVLADModelLF with
    --netvlad_hidden_size=1024 --netvlad_relu=False --gating=True), with 64 clusters on
    the joint 1152-d frame (Willow ran 256 RGB + 32 audio clusters on separate streams);
    the hidden layer then holds 64 * 1152 * 1024 ~ 75M weights."""

    clusters: int = 64
    hidden_size: int = 1024
    hidden_activation: str = "linear"
    batch_norm: bool = True
    gating: bool = True
    gating_reduction: int = 1

    def validate(self):
        self._require_positive("clusters")
        self._validate_hidden()

    def output_dim(self, input_dim: int) -> int:
        return self.hidden_size or self.clusters * input_dim


@registry.register_aggregator("netvlad", NetVLADConfig)
@keras.saving.register_keras_serializable(package=PACKAGE)
class NetVLAD(Aggregator):
    """NetVLAD (Arandjelović et al. 2016) as used on YouTube-8M by Willow (Miech et al. 2017).

    a_tk = softmax_k(x_t W + b) over K clusters; V_k = sum_t m_t a_tk (x_t - c_k) over
    real frames; each V_k l2-normalised (intra-normalisation); the K*D vector
    (cluster-major) l2-normalised; then the optional hidden layer and context gating.
    Parameters without the hidden layer: D*K (W) + K (b) + K*D (centres) = 2*K*D + K.
    """

    def __init__(self, config: NetVLADConfig | dict | None = None, **kwargs):
        super().__init__(config, **kwargs)
        self.assignment = None
        self.centres = None
        self.hidden = _hidden_layer(self.config, dtype=self.dtype_policy)

    def build(self, frames_shape):
        input_dim, clusters = int(frames_shape[-1]), self.config.clusters
        stddev = 1.0 / math.sqrt(input_dim)
        self.assignment = keras.layers.Dense(
            clusters,
            activation="softmax",
            kernel_initializer=keras.initializers.RandomNormal(stddev=stddev),
            bias_initializer=keras.initializers.RandomNormal(stddev=stddev),
            name="assignment",
            dtype=self.dtype_policy,
        )
        self.assignment.build((None, None, input_dim))
        self.centres = self.add_weight(
            shape=(clusters, input_dim),
            initializer=keras.initializers.RandomNormal(stddev=stddev),
            name="centres",
        )
        if self.hidden is not None:
            self.hidden.build((None, clusters * input_dim))

    def call(self, frames, mask, training=False):
        frames, mask, _ = self._prepare(frames, mask)
        assignments = self.assignment(frames) * ops.expand_dims(mask, -1)
        vlad = l2_normalize(_vlad(assignments, frames, ops.cast(self.centres, frames.dtype)), axis=-1)
        return vlad if self.hidden is None else self.hidden(vlad, training=training)


@dataclasses.dataclass(frozen=True)
class NeXtVLADConfig(_HiddenConfigMixin, registry.Config):
    """Defaults from NeXtVLAD's single-model YouTube-8M setup (Lin et al. 2018):
    nextvlad_cluster_size=128, groups=8, expansion=2, hidden_size=2048, context gating
    with gating_reduction=8, a linear hidden layer with batch norm."""

    clusters: int = 128
    groups: int = 8
    expansion: int = 2
    hidden_size: int = 2048
    hidden_activation: str = "linear"
    batch_norm: bool = True
    gating: bool = True
    gating_reduction: int = 8

    def validate(self):
        self._require_positive("clusters", "groups", "expansion")
        self._validate_hidden()

    def group_dim(self, input_dim: int) -> int:
        """Width of one group's features, λD / G; the expanded width must divide evenly."""
        expanded = self.expansion * input_dim
        if expanded % self.groups:
            raise ValueError(
                f"NeXtVLAD: expansion * input_dim = {expanded} is not divisible by groups = {self.groups}"
            )
        return expanded // self.groups

    def output_dim(self, input_dim: int) -> int:
        return self.hidden_size or self.clusters * self.group_dim(input_dim)


@registry.register_aggregator("nextvlad", NeXtVLADConfig)
@keras.saving.register_keras_serializable(package=PACKAGE)
class NeXtVLAD(Aggregator):
    """NeXtVLAD (Lin et al. 2018, "NeXtVLAD: An Efficient Neural Network to Aggregate
    Frame-level Features for Large-scale Video Classification").

    x' = x W_e + b_e expands each frame to λD and splits it into G groups of λD/G;
    each group g of frame t gets an attention α_tg = sigmoid(x' W_a + b_a)_g (times the
    frame mask) and a soft assignment softmax_k(x' W_c + b_c)_{g,k} over K clusters;
    V_k = sum_{t,g} α_tg a_tgk (x'_tg - c_k) in the reduced λD/G space, each V_k
    l2-normalised, flattened cluster-major (K * λD/G), then the optional hidden layer
    and context gating. As in the source, there is no global normalisation after the
    intra-normalisation; its batch norm of the assignment logits is a bias here.
    """

    def __init__(self, config: NeXtVLADConfig | dict | None = None, **kwargs):
        super().__init__(config, **kwargs)
        self.expand = None
        self.attention = None
        self.assignment = None
        self.centres = None
        self.hidden = _hidden_layer(self.config, dtype=self.dtype_policy)

    def build(self, frames_shape):
        config, input_dim = self.config, int(frames_shape[-1])
        expanded, group_dim = config.expansion * input_dim, config.group_dim(input_dim)
        self.expand = keras.layers.Dense(
            expanded, kernel_initializer="he_normal", name="expand", dtype=self.dtype_policy
        )
        self.expand.build((None, None, input_dim))
        self.attention = keras.layers.Dense(
            config.groups,
            activation="sigmoid",
            kernel_initializer="he_normal",
            name="attention",
            dtype=self.dtype_policy,
        )
        self.attention.build((None, None, expanded))
        self.assignment = keras.layers.Dense(
            config.groups * config.clusters,
            kernel_initializer="he_normal",
            name="assignment",
            dtype=self.dtype_policy,
        )
        self.assignment.build((None, None, expanded))
        self.centres = self.add_weight(
            shape=(config.clusters, group_dim),
            initializer=keras.initializers.RandomNormal(stddev=1.0 / math.sqrt(group_dim)),
            name="centres",
        )
        if self.hidden is not None:
            self.hidden.build((None, config.clusters * group_dim))

    def call(self, frames, mask, training=False):
        config = self.config
        frames, mask, _ = self._prepare(frames, mask)
        input_dim = frames.shape[-1]
        group_dim = config.group_dim(input_dim)
        expanded = self.expand(frames)  # [B, T, λD]
        attention = self.attention(expanded) * ops.expand_dims(mask, -1)  # [B, T, G]
        logits = ops.reshape(self.assignment(expanded), (-1, config.groups, config.clusters))
        assignments = ops.softmax(logits, axis=-1) * ops.reshape(attention, (-1, config.groups, 1))
        # Every (frame, group) pair is one descriptor of width λD/G.
        assignments = ops.reshape(assignments, (-1, ops.shape(frames)[1] * config.groups, config.clusters))
        features = ops.reshape(expanded, (-1, ops.shape(frames)[1] * config.groups, group_dim))
        vlad = _vlad(assignments, features, ops.cast(self.centres, frames.dtype))
        return vlad if self.hidden is None else self.hidden(vlad, training=training)
