"""The evaluation's combiners: exact YouTube-8M metrics merged across workers.

Each worker accumulates its videos' compact records (top-k entries, never the full
score vector) into partial results that merge associatively, so the metrics are those
of one pass over the whole partition whatever the runner's split (`MetricsCombineFn`:
GAP, mAP, Hit@1, PERR; `VideoStatsFn`: counts, frames read, model time; `SegmentMapFn`:
the 2019 challenge's segment mAP@K).
"""

from __future__ import annotations

import heapq
import math

import apache_beam as beam
import numpy as np

from trainer.metrics import DEFAULT_TOP_K, MetricsAccumulator, ScoredVideos

SEGMENT_TOP_K = 100_000  # the 2019 challenge's mAP@K


def scored_from_records(records: list[dict]) -> ScoredVideos:
    """Per-video records (`VIDEO_SCHEMA` dicts) -> `ScoredVideos` for the metrics."""
    classes = np.array([r["top_classes"] for r in records], dtype=np.int32)
    scores = np.array([r["top_scores"] for r in records], dtype=np.float32)
    labels = [np.asarray(r["labels"], dtype=np.int64) for r in records]
    num_labels = np.array([len(x) for x in labels], dtype=np.int64)
    flat = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    perr = [r["perr"] for r in records]
    return ScoredVideos.from_entries(classes, scores, perr, num_labels, flat)


class _PartialMetrics:
    """A MetricsAccumulator plus records not yet added (added in blocks, not one by one)."""

    def __init__(self, num_classes: int, top_k: int):
        self.metrics = MetricsAccumulator(num_classes, top_k)
        self.pending: list[dict] = []

    def flush(self) -> _PartialMetrics:
        if self.pending:
            self.metrics.add_scored(scored_from_records(self.pending), [r["id"] for r in self.pending])
            self.pending = []
        return self


class MetricsCombineFn(beam.CombineFn):
    """Per-video records -> GAP, mAP, Hit@1, PERR and per-class AP, merged across workers.

    State is k entries a video (`trainer.metrics`), so the combine's memory is bounded
    by top_k x videos, never by classes x videos.
    """

    def __init__(self, num_classes: int, top_k: int = DEFAULT_TOP_K, block: int = 1024):
        self._num_classes, self._top_k, self._block = num_classes, top_k, block

    def create_accumulator(self):
        return _PartialMetrics(self._num_classes, self._top_k)

    def add_input(self, partial, record):
        partial.pending.append(record)
        if len(partial.pending) >= self._block:
            partial.flush()
        return partial

    def merge_accumulators(self, partials):
        merged = self.create_accumulator()
        merged.metrics = MetricsAccumulator.merge_all([p.flush().metrics for p in partials])
        return merged

    def compact(self, partial):
        return partial.flush()

    def extract_output(self, partial):
        metrics = partial.flush().metrics
        if metrics.num_videos == 0:
            return None
        return {"metrics": metrics.result(), "per_class": metrics.per_class()}


class VideoStatsFn(beam.CombineFn):
    """Counts and sums over scored videos: frames, frames read, model time."""

    FIELDS = ("videos", "num_frames", "frames_read", "model_seconds")

    def create_accumulator(self):
        return [0, 0, 0, 0.0]

    def add_input(self, acc, record):
        acc[0] += 1
        acc[1] += record["num_frames"]
        acc[2] += record["frames_read"]
        acc[3] += record["model_seconds"]
        return acc

    def merge_accumulators(self, accs):
        return [sum(values) for values in zip(*accs, strict=True)]

    def extract_output(self, acc):
        videos, num_frames, frames_read, seconds = acc
        return {
            "videos": videos,
            "mean_num_frames": num_frames / videos if videos else 0.0,
            "mean_frames_read": frames_read / videos if videos else 0.0,
            "fraction_read": frames_read / num_frames if num_frames else 0.0,
            "model_seconds": seconds,
            "model_seconds_per_video": seconds / videos if videos else 0.0,
        }


class SegmentMapFn(beam.CombineFn):
    """(class, score, positive) ratings -> segment mAP@K over the rated (segment, class) pairs.

    Per class, the rated segments are ranked by the model's score for that class (equal
    scores: negatives first, as for GAP) and the top K kept; AP@K = sum of precision@i
    at each positive in the top K / min(K, positives of the class) (the starter's
    `ap_at_n`). mAP averages the classes with at least one positive rating. Each
    accumulator keeps at most K ratings per class.
    """

    def __init__(self, k: int = SEGMENT_TOP_K):
        self._k = k

    def create_accumulator(self):
        return {}  # class -> [positives, segments, list of (score, not positive)]

    def add_input(self, acc, rating):
        cls, score, positive = rating
        entry = acc.setdefault(int(cls), [0, 0, []])
        entry[0] += int(positive)
        entry[1] += 1
        entry[2].append((float(score), not positive))
        if len(entry[2]) > 2 * self._k:
            entry[2] = self._top(entry[2])
        return acc

    def _top(self, ratings):
        # Highest score first; among equal scores negatives (not positive = True) first.
        return heapq.nlargest(self._k, ratings)

    def merge_accumulators(self, accs):
        merged = {}
        for acc in accs:
            for cls, (positives, segments, ratings) in acc.items():
                entry = merged.setdefault(cls, [0, 0, []])
                entry[0] += positives
                entry[1] += segments
                entry[2] = self._top(entry[2] + ratings)
        return merged

    def extract_output(self, acc):
        aps = {}
        pairs = 0
        for cls, (positives, segments, ratings) in acc.items():
            pairs += segments
            if positives == 0:
                continue
            ranked = self._top(ratings)
            hits, total = 0, 0.0
            for rank, (_, negative) in enumerate(ranked, start=1):
                if not negative:
                    hits += 1
                    total += hits / rank
            aps[cls] = total / min(self._k, positives)
        return {
            "map_at_k": math.fsum(aps.values()) / len(aps) if aps else 0.0,
            "k": self._k,
            "num_rated_pairs": pairs,
            "num_classes_with_positives": len(aps),
        }
