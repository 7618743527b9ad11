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

from schemas import features as F

L2_EPSILON = 1e-12  # tf.nn.l2_normalize's: x / sqrt(max(sum(x^2), epsilon))


def zscore_parameters(dataset_dir: str, manifest: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """(mean, scale) of the dataset's z-score, or None when it has none.

    Read as data: the float32 arrays of `normalization.parameters` (checked against the
    manifest's sha256), or for a dataset written before those existed, the constants of
    its TFT SavedModel's GraphDef. Nothing from the dataset is executed. Paths in the
    manifest are relative to the dataset and may not leave it. A problem: `ZScoreError`.
    """
    from schemas import zscore as Z
    from trainer import storage

    normalization = manifest.get("normalization") or {}
    if normalization.get("zscore", "none") == "none":
        return None
    if "parameters" in normalization:
        path = Z.dataset_path(dataset_dir, normalization["parameters"], "normalization.parameters")
        data = _read(storage, path, "its z-score parameters")
        expected = normalization.get("parameters_sha256")
        if Z.sha256(data) != expected:
            raise Z.ZScoreError(
                f"{path} does not match the sha256 its manifest records ({expected}): the dataset's "
                "z-score parameters were changed or damaged"
            )
        return Z.decode(data, path)
    transform_dir = Z.dataset_path(
        dataset_dir, normalization.get("transform_dir"), "normalization.transform_dir"
    )
    path = storage.join(transform_dir, "transform_fn", "saved_model.pb")
    try:
        return Z.parameters_from_saved_model(_read(storage, path, "its z-score analysis"), path)
    except Z.ZScoreError as error:
        raise Z.ZScoreError(
            f"{error}; preprocess the dataset again (with --zscore, or --transform-from its training "
            f"dataset) to store the parameters as {Z.PARAMETERS_NAME}"
        ) from None


def _read(storage, path: str, what: str) -> bytes:
    from schemas.zscore import ZScoreError

    try:
        return storage.read_bytes(path)
    except ValueError:  # RemoteStorageUnavailable says what to do
        raise
    except Exception as error:  # OSError locally, tf.errors.NotFoundError on gs://
        raise ZScoreError(f"cannot read {what} {path}: {error}") from None


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


def feature_dim(features) -> int:
    return sum(F.FEATURE_DIMS[f] for f in features)
