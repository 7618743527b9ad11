"""Classifier heads: a video representation [B, R] -> class probabilities [B, C] in (0, 1).

YouTube-8M is multi-label, so every head ends in per-class sigmoids (or a mixture of
them), as the starter code's video-level models do. Probabilities, not logits, are
the output: the distillation losses compare the teacher's and the student's
probabilities, and the starter's cross-entropy is written on probabilities. The
final probabilities are computed and returned in float32, so a head under a
`mixed_float16` policy does its matmuls in float16 but never rounds a probability.
"""

from __future__ import annotations

import dataclasses

import keras
from keras import ops

from trainer.models import registry

PACKAGE = "fewframes"


def l2_regularizer(penalty: float):
    """Keras L2 equal to the starter's `slim.l2_regularizer(penalty)` (None when penalty is 0).

    slim's regulariser is `penalty * tf.nn.l2_loss(w)` = `penalty * sum(w**2) / 2`;
    Keras's `L2(l2)` is `l2 * sum(w**2)`, hence the half (as Model Garden's yt8m does).
    """
    return keras.regularizers.L2(penalty / 2.0) if penalty > 0 else None


@keras.saving.register_keras_serializable(package=PACKAGE)
class ContextGating(keras.layers.Layer):
    """Context Gating, `y = x * sigmoid(x W + b)` (Miech et al. 2017, "Learnable pooling
    with Context Gating for video classification").

    With `reduction > 1` the gate goes through a bottleneck, `sigmoid(relu(x W1 + b1) W2
    + b2)` with `dim // reduction` hidden units: the SE-style gate that NeXtVLAD uses
    (Lin et al. 2018, gating_reduction=8) to keep the gate's weights small. The sources
    batch-normalise the gate's pre-activations instead of adding a bias; a bias is used
    here, which needs no batch statistics and keeps the gate a pure function of x.
    Parameters: dim*dim + dim, or, bottlenecked, 2*dim*(dim//reduction) + dim//reduction + dim.
    """

    def __init__(self, reduction: int = 1, **kwargs):
        super().__init__(**kwargs)
        if reduction < 1:
            raise ValueError(f"reduction must be >= 1, got {reduction}")
        self.reduction = int(reduction)
        self.squeeze = None
        self.gate = None

    def build(self, input_shape):
        dim = int(input_shape[-1])
        gate_input_shape = tuple(input_shape)
        if self.reduction > 1:
            bottleneck = max(1, dim // self.reduction)
            self.squeeze = keras.layers.Dense(
                bottleneck, activation="relu", name="squeeze", dtype=self.dtype_policy
            )
            self.squeeze.build(gate_input_shape)
            gate_input_shape = (*gate_input_shape[:-1], bottleneck)
        self.gate = keras.layers.Dense(dim, activation="sigmoid", name="gate", dtype=self.dtype_policy)
        self.gate.build(gate_input_shape)

    def call(self, inputs):
        hidden = inputs if self.squeeze is None else self.squeeze(inputs)
        return inputs * self.gate(hidden)

    def get_config(self):
        config = super().get_config()
        config.update(reduction=self.reduction)
        return config


class Head(keras.layers.Layer):
    """Base of the heads: `head(representation, training=False) -> probabilities [B, C]`.

    Subclasses are registered with `registry.register_head(name, ConfigClass)`; the
    constructor takes the class count, the config (dataclass, dict or None for the
    defaults) and keras Layer kwargs. Shared options, both off by default:
    `input_context_gating` gates the representation before the classifier (Model
    Garden's `use_input_context_gate`); `context_gating` gates the output probabilities
    (Willow's `moe_prob_gating`, Model Garden's `use_output_context_gate`), which stay
    in (0, 1) because both factors do. `hidden_size > 0` adds a ReLU layer before the
    classifier (as the starter's DeepMoeModel).
    """

    config_cls: type
    registered_name: str

    def __init__(self, num_classes: int, config=None, **kwargs):
        super().__init__(**kwargs)
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.config = registry.as_config(registry.HEAD, self.registered_name, config)
        config = self.config
        self.regularizer = l2_regularizer(config.l2_penalty)
        self.input_gating = (
            ContextGating(name="input_context_gating", dtype=self.dtype_policy)
            if config.input_context_gating
            else None
        )
        self.hidden = (
            keras.layers.Dense(
                config.hidden_size,
                activation="relu",
                kernel_regularizer=self.regularizer,
                name="hidden",
                dtype=self.dtype_policy,
            )
            if config.hidden_size
            else None
        )
        # float32: it multiplies probabilities, which must not be rounded to float16.
        self.output_gating = (
            ContextGating(name="context_gating", dtype="float32") if config.context_gating else None
        )

    def build(self, input_shape):
        width = int(input_shape[-1])
        if self.input_gating is not None:
            self.input_gating.build((None, width))
        if self.hidden is not None:
            self.hidden.build((None, width))
            width = self.hidden.units
        for layer in self._classifier_layers():
            layer.build((None, width))
        if self.output_gating is not None:
            self.output_gating.build((None, self.num_classes))

    def _classifier_layers(self) -> list:
        """The layers that read the (gated, hidden) representation; built by `build`."""
        raise NotImplementedError

    def _features(self, representation):
        x = representation
        if self.input_gating is not None:
            x = self.input_gating(x)
        if self.hidden is not None:
            x = self.hidden(x)
        return x

    def _finish(self, probabilities):
        probabilities = ops.cast(probabilities, "float32")
        if self.output_gating is not None:
            probabilities = self.output_gating(probabilities)
        return probabilities

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update(num_classes=self.num_classes, config=self.config.to_dict())
        return config


@dataclasses.dataclass(frozen=True)
class LogisticConfig(registry.Config):
    """Defaults from the starter's LogisticModel (`l2_penalty=1e-8`)."""

    l2_penalty: float = 1e-8
    hidden_size: int = 0
    input_context_gating: bool = False
    context_gating: bool = False

    def validate(self):
        self._require_positive("l2_penalty", "hidden_size", allow_zero=True)


@registry.register_head("logistic", LogisticConfig)
@keras.saving.register_keras_serializable(package=PACKAGE)
class LogisticHead(Head):
    """Per-class logistic regression: `sigmoid(x W + b)` (the starter's LogisticModel).

    Parameters (no hidden layer, no gating): R*C + C.
    """

    def __init__(self, num_classes: int, config: LogisticConfig | dict | None = None, **kwargs):
        super().__init__(num_classes, config, **kwargs)
        self.logits = keras.layers.Dense(
            self.num_classes, kernel_regularizer=self.regularizer, name="logits", dtype=self.dtype_policy
        )

    def _classifier_layers(self):
        return [self.logits]

    def call(self, representation, training=False):
        logits = ops.cast(self.logits(self._features(representation)), "float32")
        return self._finish(ops.sigmoid(logits))


@dataclasses.dataclass(frozen=True)
class MoEConfig(registry.Config):
    """Defaults from the starter's MoeModel (`moe_num_mixtures=2`, `l2_penalty=1e-8`),
    which is also the classifier of the paper's H-LSTM teacher and student."""

    num_mixtures: int = 2
    l2_penalty: float = 1e-8
    hidden_size: int = 0
    input_context_gating: bool = False
    context_gating: bool = False

    def validate(self):
        self._require_positive("num_mixtures")
        self._require_positive("l2_penalty", "hidden_size", allow_zero=True)


@registry.register_head("moe", MoEConfig)
@keras.saving.register_keras_serializable(package=PACKAGE)
class MoEHead(Head):
    """Mixture of logistic experts, exactly as the starter's MoeModel.

    For every class c, M experts give `sigmoid(x E_cm + e_cm)` and a softmax over M + 1
    gates `x G_cm` mixes them; the extra gate belongs to a dummy expert that always
    says 0, so p_c = sum_{m<M} softmax(g_c)_m * expert_cm can stay near 0. Weights are
    laid out as the starter's reshape to [B*C, M(+1)]: index c*(M+1) + m.

    Parameters (no hidden layer, no gating), matching the starter, whose gate layer has
    no biases (`biases_initializer=None`) and whose expert layer has them:
        gates   R*C*(M+1)
        experts R*C*M + C*M
    (Model Garden's port keeps a gate bias; the starter is followed here.)
    """

    def __init__(self, num_classes: int, config: MoEConfig | dict | None = None, **kwargs):
        super().__init__(num_classes, config, **kwargs)
        mixtures = self.config.num_mixtures
        self.gates = keras.layers.Dense(
            self.num_classes * (mixtures + 1),
            use_bias=False,
            kernel_regularizer=self.regularizer,
            name="gates",
            dtype=self.dtype_policy,
        )
        self.experts = keras.layers.Dense(
            self.num_classes * mixtures,
            kernel_regularizer=self.regularizer,
            name="experts",
            dtype=self.dtype_policy,
        )

    def _classifier_layers(self):
        return [self.gates, self.experts]

    def call(self, representation, training=False):
        x = self._features(representation)
        mixtures = self.config.num_mixtures
        gates = ops.reshape(ops.cast(self.gates(x), "float32"), (-1, self.num_classes, mixtures + 1))
        experts = ops.reshape(ops.cast(self.experts(x), "float32"), (-1, self.num_classes, mixtures))
        gating = ops.softmax(gates, axis=-1)
        probabilities = ops.sum(gating[..., :mixtures] * ops.sigmoid(experts), axis=-1)
        return self._finish(probabilities)
