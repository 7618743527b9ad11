"""Exact YouTube-8M metrics in plain numpy, as mergeable accumulators.

Semantics follow the YouTube-8M starter code (`eval_util.py`,
`average_precision_calculator.py`, `mean_average_precision_calculator.py`; the TF Model
Garden copy in `official/projects/yt8m/eval_utils` is the same code). One
`MetricsAccumulator` takes batches (`add_batch`), merges with others (`merge`,
`merge_all`: a Beam CombineFn wraps it; this module does not import Beam) and reports
(`result`). Its state is plain numpy arrays and Python lists, so it pickles.

A label is "positive" when its multi-hot value is > 0 (starter: "any value larger than 0
will be treated as positives"). k = min(top_k, num_classes), as the starter's
`top_k_by_class`.

Metrics, and the convention each uses for videos without labels (the starter divides
every per-video metric by the number of videos in the batch, labelled or not):

- **gap**: each video keeps its k highest-scored (score, is-label) pairs; all videos'
  pairs are pooled and ranked; AP = sum over ranks i of precision@i * is_label_i / P,
  with P = the total number of positive labels over all videos, including positives
  that are not in any top-k (the starter passes `sum(num_positives)`). A video without
  labels contributes k negative entries and nothing to P. 0.0 when P == 0 (starter).
- **hit_at_1**: fraction of all videos whose top-scored class is one of its labels
  (`np.average` over the batch in the starter). A video without labels is a miss.
- **perr**: per video with n labels, the fraction of its n top-scored classes that are
  labels *and* have score > 0 (the starter's `if predictions[row][i] > 0` test: pass
  probabilities, not logits); averaged over all videos. A video without labels counts as
  0 (in the starter `argpartition(p, -0)[-0:]` takes every class, none is a label, so
  its precision is 0, and the sum is divided by the number of videos).
- **map_all_classes**: per class c, AP over the pooled top-k entries of class c with
  denominator = the number of videos labelled c (all of them, in a top-k or not);
  averaged over all num_classes, a class without positives counting 0. This is what the
  current starter reports as "map" (`filter_empty_classes=False`, `sum(aps) / num_class`).
- **map_nonempty_classes**: the same APs averaged over the classes with at least one
  positive (the calculator's `filter_empty_classes=True` mode); 0.0 if there are none.
- **num_videos** (labelled or not), **num_positives** (P), **top_k** (as configured).

Ties. The starter breaks ties arbitrarily (`argpartition`, and a random shuffle before
ranking). Here every rule is deterministic:

- within a video (top-k selection, top-1 for Hit@1, top-n for PERR), equal scores are
  taken in ascending class index (the lower class is kept; `np.argmax` does the same);
- in the pooled ranking (GAP, each class's AP, the precision-recall curve) entries are
  sorted by score descending, then is-label ascending (negatives first among equal
  scores: pessimistic, a tie never raises a metric), then video index, then class.
  Metrics depend only on the ranked sequence of labels, which the first two keys fix,
  so GAP and mAP do not depend on the order in which videos were added or merged. The
  per-video sums (Hit@1, PERR) use exact integer counts and `math.fsum`, so these are
  order independent too.

Memory: k entries per video (score, class int32, is-label bool) plus per-video hit flag,
PERR, label count and the id given to `add_batch` (None if none), and a [num_classes]
int64 count of positives per class. Predictions are never kept.

Performance (measured on a 2-core development VM, float32 predictions, 1-7 labels a
video): adding 100,000 videos x 3,862 classes in batches of 1,000 with top_k=20 takes
about 2.0 s (20 ms a batch: `np.partition` for each row's k-th score, compare, `nonzero`;
index-list or multi-hot labels alike), then `result()` about 0.5-0.7 s (two `lexsort`s
of the 2M pooled entries): ~2.7 s in all. The state is ~20 MB (its pickle 19.8 MB).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np

DEFAULT_TOP_K = 20


class TopKEntries(NamedTuple):
    """The top-k predictions of each video of a batch, video by video.

    Entries are in video order, each video's in score-descending order (equal scores by
    ascending class); every video has exactly k = min(top_k, num_classes) entries.
    """

    video_index: np.ndarray  # [B*k] int64, index of the video in the batch
    class_index: np.ndarray  # [B*k] int32
    score: np.ndarray  # [B*k] the prediction scores (float32 or float64)
    is_label: np.ndarray  # [B*k] bool
    num_positives: np.ndarray  # [B] int64, each video's number of labels


class PrecisionRecall(NamedTuple):
    """Precision and recall after each entry of the pooled ranking (GAP's ranking)."""

    precision: np.ndarray  # [M] float64
    recall: np.ndarray  # [M] float64, relative to all positives (not only the top-k ones)
    score: np.ndarray  # [M] the entry's score, non-increasing


def average_precision(scores, labels, num_positives: int | None = None) -> float:
    """Non-interpolated AP of one ranked list (the starter's `ap_at_n` with n=None).

    AP = sum over ranks i of precision@i * is_label_i / num_positives, ranking by score
    descending and, among equal scores, negatives first. `num_positives` defaults to the
    number of positives in `labels` (values > 0); a larger value counts positives missing
    from the list. Returns 0.0 when there are no positives.
    """
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    if scores.ndim != 1 or scores.shape != labels.shape:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} must be equal 1-D shapes")
    _check_finite_order(scores)
    is_label = labels > 0
    found = int(np.count_nonzero(is_label))
    if num_positives is None:
        num_positives = found
    elif num_positives < found:
        raise ValueError(f"num_positives={num_positives} is less than the {found} positives given")
    order = np.lexsort((is_label, -scores.astype(np.float64)))
    return _ap_of_ranked(is_label[order], num_positives)


