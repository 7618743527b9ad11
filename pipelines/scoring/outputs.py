"""What an evaluation run leaves in its output directory, and how to read it back.

`fewframes evaluate` writes, under `--output`:

- `metrics.json`: the headline metrics (`trainer.metrics` conventions) plus counts,
  frames read, model time and the model's and input's identity (`METRICS_KEYS`);
- `per_class.csv`: class, name, vertical, ap, positives (AP over the pooled top-k);
- `videos.parquet`: one row per scored video (`VIDEO_SCHEMA`): its top-k entries and
  per-video facts, which is all `fewframes compare` needs to recompute every metric on a
  bootstrap resample of videos, and what the report's precision-recall curve uses;
- `predictions.csv` (Kaggle / starter format) and optionally `predictions.jsonl`;
- `failed-*.jsonl`: dead-letter records with their reasons;
- `report.html`: the self-contained report.

Files are read and written through Beam's FileSystems, so gs:// works (also against
the GCS emulator) as it does for the pipeline's own outputs.
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from pipelines.runner import UsageError
from trainer.labels import Vocabulary
from trainer.metrics import MetricsAccumulator, ScoredVideos

METRICS_FILE = "metrics.json"
PER_CLASS_FILE = "per_class.csv"
VIDEOS_FILE = "videos.parquet"
PREDICTIONS_CSV = "predictions.csv"
PREDICTIONS_JSONL = "predictions.jsonl"
FAILED_PREFIX = "failed"
REPORT_FILE = "report.html"
SEGMENTS_FILE = "segments.json"

PER_CLASS_COLUMNS = ("class", "name", "vertical", "ap", "positives")

# metrics.json: the metric values (trainer.metrics.MetricsAccumulator.result()) and:
#   map            = map_nonempty_classes (the convention we headline; both are given)
#   num_records    = records read; num_records == num_videos + num_failed
#   num_failed     = dead-letter records
#   frames         = {"mean_num_frames", "mean_frames_read", "fraction_read"}
#   timing         = {"model_seconds_per_video", "model_seconds", "wall_seconds"}
#   model          = the export's metadata subset (path, role, preset, view, features, ...)
#   input          = {"patterns", "source": "raw" | "dataset", "kind"}
#   segments       = {"map_at_k", "k", "num_rated_pairs", "num_classes_with_positives"} when
#                    the input carries 2019 segment ratings, else absent
#   map_convention = the sentence saying which classes `map` averages
#   cascade        = with --model CASCADE_DIR: rule, input_read_once, input_bytes and per stage
#                    view, threshold, videos entering / exiting, model and new frames read,
#                    model seconds (`pipelines.scoring.job.cascade_summary`), else absent
#   top_k          = the evaluation's k (model.top_k is the export's own, for its signatures)
METRICS_KEYS = (
    "gap", "map", "map_nonempty_classes", "map_all_classes", "hit_at_1", "perr",
    "num_videos", "num_positives", "num_failed", "num_records", "top_k",
    "frames", "timing", "model", "input", "map_convention",
)  # fmt: skip

VIDEO_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("labels", pa.list_(pa.int32()), nullable=False),  # in the model's class space
        pa.field("top_classes", pa.list_(pa.int32()), nullable=False),  # k, score-descending
        pa.field("top_scores", pa.list_(pa.float32()), nullable=False),
        pa.field("perr", pa.float64(), nullable=False),
        pa.field("num_frames", pa.int32(), nullable=False),  # true length (1 for video level)
        pa.field("frames_read", pa.int32(), nullable=False),  # frames the model read
        pa.field("model_seconds", pa.float64(), nullable=False),  # share of its batch's model time
    ]
)


def videos_table(records: list[dict]) -> pa.Table:
    """Per-video records (dicts with `VIDEO_SCHEMA`'s fields) as an Arrow table."""
    return pa.Table.from_pylist(records, schema=VIDEO_SCHEMA)


def scored_from_table(table: pa.Table) -> ScoredVideos:
    """The `ScoredVideos` of a `videos.parquet` table, in its row order."""
    classes = _fixed_lists(table.column("top_classes"), np.int32)
    scores = _fixed_lists(table.column("top_scores"), np.float32)
    labels = table.column("labels").combine_chunks()
    offsets = labels.offsets.to_numpy()
    flat = labels.values.to_numpy(zero_copy_only=False).astype(np.int64)
    num_labels = np.diff(offsets).astype(np.int64)
    flat = flat[offsets[0] : offsets[-1]] if len(offsets) else flat[:0]
    perr = table.column("perr").to_numpy()
    return ScoredVideos.from_entries(classes, scores, perr, num_labels, flat)


def accumulator_from_table(table: pa.Table, num_classes: int, top_k: int) -> MetricsAccumulator:
    """A MetricsAccumulator holding a `videos.parquet` table's videos (ids included)."""
    acc = MetricsAccumulator(num_classes, top_k)
    return acc.add_scored(scored_from_table(table), table.column("id").to_pylist())


def _fixed_lists(column, dtype) -> np.ndarray:
    column = column.combine_chunks()
    offsets = column.offsets.to_numpy()
    lengths = np.diff(offsets)
    if len(lengths) and (lengths != lengths[0]).any():
        raise ValueError(f"{VIDEOS_FILE}: every video must hold the same number of top-k entries")
    width = int(lengths[0]) if len(lengths) else 0
    values = column.values.to_numpy(zero_copy_only=False)[offsets[0] : offsets[-1] if len(offsets) else 0]
    return values.astype(dtype).reshape(len(lengths), width)


# ----- files ------------------------------------------------------------------------------


def join(directory: str, name: str) -> str:
    return FileSystems.join(directory, name)


def write_bytes(path: str, data: bytes, mime_type: str = "application/octet-stream") -> None:
    with FileSystems.create(path, mime_type=mime_type) as stream:
        stream.write(data)


def read_bytes(path: str) -> bytes:
    with FileSystems.open(path) as stream:
        return stream.read()


def write_metrics(directory: str, metrics: dict) -> None:
    data = json.dumps(metrics, indent=2, sort_keys=True).encode()
    write_bytes(join(directory, METRICS_FILE), data, "application/json")


def read_metrics(directory: str) -> dict:
    path = join(directory, METRICS_FILE)
    if not FileSystems.exists(path):
        raise ValueError(f"{directory} is not an evaluation output (no {METRICS_FILE})")
    return json.loads(read_bytes(path))


def write_per_class(directory: str, rows: list[dict]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=PER_CLASS_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row[k] for k in PER_CLASS_COLUMNS})
    write_bytes(join(directory, PER_CLASS_FILE), text.getvalue().encode(), "text/csv")


