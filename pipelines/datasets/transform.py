"""The optional z-score step of the normalization chain, analysed by tensorflow-transform.

The chain, identical in preprocessing, training and serving:

    dequantize -> concatenate rgb || audio per frame -> l2-normalise each frame
               -> (optional) per-dimension z-score with statistics of the training partition

Only the statistics are data-dependent, so only they come from TFT: `preprocessing_fn`
is the pure TFT function (z-score of l2-normalised frames), analysed over the frames
a dataset stores (the full view when kept, else the student view; the means of a
video-level dataset). The analysis (`transform/transform_fn`, a SavedModel) is
written next to the data for TFT users, and its parameters as plain float32 arrays
(`transform/zscore.npz`, `schemas.zscore`), which is what the trainer reads: a dataset
is data, so nothing in `trainer/` runs the SavedModel. `--transform-from` makes a
validate/test run reuse the training run's analysis.
"""

from __future__ import annotations

import os

import apache_beam as beam
import numpy as np
import pyarrow as pa

from schemas import features as F
from schemas import normalization

FRAME = "frame"  # rgb || audio of one frame, l2-normalised
FRAME_DIM = sum(F.FEATURE_DIMS[f] for f in F.FRAME_FEATURES)
TRANSFORM_FN_DIR = "transform_fn"


def model_frames(row: dict, teacher_view: bool) -> np.ndarray:
    """The frames of a dataset row that the chain normalizes, concatenated per frame."""
    if F.MEAN_RGB in row:
        return np.concatenate([row[F.MEAN_RGB], row[F.MEAN_AUDIO]])[None, :]
    names = [F.full_view_column(f) if teacher_view else f for f in F.FRAME_FEATURES]
    return np.concatenate([np.asarray(row[name], np.float32) for name in names], axis=1)


def preprocessing_fn(inputs):
    """TFT: per-dimension z-score of l2-normalised frames (biased variance, as TFT)."""
    import tensorflow_transform as tft

    return {FRAME: tft.scale_to_z_score(inputs[FRAME], elementwise=True)}


def _arrow_schema() -> pa.Schema:
    return pa.schema([(FRAME, pa.list_(pa.float32()))])


def frames_record_batch(rows: list[dict], teacher_view: bool) -> pa.RecordBatch:
    """One TFT instance per frame: an Arrow batch of l2-normalised frames."""
    frames = normalization.l2_normalize(np.concatenate([model_frames(row, teacher_view) for row in rows]))
    offsets = np.arange(0, frames.size + 1, FRAME_DIM, dtype=np.int32)
    column = pa.ListArray.from_arrays(pa.array(offsets), pa.array(frames.reshape(-1)))
    return pa.RecordBatch.from_arrays([column], schema=_arrow_schema())


def _tensor_adapter_config():
    from tensorflow_metadata.proto.v0 import schema_pb2
    from tfx_bsl.tfxio import tensor_adapter

    representation = schema_pb2.TensorRepresentation()
    representation.dense_tensor.column_name = FRAME
    representation.dense_tensor.shape.dim.add().size = FRAME_DIM
    return tensor_adapter.TensorAdapterConfig(_arrow_schema(), {FRAME: representation})


def write_zscore_parameters(_, transform_dir: str) -> str:
    """Write `transform_dir/zscore.npz` from the analysis this job just wrote; its sha256.

    The arrays are TFT's own analysis outputs (the constants of the SavedModel's graph),
    checked here to reproduce what the SavedModel computes before they are written.
    """
    from apache_beam.io.filesystems import FileSystems

    from schemas import zscore

    saved_model = f"{transform_dir}/{TRANSFORM_FN_DIR}/saved_model.pb"
    with FileSystems.open(saved_model) as stream:
        mean, scale = zscore.parameters_from_saved_model(stream.read(), saved_model)
    probes = np.stack(
        [np.zeros(FRAME_DIM, np.float32), np.ones(FRAME_DIM, np.float32), mean + scale, mean - 2 * scale]
    )
    applied = np.asarray(FrameNormalizer(transform_dir)(probes))
    expected = (probes - mean) / scale
    if not np.allclose(applied, expected, rtol=1e-6, atol=1e-6):
        worst = float(np.max(np.abs(applied - expected)))
        raise RuntimeError(f"the z-score read from {saved_model} differs from what it computes by {worst}")
    data = zscore.encode(mean, scale)
    with FileSystems.create(f"{transform_dir}/{zscore.PARAMETERS_NAME}") as stream:
        stream.write(data)
    return zscore.sha256(data)


class AnalyzeFrameStatistics(beam.PTransform):
    """Rows -> TFT analysis of the z-score, written to `output_dir/transform_fn`, and its
    parameters to `output_dir/zscore.npz`; the output is that file's sha256 (one element)."""

    def __init__(self, output_dir: str, temp_dir: str, teacher_view: bool, batch_size: int = 64):
        super().__init__()
        self._output_dir, self._temp_dir = output_dir, temp_dir
        self._teacher_view, self._batch_size = teacher_view, batch_size

    def expand(self, rows):
        import tensorflow_transform.beam as tft_beam

        teacher_view = self._teacher_view
        frames = (
            rows
            | "BatchVideos"
            >> beam.BatchElements(min_batch_size=self._batch_size, max_batch_size=self._batch_size)
            | "ToFrameBatches" >> beam.Map(frames_record_batch, teacher_view=teacher_view)
        )
        with tft_beam.Context(temp_dir=self._temp_dir):
            transform_fn = (frames, _tensor_adapter_config()) | "AnalyzeZScore" >> tft_beam.AnalyzeDataset(
                preprocessing_fn
            )
            written = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(self._output_dir)
        return written | "WriteZScoreParameters" >> beam.Map(write_zscore_parameters, self._output_dir)


class FrameNormalizer:
    """Applies a saved analysis (TF): l2-normalised frames [..., 1152] -> z-scores.

    It runs the SavedModel, so it is only for an analysis this job wrote (or a TFT user's
    own); training reads `zscore.npz` instead."""

    def __init__(self, transform_dir: str):
        import tensorflow as tf

        self._tf = tf
        self._model = tf.saved_model.load(os.path.join(transform_dir, TRANSFORM_FN_DIR))

    def __call__(self, frames):
        tf = self._tf
        frames = tf.convert_to_tensor(frames, tf.float32)
        flat = tf.reshape(frames, [-1, FRAME_DIM])
        return tf.reshape(self._model.transform_fn({FRAME: flat})[FRAME], tf.shape(frames))

    def zscore_parameters(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) per dimension, for backends that cannot run the TF graph.

        The z-score is affine per dimension, so two probes recover it exactly up to
        float32 rounding: z(0) = -mean/std and z(1) - z(0) = 1/std.
        """
        probes = np.stack([np.zeros(FRAME_DIM, np.float32), np.ones(FRAME_DIM, np.float32)])
        z0, z1 = np.asarray(self(probes), dtype=np.float64)
        std = 1.0 / (z1 - z0)
        return (-z0 * std).astype(np.float32), std.astype(np.float32)