def top_k_entries(predictions, labels, top_k: int = DEFAULT_TOP_K) -> TopKEntries:
    """Each video's top-k (video, class, score, is-label) entries and its label count.

    `labels` is a multi-hot `[B, C]` array (value > 0 is a label) or a list of B arrays
    of label indices (see `_dense_labels`). Among equal scores the lower class index is
    kept.
    """
    predictions = _check_predictions(predictions, None)
    dense = _dense_labels(labels, predictions.shape[0], predictions.shape[1])
    k = _effective_k(top_k, predictions.shape[1])
    classes = _top_k_classes(predictions, k)
    batch = predictions.shape[0]
    rows = np.arange(batch)[:, None]
    return TopKEntries(
        video_index=np.repeat(np.arange(batch, dtype=np.int64), k),
        class_index=classes.reshape(-1).astype(np.int32),
        score=predictions[rows, classes].reshape(-1),
        is_label=dense[rows, classes].reshape(-1),
        num_positives=dense.sum(axis=1, dtype=np.int64),
    )


class ScoredVideos(NamedTuple):
    """What the metrics keep of each video of a batch: its top-k entries and per-video
    facts. `score_videos` makes it from full predictions; it is also what a distributed
    job ships between workers (k entries a video, never the C scores), and
    `MetricsAccumulator.add_scored` takes it back, so metrics over a subset of videos
    (a bootstrap resample) need no predictions.
    """

    classes: np.ndarray  # [B, k] int32, score-descending, equal scores by ascending class
    scores: np.ndarray  # [B, k]
    is_label: np.ndarray  # [B, k] bool
    perr: np.ndarray  # [B] float64, precision at the video's own number of labels
    num_labels: np.ndarray  # [B] int64
    labels_flat: np.ndarray  # [sum(num_labels)] int64, every video's label indices in order

    @classmethod
    def from_entries(cls, classes, scores, perr, num_labels, labels_flat) -> ScoredVideos:
        """Rebuild from stored entries; `is_label` is derived from each video's labels."""
        classes = np.asarray(classes, dtype=np.int32)
        num_labels = np.asarray(num_labels, dtype=np.int64)
        labels_flat = np.asarray(labels_flat, dtype=np.int64)
        # is_label[v, j]: classes[v, j] is one of video v's labels ((video, class) keyed as one int)
        width = int(max(classes.max(initial=-1), labels_flat.max(initial=-1))) + 1
        video = np.repeat(np.arange(len(num_labels), dtype=np.int64), num_labels)
        rows = np.arange(len(num_labels), dtype=np.int64)[:, None]
        is_label = np.isin(rows * width + classes, video * width + labels_flat)
        return cls(
            classes, np.asarray(scores), is_label, np.asarray(perr, np.float64), num_labels, labels_flat
        )

    def take(self, indices) -> ScoredVideos:
        """The videos at `indices` (repeats allowed), in that order."""
        indices = np.asarray(indices, dtype=np.int64)
        starts = np.cumsum(self.num_labels) - self.num_labels
        counts = self.num_labels[indices]
        flat = np.repeat(starts[indices] - (np.cumsum(counts) - counts), counts) + np.arange(counts.sum())
        return ScoredVideos(
            self.classes[indices], self.scores[indices], self.is_label[indices],
            self.perr[indices], counts, self.labels_flat[flat],
        )  # fmt: skip

    def labels(self) -> list[np.ndarray]:
        """Each video's label indices."""
        return np.split(self.labels_flat, np.cumsum(self.num_labels)[:-1]) if len(self.num_labels) else []


