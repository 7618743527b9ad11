"""How a teacher-targets dataset stores the teacher's outputs, defined once.

A teacher-targets dataset (written by `fewframes teacher-targets`) is a compact
student-view dataset plus, per video, what a frozen teacher computed over all its
frames: its class probabilities and its final representation. `serial` training reads
these instead of running the teacher (see `trainer.inputs`).

Predictions are stored in one of two encodings:

- `all`: every class's probability, float32 (`4·C` bytes a video: 15.4 KB at the
  3,862 YouTube-8M classes, about a fifth of a float16 every_n:10 student view).
- `top_k:K`: the K most probable classes (int16 indices, float32 probabilities) and
  the mean probability of the other C-K classes, which stands in for each of them
  (`6·K + 4` bytes: 604 B at K=100). Decoding gives back a dense `[C]` vector. The
  distillation loss then sees the rest as one flat value; at YouTube-8M's scale a
  teacher gives all but a few dozen classes probabilities below 1e-3, so the mean is
  close to each of them. `all` is exact.

The representation is always stored whole, float32 (`4·R` bytes).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from schemas import features as F

ALL_CLASSES = "all"
TOP_K = "top_k"


@dataclasses.dataclass(frozen=True)
class TargetsEncoding:
    kind: str  # ALL_CLASSES or TOP_K
    k: int = 0

    def __post_init__(self):
        if self.kind == ALL_CLASSES:
            if self.k:
                raise ValueError("predictions 'all' take no number")
        elif self.kind == TOP_K:
            if self.k < 1:
                raise ValueError(f"predictions top_k:K need K >= 1, got {self.k}")
        else:
            raise ValueError(f"unknown predictions encoding {self.kind!r}; expected all or top_k:K")

    @classmethod
    def parse(cls, text: str) -> TargetsEncoding:
        """`all` or `top_k:K`."""
        text = text.strip()
        if text == ALL_CLASSES:
            return cls(ALL_CLASSES)
        kind, sep, number = text.partition(":")
        if kind.strip() != TOP_K or not sep or not number.strip().isdigit():
            raise ValueError(f"cannot parse predictions encoding {text!r}; expected all or top_k:K")
        return cls(TOP_K, int(number))

    def __str__(self) -> str:
        return ALL_CLASSES if self.kind == ALL_CLASSES else f"{TOP_K}:{self.k}"

    def check(self, num_classes: int) -> None:
        if self.kind == TOP_K and self.k >= num_classes:
            raise ValueError(
                f"predictions top_k:{self.k} keep every one of the {num_classes} classes; use 'all'"
            )

    def bytes_per_video(self, num_classes: int, representation_dim: int) -> int:
        """Stored bytes of the targets of one video (Parquet, before compression)."""
        predictions = 4 * num_classes if self.kind == ALL_CLASSES else 6 * self.k + 4
        return predictions + 4 * representation_dim

    def prediction_columns(self) -> tuple[str, ...]:
        if self.kind == ALL_CLASSES:
            return (F.TEACHER_PREDICTIONS,)
        return (F.TEACHER_TOP_CLASSES, F.TEACHER_TOP_SCORES, F.TEACHER_REST_SCORE)

    # ----- encoding (the targets job) ---------------------------------------------------
    def encode(self, predictions: np.ndarray) -> list[dict]:
        """`[B, C]` probabilities -> per-video column values."""
        predictions = np.asarray(predictions, np.float32)
        if self.kind == ALL_CLASSES:
            return [{F.TEACHER_PREDICTIONS: row} for row in predictions]
        num_classes = predictions.shape[1]
        # Highest first; ties broken by class index, so the encoding is deterministic.
        order = np.argsort(-predictions, axis=1, kind="stable")[:, : self.k]
        top = np.take_along_axis(predictions, order, axis=1)
        rest = (predictions.sum(axis=1, dtype=np.float64) - top.sum(axis=1, dtype=np.float64)) / (
            num_classes - self.k
        )
        return [
            {
                F.TEACHER_TOP_CLASSES: order[i].astype(np.int16),
                F.TEACHER_TOP_SCORES: top[i],
                F.TEACHER_REST_SCORE: np.float32(max(rest[i], 0.0)),
            }
            for i in range(len(predictions))
        ]

    # ----- decoding (the trainer's readers) ----------------------------------------------
    def dense_numpy(self, columns: dict, num_classes: int) -> np.ndarray:
        """A batch's stored columns -> `[B, C]` float32 probabilities."""
        if self.kind == ALL_CLASSES:
            return np.stack([np.asarray(v, np.float32) for v in columns[F.TEACHER_PREDICTIONS]])
        rest = np.asarray(columns[F.TEACHER_REST_SCORE], np.float32)
        dense = np.repeat(rest[:, None], num_classes, axis=1)
        classes = np.stack([np.asarray(v, np.int64) for v in columns[F.TEACHER_TOP_CLASSES]])
        scores = np.stack([np.asarray(v, np.float32) for v in columns[F.TEACHER_TOP_SCORES]])
        np.put_along_axis(dense, classes, scores, axis=1)
        return dense

    def dense_tf(self, parsed: dict, num_classes: int):
        """TensorFlow twin of `dense_numpy` over `DatasetLayout.parse_tf_examples` output."""
        import tensorflow as tf

        if self.kind == ALL_CLASSES:
            return tf.cast(parsed[F.TEACHER_PREDICTIONS], tf.float32)
        rest = tf.cast(parsed[F.TEACHER_REST_SCORE], tf.float32)
        classes = tf.cast(parsed[F.TEACHER_TOP_CLASSES], tf.int64).to_tensor(shape=[None, self.k])
        scores = tf.cast(parsed[F.TEACHER_TOP_SCORES], tf.float32).to_tensor(shape=[None, self.k])
        batch = tf.shape(rest)[0]
        rows = tf.repeat(tf.range(batch, dtype=tf.int64), self.k)
        indices = tf.stack([rows, tf.reshape(classes, [-1])], axis=1)
        dense = tf.tile(rest[:, None], [1, num_classes])
        return tf.tensor_scatter_nd_update(dense, indices, tf.reshape(scores, [-1]))
