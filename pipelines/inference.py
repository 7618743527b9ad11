"""Beam RunInference over a fewframes export (no tensorflow-hub, no tf_keras).

`RawRecordModelHandler` scores serialized raw YouTube-8M records through the export's
`serving_default` signature; `ViewFramesModelHandler` scores rows of a preprocessed
dataset (frames already in the model's view) through `score_view`. Both load the
SavedModel once per worker process (`share_model_across_processes`) and batch by
`min_batch_size` / `max_batch_size`. Wrap in `KeyedModelHandler` to carry keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from schemas import features as F

OUTPUTS = ("class_indexes", "scores", "predictions", "representation")


class _ExportHandler(ModelHandler):
    def __init__(
        self,
        export_dir: str,
        min_batch_size: int = 16,
        max_batch_size: int = 256,
        share_across_processes: bool = False,
    ):
        super().__init__()
        self._export_dir = export_dir
        self._batching = {"min_batch_size": min_batch_size, "max_batch_size": max_batch_size}
        self._share = share_across_processes

    def load_model(self):
        from trainer.export import LoadedExport

        return LoadedExport(self._export_dir)

    def batch_elements_kwargs(self):
        return self._batching

    def share_model_across_processes(self) -> bool:
        return self._share

    def get_metrics_namespace(self) -> str:
        return "fewframes_inference"

    @staticmethod
    def _results(batch, outputs: dict) -> list[PredictionResult]:
        return [
            PredictionResult(example, {k: outputs[k][i] for k in OUTPUTS if k in outputs})
            for i, example in enumerate(batch)
        ]


class RawRecordModelHandler(_ExportHandler):
    """Serialized raw records (bytes) -> PredictionResult(record, outputs)."""

    def run_inference(self, batch: Sequence[bytes], model, inference_args=None) -> Iterable[PredictionResult]:
        return self._results(batch, model.score_examples(batch))


class ViewFramesModelHandler(_ExportHandler):
    """Dataset rows (dicts with the model's frame columns) -> PredictionResult(row, outputs)."""

    def run_inference(self, batch: Sequence[dict], model, inference_args=None) -> Iterable[PredictionResult]:
        from trainer.data import pad_frames

        features = model.metadata["features"]
        if model.metadata["kind"] == F.VIDEO_LEVEL:
            inputs = {F.MEAN_FEATURE_OF[f]: np.stack([row[F.MEAN_FEATURE_OF[f]] for row in batch])
                      for f in features}  # fmt: skip
            return self._results(batch, model.score_view(inputs, None))
        inputs, lengths = {}, None
        for f in features:
            inputs[f], lengths = pad_frames(
                [np.asarray(row[f], np.float32) for row in batch], F.FEATURE_DIMS[f], np.float32
            )
        return self._results(batch, model.score_view(inputs, lengths))