def score_videos(predictions, labels, top_k: int = DEFAULT_TOP_K) -> ScoredVideos:
    """Reduce `[B, C]` predictions and their labels to what the metrics need per video."""
    predictions = _check_predictions(predictions, None)
    batch, num_classes = predictions.shape
    dense = _dense_labels(labels, batch, num_classes)
    k = _effective_k(top_k, num_classes)
    classes = _top_k_classes(predictions, k)
    rows = np.arange(batch)[:, None]
    scores = predictions[rows, classes]
    is_label = dense[rows, classes]
    n_labels = dense.sum(axis=1, dtype=np.int64)
    # PERR: the n top classes of a video with n <= k labels are the first n entries.
    counted = is_label & (scores > 0)
    within = np.arange(k)[None, :] < n_labels[:, None]
    perr = np.zeros(batch, dtype=np.float64)
    has = n_labels > 0
    perr[has] = np.count_nonzero(counted & within, axis=1)[has] / n_labels[has]
    for row in np.nonzero(n_labels > k)[0]:
        n = int(n_labels[row])
        top = np.lexsort((np.arange(num_classes), -predictions[row]))[:n]
        perr[row] = np.count_nonzero(dense[row, top] & (predictions[row, top] > 0)) / n
    return ScoredVideos(
        classes.astype(np.int32), scores, is_label, perr, n_labels, np.nonzero(dense)[1].astype(np.int64)
    )


