"""The model-side end of the normalization chain, as one Keras layer.

Datasets store dequantized frames; this layer applies the rest of the fixed chain
(l2-normalise each frame's selected features, then the optional per-dimension z-score
that tensorflow-transform analysed) inside the model, so training, evaluation and the
exported serving graph run the identical code. Padding frames stay exactly zero.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from schemas.normalization import L2_EPSILON


@keras.saving.register_keras_serializable(package="fewframes")
class FrameNormalization(keras.layers.Layer):
    """`[B, T, D]` dequantized frames + `[B, T]` mask -> l2-normalised (z-scored) frames."""

    def __init__(self, mean=None, std=None, **kwargs):
        super().__init__(**kwargs)
        self._zscore = mean is not None
        self._mean_init = None if mean is None else np.asarray(mean, np.float32)
        self._std_init = None if std is None else np.asarray(std, np.float32)

    def build(self, input_shape):
        if self._zscore:
            dim = int(input_shape[-1])
            if self._mean_init.shape != (dim,):
                raise ValueError(f"z-score parameters have {self._mean_init.shape[0]} dims, frames {dim}")
            self.mean = self.add_weight(
                shape=(dim,),
                initializer=keras.initializers.Constant(self._mean_init),
                trainable=False,
                name="zscore_mean",
            )
            self.std = self.add_weight(
                shape=(dim,),
                initializer=keras.initializers.Constant(self._std_init),
                trainable=False,
                name="zscore_std",
            )

    def call(self, frames, mask):
        frames = ops.cast(frames, "float32")
        squares = ops.sum(frames * frames, axis=-1, keepdims=True)
        frames = frames / ops.sqrt(ops.maximum(squares, L2_EPSILON))
        if self._zscore:
            frames = (frames - self.mean) / self.std
        return frames * ops.cast(mask, "float32")[..., None]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            mean=None if self._mean_init is None else self._mean_init.tolist(),
            std=None if self._std_init is None else self._std_init.tolist(),
        )
        return config
