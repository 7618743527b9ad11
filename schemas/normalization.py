"""The fixed normalization chain, defined once for every reader and model.

A stored frame is dequantized (`schemas.quantization`), then each frame's selected
features are l2-normalised (`l2_normalize`, the same formula as `tf.nn.l2_normalize`),
then optionally z-scored per dimension with the dataset's parameters (`schemas.zscore`).
Preprocessing applies the first two steps in numpy (`pipelines.datasets.transform`), the
model applies the same steps as a Keras layer (`trainer.models.normalization`); both take
the epsilon from here, so the two halves cannot drift apart.
"""

from __future__ import annotations

import numpy as np

L2_EPSILON = 1e-12  # as tf.nn.l2_normalize: x / sqrt(max(sum(x^2), epsilon))


def l2_normalize(frames: np.ndarray) -> np.ndarray:
    """Each row scaled to unit length, in float32 (the starter models' input step)."""
    frames = np.asarray(frames, dtype=np.float32)
    norms = np.sqrt(np.maximum(np.sum(frames * frames, axis=-1, keepdims=True), np.float32(L2_EPSILON)))
    return frames / norms