class MetricsAccumulator:
    """GAP, mAP, Hit@1 and PERR over any number of batches and merged partial results.

    `merge` adds another accumulator's videos into this one (the other is unchanged);
    videos get indices in add/merge order, which only matters as the last tie-break.
    """

    def __init__(self, num_classes: int, top_k: int = DEFAULT_TOP_K):
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        self.num_classes = int(num_classes)
        self.top_k = int(top_k)
        self._k = _effective_k(self.top_k, self.num_classes)
        self._num_videos = 0
        # Chunks of [n, k] arrays, video by video; concatenated lazily.
        self._scores: list[np.ndarray] = []
        self._classes: list[np.ndarray] = []
        self._is_label: list[np.ndarray] = []
        # Chunks of [n] per-video arrays.
        self._hits: list[np.ndarray] = []
        self._perr: list[np.ndarray] = []
        self._video_positives: list[np.ndarray] = []
        self._video_ids: list[Any] = []
        self._class_positives = np.zeros(self.num_classes, dtype=np.int64)

    @property
    def num_videos(self) -> int:
        return self._num_videos

    @property
    def video_ids(self) -> list:
        """The ids given to `add_batch` in video order (None where none was given)."""
        return list(self._video_ids)

    def add_batch(self, predictions, labels, video_ids: Sequence | None = None) -> MetricsAccumulator:
        """Add `[B, C]` scores and their labels (multi-hot `[B, C]` or B index arrays)."""
        predictions = _check_predictions(predictions, self.num_classes)
        return self.add_scored(score_videos(predictions, labels, self.top_k), video_ids)

    def add_scored(self, scored: ScoredVideos, video_ids: Sequence | None = None) -> MetricsAccumulator:
        """Add videos already reduced by `score_videos` (same `top_k` and class count)."""
        batch = len(scored.num_labels)
        if video_ids is not None and len(video_ids) != batch:
            raise ValueError(f"{len(video_ids)} video ids for {batch} predictions")
        if batch == 0:
            return self
        if scored.classes.shape != (batch, self._k):
            raise ValueError(f"scored videos hold {scored.classes.shape[1]} entries each, expected {self._k}")
        positives = np.asarray(scored.labels_flat, dtype=np.int64)
        if positives.size and (positives.min() < 0 or positives.max() >= self.num_classes):
            raise ValueError(f"label indices must be in [0, {self.num_classes})")
        self._scores.append(np.asarray(scored.scores))
        self._classes.append(np.asarray(scored.classes, dtype=np.int32))
        self._is_label.append(np.asarray(scored.is_label, dtype=bool))
        self._hits.append(np.asarray(scored.is_label, dtype=bool)[:, 0].copy())
        self._perr.append(np.asarray(scored.perr, dtype=np.float64))
        self._video_positives.append(np.asarray(scored.num_labels, dtype=np.int64))
        self._class_positives += np.bincount(positives, minlength=self.num_classes)
        self._video_ids.extend(video_ids if video_ids is not None else [None] * batch)
        self._num_videos += batch
        return self

    def merge(self, other: MetricsAccumulator) -> MetricsAccumulator:
        """Add `other`'s videos (after this one's) to this accumulator; returns self."""
        if not isinstance(other, MetricsAccumulator):
            raise TypeError(f"cannot merge {type(other).__name__} into MetricsAccumulator")
        if (other.num_classes, other.top_k) != (self.num_classes, self.top_k):
            raise ValueError(
                f"cannot merge num_classes={other.num_classes}, top_k={other.top_k} into "
                f"num_classes={self.num_classes}, top_k={self.top_k}"
            )
        # Arrays are never modified in place, so sharing them with `other` is safe.
        for name in ("_scores", "_classes", "_is_label", "_hits", "_perr", "_video_positives"):
            getattr(self, name).extend(list(getattr(other, name)))
        self._video_ids.extend(list(other._video_ids))
        self._class_positives = self._class_positives + other._class_positives
        self._num_videos += other._num_videos
        return self

    @classmethod
    def merge_all(cls, accumulators: Iterable[MetricsAccumulator]) -> MetricsAccumulator:
        """A new accumulator holding all the given ones' videos (inputs unchanged)."""
        accumulators = list(accumulators)
        if not accumulators:
            raise ValueError("merge_all needs at least one accumulator")
        first = accumulators[0]
        merged = cls(first.num_classes, first.top_k)
        for acc in accumulators:
            merged.merge(acc)
        return merged

    def result(self) -> dict:
        """The metrics over every video added; ValueError when there are none (starter)."""
        if self._num_videos == 0:
            raise ValueError("no videos accumulated")
        self._consolidate()
        is_label = self._is_label[0].reshape(-1)
        order = np.lexsort((is_label, -self._scores[0].reshape(-1).astype(np.float64)))
        num_positives = int(self._class_positives.sum())
        gap = _ap_of_ranked(is_label[order], num_positives)
        aps = self._class_aps()
        nonempty = self._class_positives > 0
        return {
            "gap": gap,
            "map_nonempty_classes": float(aps[nonempty].mean()) if nonempty.any() else 0.0,
            "map_all_classes": float(aps.sum() / self.num_classes),
            "hit_at_1": int(np.count_nonzero(self._hits[0])) / self._num_videos,
            "perr": math.fsum(self._perr[0].tolist()) / self._num_videos,
            "num_videos": self._num_videos,
            "num_positives": num_positives,
            "top_k": self.top_k,
        }

    def per_class(self) -> list[dict]:
        """Every class's AP (0.0 without positives) and its number of positive videos."""
        self._consolidate()
        aps = self._class_aps()
        return [
            {"class": c, "ap": float(aps[c]), "positives": int(self._class_positives[c])}
            for c in range(self.num_classes)
        ]

    def pooled_precision_recall(self) -> PrecisionRecall:
        """Precision/recall down GAP's pooled ranking of the top-k entries (for plots)."""
        self._consolidate()
        if self._num_videos == 0:
            empty = np.zeros(0)
            return PrecisionRecall(empty, empty, empty)
        is_label = self._is_label[0].reshape(-1)
        scores = self._scores[0].reshape(-1)
        order = np.lexsort((is_label, -scores.astype(np.float64)))
        cum = np.cumsum(is_label[order], dtype=np.float64)
        precision = cum / np.arange(1, cum.size + 1)
        total = int(self._class_positives.sum())
        recall = cum / total if total else np.zeros_like(cum)
        return PrecisionRecall(precision, recall, scores[order])

    def _class_aps(self) -> np.ndarray:
        """[num_classes] AP of each class over its pooled top-k entries (state consolidated)."""
        aps = np.zeros(self.num_classes, dtype=np.float64)
        if self._num_videos == 0:
            return aps
        classes = self._classes[0].reshape(-1)
        is_label = self._is_label[0].reshape(-1)
        order = np.lexsort((is_label, -self._scores[0].reshape(-1).astype(np.float64), classes))
        cls = classes[order]
        lab = is_label[order]
        counts = np.bincount(cls, minlength=self.num_classes)
        starts = np.cumsum(counts) - counts
        cum = np.cumsum(lab, dtype=np.int64)
        before = (cum - lab)[np.minimum(starts, cum.size - 1)]  # positives before each class
        rank = np.arange(1, cls.size + 1) - starts[cls]
        precision = (cum - before[cls]) / rank
        sums = np.bincount(cls, weights=np.where(lab, precision, 0.0), minlength=self.num_classes)
        nonempty = self._class_positives > 0
        aps[nonempty] = sums[nonempty] / self._class_positives[nonempty]
        return aps

    def _consolidate(self) -> None:
        """Concatenate each list of chunks into one chunk (same values, fewer arrays)."""
        if self._num_videos == 0:
            return
        for name in ("_scores", "_classes", "_is_label", "_hits", "_perr", "_video_positives"):
            chunks = getattr(self, name)
            if len(chunks) != 1:
                setattr(self, name, [np.concatenate(chunks)])

    def __getstate__(self) -> dict:
        self._consolidate()
        return self.__dict__.copy()


