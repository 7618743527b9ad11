"""Beam RunInference over a fewframes export (no tensorflow-hub, no tf_keras).

`_ExportHandler` loads the SavedModel once per worker process and batches by
`min_batch_size` / `max_batch_size`; `RawRecordModelHandler` scores serialized raw
YouTube-8M records through the export's `serving_default` signature. Dataset rows and
validated raw records are scored by `pipelines.scoring.VideoScoringHandler`, which
also reduces each batch to its top-k entries. Wrap in `KeyedModelHandler` to carry keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from apache_beam.ml.inference.base import ModelHandler, PredictionResult

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
