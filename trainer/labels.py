"""Label spaces: the dataset's entity classes, or the vocabulary's top-level verticals.

`verticals` turns entity labels into genre labels (a video is in a vertical when any
of its entities has that `Vertical1`), so the same datasets train a genre classifier.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib

import numpy as np

from trainer.config import ENTITIES, VERTICALS

VOCABULARY_COLUMNS = ("Index", "Name", "Vertical1")


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    names: tuple[str, ...]
    verticals: tuple[str, ...]  # Vertical1 of each class
    sha256: str

    @classmethod
    def read(cls, path: str) -> Vocabulary:
        with open(path, "rb") as f:
            return cls.from_bytes(f.read(), path)

    @classmethod
    def from_bytes(cls, content: bytes, path: str = "vocabulary") -> Vocabulary:
        """A vocabulary CSV's content (read from anywhere: local, gs://)."""
        rows = list(csv.DictReader(content.decode("utf-8").splitlines()))
        missing = [c for c in VOCABULARY_COLUMNS if rows and c not in rows[0]]
        if not rows or missing:
            raise ValueError(
                f"{path} is not a YouTube-8M vocabulary CSV (needs columns {VOCABULARY_COLUMNS})"
            )
        indexes = [_index(row, path) for row in rows]
        by_index = dict(zip(indexes, rows, strict=True))
        if len(by_index) != len(rows):
            # A later row would silently replace an earlier one, losing a class's name.
            repeated = min(i for i in by_index if indexes.count(i) > 1)
            raise ValueError(f"{path}: Index {repeated} appears {indexes.count(repeated)} times")
        if sorted(by_index) != list(range(len(by_index))):
            raise ValueError(f"{path}: Index column is not 0..{len(by_index) - 1}")
        ordered = [by_index[i] for i in range(len(by_index))]
        return cls(
            names=tuple(r["Name"] for r in ordered),
            verticals=tuple(r["Vertical1"] or "(Unknown)" for r in ordered),
            sha256=hashlib.sha256(content).hexdigest(),
        )


def _index(row: dict, path: str) -> int:
    try:
        return int(row["Index"])
    except (TypeError, ValueError):
        raise ValueError(f"{path}: Index {row['Index']!r} is not a whole number") from None


@dataclasses.dataclass(frozen=True)
class LabelSpace:
    """Maps a dataset's entity labels to the classes a model predicts."""

    kind: str
    num_entities: int
    class_names: tuple[str, ...]
    entity_to_class: tuple[int, ...] | None = None  # verticals only
    vocabulary_sha256: str | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @classmethod
    def build(cls, kind: str, num_entities: int, vocabulary_path: str | None) -> LabelSpace:
        vocabulary = Vocabulary.read(vocabulary_path) if vocabulary_path else None
        if vocabulary is not None and len(vocabulary.names) != num_entities:
            raise ValueError(
                f"vocabulary {vocabulary_path} has {len(vocabulary.names)} classes, "
                f"the dataset {num_entities}"
            )
        sha = vocabulary.sha256 if vocabulary else None
        if kind == ENTITIES:
            names = vocabulary.names if vocabulary else tuple(str(i) for i in range(num_entities))
            return cls(ENTITIES, num_entities, tuple(names), None, sha)
        if kind != VERTICALS or vocabulary is None:
            raise ValueError("label space verticals needs a vocabulary")
        verticals = tuple(sorted(set(vocabulary.verticals)))
        position = {v: i for i, v in enumerate(verticals)}
        return cls(VERTICALS, num_entities, verticals, tuple(position[v] for v in vocabulary.verticals), sha)

    def multi_hot(self, label_lists) -> np.ndarray:
        """numpy: a batch of entity-label arrays -> `[B, num_classes]` float32."""
        out = np.zeros((len(label_lists), self.num_classes), np.float32)
        mapping = None if self.entity_to_class is None else np.asarray(self.entity_to_class)
        for i, labels in enumerate(label_lists):
            labels = np.asarray(labels, np.int64)
            out[i, labels if mapping is None else mapping[labels]] = 1.0
        return out

    def multi_hot_tf(self, ragged_labels):
        """TensorFlow twin of `multi_hot` for a ragged `[B, None]` int64 tensor."""
        import tensorflow as tf

        labels = ragged_labels
        if self.entity_to_class is not None:
            labels = tf.ragged.map_flat_values(
                lambda v: tf.gather(tf.constant(self.entity_to_class, tf.int64), v), labels
            )
        dense = tf.one_hot(labels, self.num_classes, dtype=tf.float32)  # ragged [B, None, C]
        return tf.minimum(tf.reduce_sum(dense, axis=1), 1.0)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