def precision_recall_curve(acc: MetricsAccumulator) -> PrecisionRecall:
    """`acc.pooled_precision_recall()`."""
    return acc.pooled_precision_recall()


def _ap_of_ranked(is_label: np.ndarray, num_positives: int) -> float:
    """AP of labels already in ranked order, over `num_positives` positives."""
    if num_positives <= 0:
        return 0.0
    cum = np.cumsum(is_label, dtype=np.int64)
    ranks = np.nonzero(is_label)[0] + 1
    return float(np.sum(cum[ranks - 1] / ranks) / num_positives)


def _effective_k(top_k: int, num_classes: int) -> int:
    if int(top_k) <= 0:
        raise ValueError(f"top_k must be a positive integer, got {top_k}")
    return min(int(top_k), int(num_classes))


def _check_finite_order(scores: np.ndarray) -> None:
    if scores.dtype.kind == "f" and np.isnan(scores).any():
        raise ValueError("scores contain NaN")


def _check_predictions(predictions, num_classes: int | None) -> np.ndarray:
    predictions = np.asarray(predictions)
    if predictions.ndim != 2:
        raise ValueError(f"predictions must be [batch, num_classes], got shape {predictions.shape}")
    if num_classes is not None and predictions.shape[1] != num_classes:
        raise ValueError(f"predictions have {predictions.shape[1]} classes, expected {num_classes}")
    if predictions.shape[1] == 0:
        raise ValueError("predictions have no classes")
    if predictions.dtype != np.float32 and predictions.dtype != np.float64:
        predictions = predictions.astype(np.float64)
    _check_finite_order(predictions)
    return predictions


