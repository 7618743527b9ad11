"""A video classifier: one registered aggregator followed by one registered head.

A teacher and a student are two `ModelSpec`s of the same parts (see `presets`); the
distillation code reads the `representation` output for its representation loss and
the `predictions` output for its label and prediction losses.
"""

from __future__ import annotations

import dataclasses

import keras
from keras import ops

from trainer.models import aggregators as _aggregators  # noqa: F401  (registers the aggregators)
from trainer.models import heads as _heads  # noqa: F401  (registers the heads)
from trainer.models import registry
from trainer.models.heads import PACKAGE

FRAMES = "frames"
MASK = "mask"
REPRESENTATION = "representation"
PREDICTIONS = "predictions"


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Which aggregator and head, by registered name, with their config fields.

    Names and fields are checked on construction (`registry.make_config`), so a typo in
    a preset or a CLI override fails at once with the valid choices, not at build time.
    """

    aggregator: str
    head: str
    aggregator_params: dict = dataclasses.field(default_factory=dict)
    head_params: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        # Copies, so that a spec never changes when the caller's dicts do.
        object.__setattr__(self, "aggregator_params", dict(self.aggregator_params or {}))
        object.__setattr__(self, "head_params", dict(self.head_params or {}))
        self.aggregator_config()
        self.head_config()

    def aggregator_config(self):
        return registry.make_config(registry.AGGREGATOR, self.aggregator, self.aggregator_params)

    def head_config(self):
        return registry.make_config(registry.HEAD, self.head, self.head_params)

    def representation_dim(self, input_dim: int) -> int:
        """Width R of the representation for frames of width `input_dim`."""
        return self.aggregator_config().output_dim(input_dim)

    def to_dict(self) -> dict:
        return {
            "aggregator": self.aggregator,
            "head": self.head,
            "aggregator_params": dict(self.aggregator_params),
            "head_params": dict(self.head_params),
        }

    @classmethod
    def from_dict(cls, data: dict) -> ModelSpec:
        fields = [field.name for field in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ValueError(
                f"unknown ModelSpec key(s) {', '.join(unknown)}; valid keys: {', '.join(fields)}"
            )
        return cls(**data)


@keras.saving.register_keras_serializable(package=PACKAGE)
class VideoClassifier(keras.Model):
    """`{"frames": [B, T, D], "mask": [B, T]}` -> `{"representation": [B, R], "predictions": [B, C]}`.

    Built by its first call, `build_on(num_frames)` or `build(None)`: every layer
    creates its weights from the frame width alone, so `keras.saving` can rebuild it
    from its config and restore the weights.
    """

    def __init__(self, spec: ModelSpec | dict, num_classes: int, input_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.spec = ModelSpec.from_dict(spec) if isinstance(spec, dict) else spec
        self.num_classes = int(num_classes)
        self.input_dim = int(input_dim)
        self.aggregator = registry.build_aggregator(
            self.spec.aggregator, self.spec.aggregator_params, name="aggregator", dtype=self.dtype_policy
        )
        self.head = registry.build_head(
            self.spec.head, self.num_classes, self.spec.head_params, name="head", dtype=self.dtype_policy
        )

    @property
    def representation_dim(self) -> int:
        return self.aggregator.output_dim(self.input_dim)

    def call(self, inputs, training=False):
        representation = self.aggregator(inputs[FRAMES], inputs[MASK], training=training)
        predictions = self.head(representation, training=training)
        return {REPRESENTATION: representation, PREDICTIONS: predictions}

    def build(self, input_shape=None):
        frames_shape = input_shape.get(FRAMES) if isinstance(input_shape, dict) else None
        if frames_shape is not None and frames_shape[-1] is not None and frames_shape[-1] != self.input_dim:
            raise ValueError(
                f"frames are {frames_shape[-1]} wide; this classifier was made for {self.input_dim}"
            )
        if not self.aggregator.built:
            self.aggregator.build((None, None, self.input_dim))
        if not self.head.built:
            self.head.build((None, self.representation_dim))

    def build_on(self, num_frames: int = 1):
        """Create the weights with one call on zeros (e.g. before `load_weights`)."""
        if not self.built:
            self(self.dummy_inputs(num_frames))
        return self

    def dummy_inputs(self, num_frames: int, batch_size: int = 1) -> dict:
        return {
            FRAMES: ops.zeros((batch_size, num_frames, self.input_dim)),
            MASK: ops.ones((batch_size, num_frames)),
        }

    def get_config(self):
        config = super().get_config()
        config.update(spec=self.spec.to_dict(), num_classes=self.num_classes, input_dim=self.input_dim)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["spec"] = ModelSpec.from_dict(config["spec"])
        return cls(**config)
