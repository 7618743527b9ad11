"""Which frames a model reads: the student's view of a video.

`every_n:N` keeps frames 0, N, 2N, ... of the capped length; `uniform:K` keeps K
frames spread evenly (frame floor((i + 0.5) * n / K)); `random:K` keeps K frames
drawn without replacement (training-time augmentation only); `all` keeps every frame.
The preprocessing job, the trainer and the serving graph all ask this type, so they
cannot disagree about which frames a view holds.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from schemas.features import MAX_FRAMES

EVERY_N = "every_n"
UNIFORM = "uniform"
RANDOM = "random"
ALL = "all"
_KINDS = (EVERY_N, UNIFORM, RANDOM, ALL)


@dataclasses.dataclass(frozen=True)
class View:
    kind: str
    n: int = 0

    def __post_init__(self):
        if self.kind not in _KINDS:
            raise ValueError(f"unknown view kind {self.kind!r}; expected one of {', '.join(_KINDS)}")
        if self.kind == ALL:
            if self.n != 0:
                raise ValueError("view 'all' takes no number")
        elif self.n < 1:
            raise ValueError(f"view {self.kind} needs a positive number, got {self.n}")

    @classmethod
    def parse(cls, text: str) -> View:
        """Parse `every_n:10`, `uniform:30`, `random:30` or `all`."""
        text = text.strip()
        if text == ALL:
            return cls(ALL)
        kind, sep, number = text.partition(":")
        if not sep or not number.strip().isdigit():
            raise ValueError(f"cannot parse view {text!r}; expected every_n:N, uniform:K, random:K or all")
        return cls(kind.strip(), int(number))

    def __str__(self) -> str:
        return ALL if self.kind == ALL else f"{self.kind}:{self.n}"

    @property
    def is_deterministic(self) -> bool:
        return self.kind != RANDOM

    def capped_length(self, num_frames: int) -> int:
        return min(int(num_frames), MAX_FRAMES)

    def num_selected(self, num_frames: int) -> int:
        """How many frames the view keeps of a video with `num_frames` frames."""
        n = self.capped_length(num_frames)
        if self.kind == EVERY_N:
            return -(-n // self.n)
        if self.kind in (UNIFORM, RANDOM):
            return min(n, self.n)
        return n

    def frame_indices(self, num_frames: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """Indices (ascending, int32) of the frames this view keeps."""
        n = self.capped_length(num_frames)
        if self.kind == EVERY_N:
            return np.arange(0, n, self.n, dtype=np.int32)
        if self.kind == ALL or n <= self.n:
            return np.arange(n, dtype=np.int32)
        if self.kind == UNIFORM:
            # floor((i + 0.5) * n / K) in integers: no float rounding at any size.
            i = np.arange(self.n, dtype=np.int64)
            return ((2 * i + 1) * n // (2 * self.n)).astype(np.int32)
        if rng is None:
            raise ValueError("view random:K needs a random generator")
        return np.sort(rng.choice(n, size=self.n, replace=False)).astype(np.int32)

    @property
    def max_selected(self) -> int:
        """The most frames this view keeps of any video (the padded width of a batch)."""
        return self.num_selected(MAX_FRAMES)

    @property
    def serving_view(self) -> View:
        """The deterministic view scoring uses: `random:K` trains, `uniform:K` serves."""
        return View(UNIFORM, self.n) if self.kind == RANDOM else self

    def gather_padded(
        self, frames: np.ndarray, lengths: np.ndarray, rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """numpy: `[B, T, D]` zero-padded videos -> `[B, max_selected, D]` view + lengths."""
        width = self.max_selected
        out = np.zeros((frames.shape[0], width) + frames.shape[2:], dtype=frames.dtype)
        counts = np.zeros(frames.shape[0], dtype=np.int32)
        for i, length in enumerate(np.asarray(lengths)):
            indices = self.frame_indices(int(length), rng)
            out[i, : len(indices)] = frames[i, indices]
            counts[i] = len(indices)
        return out, counts

    def gather_padded_tf(self, frames, lengths, seed=None):
        """TensorFlow twin of `gather_padded`, for tf.data and serving graphs.

        `frames` is `[B, T, ...]` (any dtype, e.g. the raw per-frame byte strings, so a
        serving graph decodes only the frames it keeps) and `lengths` `[B]`; returns the
        view `[B, max_selected, ...]` (padding zeros / empty) and its lengths. `random:K`
        needs `seed`, a stateless-random seed of shape [2] (int32/int64).
        """
        import tensorflow as tf

        width = self.max_selected
        n = tf.minimum(tf.cast(lengths, tf.int32), MAX_FRAMES)[:, None]  # [B, 1]
        i = tf.range(width, dtype=tf.int32)[None, :]  # [1, K]
        if self.kind == EVERY_N:
            indices = i * self.n
            valid = indices < n
        elif self.kind == ALL:
            indices, valid = tf.broadcast_to(i, tf.shape(n * i)), i < n
        elif self.kind == UNIFORM:
            spread = tf.cast((2 * tf.cast(i, tf.int64) + 1) * tf.cast(n, tf.int64) // (2 * self.n), tf.int32)
            indices = tf.where(n <= self.n, tf.broadcast_to(i, tf.shape(spread)), spread)
            valid = i < tf.minimum(n, self.n)
        else:
            if seed is None:
                raise ValueError("view random:K needs a seed")
            # K distinct frames: the K smallest of uniform keys over the valid frames.
            frame = tf.range(MAX_FRAMES, dtype=tf.int32)[None, :]
            keys = tf.random.stateless_uniform(tf.stack([tf.shape(n)[0], MAX_FRAMES]), seed)
            keys = tf.where(frame < n, keys, 2.0 + tf.cast(frame, tf.float32))
            chosen = tf.math.top_k(-keys, k=width, sorted=True).indices
            valid = i < tf.minimum(n, self.n)
            indices = tf.sort(tf.where(valid, chosen, MAX_FRAMES), axis=1)
        indices = tf.where(valid, indices, 0)
        frames = tf.convert_to_tensor(frames)
        # Pad T up to the largest index a view can ask for, so gathers never go out of range.
        needed = tf.maximum(tf.reduce_max(indices) + 1 - tf.shape(frames)[1], 0)
        pad = [[0, 0], [0, needed]] + [[0, 0]] * (len(frames.shape) - 2)
        frames = tf.pad(frames, pad)
        taken = tf.gather(frames, indices, batch_dims=1)
        mask_shape = tf.concat([tf.shape(valid), tf.ones([len(frames.shape) - 2], tf.int32)], 0)
        taken = tf.where(tf.reshape(valid, mask_shape), taken, tf.zeros_like(taken))
        return taken, tf.reduce_sum(tf.cast(valid, tf.int32), axis=1)