def _dense_labels(labels, batch: int, num_classes: int) -> np.ndarray:
    """Multi-hot `[B, C]` array (values > 0) or B index arrays -> `[B, C]` bool.

    A list or tuple is always B index arrays; anything else goes through `np.asarray`
    (numpy, tf.Tensor): 2-D numeric is multi-hot, 1-D is B index arrays (an object
    array of them, or one class index per video).
    """
    if not isinstance(labels, list | tuple):
        labels = np.asarray(labels)
        if labels.ndim != 1 and (labels.ndim != 2 or labels.dtype == object):
            raise ValueError(f"labels must be multi-hot [B, C] or B index arrays, got shape {labels.shape}")
    if isinstance(labels, np.ndarray) and labels.ndim == 2:
        if labels.shape != (batch, num_classes):
            raise ValueError(f"multi-hot labels {labels.shape}, predictions ({batch}, {num_classes})")
        return labels > 0
    if len(labels) != batch:
        raise ValueError(f"{len(labels)} label lists for {batch} predictions")
    dense = np.zeros((batch, num_classes), dtype=bool)
    per_video = [np.asarray(indices, dtype=np.int64).reshape(-1) for indices in labels]
    if per_video:
        cols = np.concatenate(per_video)
        if cols.size and (cols.min() < 0 or cols.max() >= num_classes):
            raise ValueError(f"label indices must be in [0, {num_classes})")
        rows = np.repeat(np.arange(batch), [len(v) for v in per_video])
        dense[rows, cols] = True
    return dense


def _top_k_classes(predictions: np.ndarray, k: int) -> np.ndarray:
    """[B, k] class indices of each row's k highest scores, by score desc then class asc."""
    batch, num_classes = predictions.shape
    if batch == 0:
        return np.zeros((0, k), dtype=np.int64)
    if k == num_classes:
        classes = np.broadcast_to(np.arange(num_classes), (batch, num_classes))
    else:
        kth = np.partition(predictions, num_classes - k, axis=1)[:, num_classes - k, None]
        above = predictions > kth
        equal = predictions == kth
        need = k - np.count_nonzero(above, axis=1)  # >= 1 entries equal to the k-th score
        select = above | equal
        tied = np.nonzero(np.count_nonzero(equal, axis=1) > need)[0]
        if tied.size:  # keep only the `need` lowest classes among those equal to the k-th
            rank = np.cumsum(equal[tied], axis=1)
            select[tied] = above[tied] | (equal[tied] & (rank <= need[tied, None]))
        classes = np.nonzero(select)[1].reshape(batch, k)  # ascending class within a row
    scores = np.take_along_axis(predictions, classes, axis=1)
    order = np.argsort(-scores, axis=1, kind="stable")  # stable: equal scores keep class order
    return np.take_along_axis(classes, order, axis=1)