def read_per_class(directory: str) -> list[dict]:
    rows = list(csv.DictReader(io.StringIO(read_bytes(join(directory, PER_CLASS_FILE)).decode())))
    for row in rows:
        row["class"], row["positives"], row["ap"] = int(row["class"]), int(row["positives"]), float(row["ap"])
    return rows


def write_videos(directory: str, table: pa.Table) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    write_bytes(join(directory, VIDEOS_FILE), sink.getvalue().to_pybytes())


def read_videos(directory: str) -> pa.Table:
    path = join(directory, VIDEOS_FILE)
    if not FileSystems.exists(path):
        raise ValueError(f"{directory} has no {VIDEOS_FILE} (not an evaluation output?)")
    return pq.read_table(pa.BufferReader(read_bytes(path)))


class ClassNames:
    """Names and verticals of the model's classes, from a vocabulary or the export."""

    def __init__(self, metadata: dict, vocabulary: Vocabulary | None):
        names = list(metadata.get("class_names") or [str(i) for i in range(int(metadata["num_classes"]))])
        verticals = [""] * len(names)
        if metadata.get("label_space") == "verticals":
            verticals = list(names)
        elif vocabulary is not None:
            names, verticals = list(vocabulary.names), list(vocabulary.verticals)
        self.names, self.verticals = names, verticals

    def matching(self, label: str | None, vertical: str | None) -> set[int]:
        return {
            c
            for c in range(len(self.names))
            if (label is not None and self.names[c] == label)
            or (vertical is not None and self.verticals[c] == vertical)
        }


def read_vocabulary(path: str | None, metadata: dict) -> Vocabulary | None:
    if not path:
        return None
    try:
        with FileSystems.open(path) as stream:
            vocabulary = Vocabulary.from_bytes(stream.read(), path)
    except (OSError, ValueError) as error:
        raise UsageError(f"--vocabulary {path}: {error}") from None
    expected = int(metadata.get("num_entities") or metadata["num_classes"])
    if len(vocabulary.names) != expected:
        raise UsageError(f"--vocabulary {path} has {len(vocabulary.names)} classes, the model {expected}")
    trained = metadata.get("vocabulary_sha256")
    if trained and trained != vocabulary.sha256:
        raise UsageError(
            f"--vocabulary {path} is not the vocabulary the model was trained with (sha256 differs)"
        )
    return vocabulary


def prediction_line(record: dict) -> str:
    """`VideoId,LabelConfidencePairs` with the top entries by score (the starter's format),
    as one CSV row: an id holding a comma, a quote or a line break is quoted."""
    pairs = " ".join(f"{c} {s:.6f}" for c, s in zip(record["top_classes"], record["top_scores"], strict=True))
    line = io.StringIO()
    # The writer quotes a field holding a character of its line terminator, so the
    # terminator must hold both line-break characters; WriteToText adds the row's own.
    csv.writer(line, lineterminator="\r\n").writerow([record["id"], pairs])
    return line.getvalue()[:-2]


def prediction_json(record: dict, names: ClassNames) -> str:
    return json.dumps(
        {
            "id": record["id"],
            "predictions": [
                {
                    "class": c,
                    "name": names.names[c],
                    "vertical": names.verticals[c],
                    "score": round(float(s), 6),
                }
                for c, s in zip(record["top_classes"], record["top_scores"], strict=True)
            ],
        }
    )


def passes_filter(record: dict, classes: set[int] | None, min_score: float) -> bool:
    if classes is None:
        return True
    return any(
        c in classes and s >= min_score
        for c, s in zip(record["top_classes"], record["top_scores"], strict=True)
    )
