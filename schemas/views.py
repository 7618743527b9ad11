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
