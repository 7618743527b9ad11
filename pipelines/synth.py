"""Deterministic synthetic YouTube-8M shards (frame or video level).

Tests, benchmarks and the demo run on shards written here in the exact released
format: `{out}/{partition}0000.tfrecord` ... (records built by `schemas.raw`) and a
`vocabulary.csv` with the real header. The only real frame-level data at hand
(`../shared/data/yt8m-v2-frame-sample`, 40 videos, relabelled) is too small to train
on, but it shows how real frames change over time, and the default frame model below
is fitted to it.

Generative model
----------------
The data must be learnable, and the signal must be spread over time, so that a model
seeing all frames (the teacher) can beat one seeing every 10th frame (the student):

* Classes. Class `c` is drawn with Zipf-like frequency ∝ 1 / (c + 2), so, as in the
  real vocabulary, index 0 is the most common class and there is a long tail. Each
  video has 1..4 distinct labels.
* Prototypes. Each class owns a random unit direction in rgb space (1024) and one in
  audio space (128). They come from a generator seeded by `seed` alone, so the train,
  validate and test partitions of one seed share them; random directions in 1024 (128)
  dimensions are nearly orthogonal, so classes do not mask each other.
* Visibility. Half the classes are visible throughout a video; the others only in a
  contiguous window covering a class-specific fraction of the frames, log-uniform in
  [3%, 30%] (at least one 5-frame segment, or `--min-window-frames`), placed at random
  in each video. Outside its window a label contributes nothing, so those classes can
  only be seen in the frames of the window: every 10th frame often misses a 7-frame
  window entirely. With `--min-window-frames 20` every window holds at least two
  frames of every_n:10, the redundancy of real video at one frame per second, where
  what a label shows usually lasts longer than ten seconds; views that read fewer
  frames (every_n:30, uniform:6) still miss windows.
* Frames. frame_t = background + variation_t + Σ over labels visible at t of
  amplitude × prototype. The background is one random vector per video (what makes
  the frames of one video alike and video means differ). The variation has std
  NOISE_STD = 0.45 per component; how it changes over time is the frame model:
  - `shots` (the default). Real video is made of shots: neighbouring frames are near
    duplicates inside a shot and jump at a cut. A video is cut into shots of
    geometric length (mean MEAN_SHOT_FRAMES = 16 frames; the cuts are drawn per
    video); each shot has its own content, a gaussian vector (a share SHOT_SHARE of
    the variance: 26% rgb, 21% audio), constant through the shot, and on top of it a
    drift, an ARMA(1,1) process x_t = rho x_(t-1) + e_t + theta e_(t-1) of the
    per-frame noise e (the rest of the variance; rho 0.59 rgb, 0.49 audio; the MA term
    makes part of it fresh noise in every frame). Shot content gives the slow decay
    of the correlation with lag (up to 20 frames), the drift the fast one (lags
    1-5). Label windows start at the cut nearest their random start, so what a label
    shows tends to begin with a shot. The background std is 0.225 (rgb) and 0.315
    (audio). Fitted with `benchmarks/realism.py` (`pipelines.synthetic.realism`) to the real
    sample: the mean over videos of the cosine between frames t and t + lag
    (l2-normalised, the video mean removed) at lags 1, 2, 5, 10, 20 is 0.47, 0.35,
    0.18, 0.10, 0.03 for rgb (real: 0.47, 0.35, 0.19, 0.11, 0.04) and 0.24, 0.19,
    0.12, 0.08, 0.02 for audio (real: 0.25, 0.20, 0.13, 0.08, 0.03); within-video over
    between-video spread 3.2 rgb, 1.9 audio (real 3.2, 1.8). i.i.d. noise (old
    default) gives 0 at every lag, and AR(1) noise fitted at lag 1 gives 0.22 at lag 2.
  - `iid` (the earlier generator, byte for byte): i.i.d. gaussian noise per frame and
    component (std 0.45) and background std 0.30. `--noise-correlation R` makes the
    noise AR(1) in time instead (same std; frames k apart correlated R^k).
  The noise values are drawn as 16 random bits indexing a table of 65536 gaussian
  quantiles (5x faster than `standard_normal` and, after 8-bit quantization,
  indistinguishable from it); the shot model filters them in time. A label's
  amplitude, measured along its prototype, is 3 noise std in rgb and 2 in audio,
  times a per-video factor in [0.75, 1.25]: one frame gives moderate evidence, many
  frames strong evidence (less with shots: neighbouring frames repeat their shot's
  content, so a window's frames are less independent evidence than i.i.d. frames).
  Per component the values have std ≈ 0.50-0.55, so almost all lie within the quantizer's
  [-2, 2]; frames are then quantized to uint8 with `schemas.quantization.quantize`.
* Consequences. The projection of a frame onto a prototype rises by the amplitude in
  the label's window. For a short-window class the max over frames of that projection
  separates positives from negatives well with all frames and much worse with every
  10th frame; for an always-visible class even the mean frame (the video-level
  feature) shows it. A model seeing no frames can only learn the class priors.
* Lengths. Real videos are cut at 300 s, so many have exactly 300 frames: 45% of the
  videos get `max_frames`, the rest a uniform length in [min_frames, max_frames]
  (mean ≈ 226 frames for 30:300).
* Video level. `mean_rgb` / `mean_audio` are the means of the dequantized frames of
  the same video (the frame-level and video-level shards of one config agree).
* Segments (frame level, optional). For some of a video's labels, up to 3 positive
  5-frame segments (score 1.0) lying inside the label's window and up to 3 negative
  ones (score 0.0) lying outside it, on the 5-frame grid like the 2019 release.
* Partition `test` writes no labels (an empty list) and no segments; its frames still
  carry the hidden labels' signal.

Determinism: every video draws from its own `SeedSequence(seed, spawn_key=(video
stream, partition, index))`, so a file's bytes depend only on the config, not on how
videos are split into shards, and the train and validate partitions of one seed are
different videos (a plain `SeedSequence([seed, index])` would repeat the train videos
in the validate partition). Ids are 6 base62 characters, a keyed bijective scramble of
(index, partition): unique within a seed, random-looking.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import importlib
import logging
import math
import os
import statistics
import sys
import time

import numpy as np
from tqdm import tqdm

from pipelines.records.tfrecord_io import write_records
from schemas import features as F
from schemas import raw
from schemas.quantization import dequantize, quantize

logger = logging.getLogger("pipelines.synth")  # not "__main__" under `python -m`

PARTITIONS = ("train", "validate", "test")
TEST_PARTITION = "test"

VOCABULARY_FILE = "vocabulary.csv"
VOCABULARY_HEADER = (
    "Index",
    "TrainVideoCount",
    "KnowledgeGraphId",
    "Name",
    "WikiUrl",
    "Vertical1",
    "Vertical2",
    "Vertical3",
    "WikiDescription",
)
VERTICALS = (
    "Arts & Entertainment",
    "Games",
    "Autos & Vehicles",
    "Sports",
    "Food & Drink",
    "Computers & Electronics",
    "Business & Industrial",
    "Pets & Animals",
    "Hobbies & Leisure",
    "Beauty & Fitness",
    "Science",
    "Travel",
)

# Generative model (see the module docstring).
ZIPF_OFFSET = 2.0
LABEL_COUNT_PROBABILITIES = (0.35, 0.30, 0.20, 0.15)  # P(1 label), ..., P(4 labels)
ALWAYS_VISIBLE_SHARE = 0.5
WINDOW_FRACTION_RANGE = (0.03, 0.30)
CAPPED_LENGTH_SHARE = 0.45
NOISE_STD = 0.45
BACKGROUND_STD = 0.30
RGB_AMPLITUDE = 3.0 * NOISE_STD
AUDIO_AMPLITUDE = 2.0 * NOISE_STD
AMPLITUDE_JITTER = (0.75, 1.25)
SEGMENT_RATED_LABEL_SHARE = 0.6

# Frame models (SynthConfig.frame_model).
SHOT_FRAMES = "shots"
IID_FRAMES = "iid"
FRAME_MODELS = (SHOT_FRAMES, IID_FRAMES)
# The shot model, per feature (rgb, audio), fitted to the real frame sample with
# `benchmarks/realism.py` (see the module docstring). Shot lengths are geometric.
MEAN_SHOT_FRAMES = 16.0
SHOT_SHARE = {F.RGB: 0.26, F.AUDIO: 0.21}  # of the within-video variance NOISE_STD**2
DRIFT_RHO = {F.RGB: 0.59, F.AUDIO: 0.49}  # ARMA(1,1) x_t = rho x_(t-1) + e_t + theta e_(t-1)
DRIFT_THETA = {F.RGB: -0.285, F.AUDIO: -0.405}
SHOT_BACKGROUND_STD = {F.RGB: 0.225, F.AUDIO: 0.315}
MAX_SEGMENTS_PER_SCORE = 3

_RGB_DIM = F.FEATURE_DIMS[F.RGB]
_AUDIO_DIM = F.FEATURE_DIMS[F.AUDIO]
_FRAME_DIM = _RGB_DIM + _AUDIO_DIM

# Independent random streams of one seed (spawn keys of its SeedSequence).
_CLASS_STREAM = 1
_VIDEO_STREAM = 2
_ID_STREAM = 3
_VOCABULARY_STREAM = 4

_ID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ID_LENGTH = 6
_ID_SPACE = len(_ID_ALPHABET) ** _ID_LENGTH
_FEISTEL_HALF_BITS = 18  # 2**36 >= 62**6, so cycle-walking needs ~1.2 rounds on average
_FEISTEL_ROUNDS = 4
MAX_VIDEOS = _ID_SPACE // len(PARTITIONS)


@dataclasses.dataclass(frozen=True)
class SynthConfig:
    kind: str = F.FRAME_LEVEL  # F.FRAME_LEVEL | F.VIDEO_LEVEL
    videos: int = 1000
    shards: int = 4
    seed: int = 0
    classes: int = 100
    min_frames: int = 30
    max_frames: int = 300  # may exceed the dataset's 300 to exercise readers' capping
    segments: bool = False  # 2019-style segment labels (frame level only)
    partition: str = "train"  # file prefix; "test" writes no labels
    # The shortest window a windowed class is visible in, in frames (seconds at the
    # release's one frame per second); the video's length caps it.
    min_window_frames: int = F.SEGMENT_LENGTH_FRAMES
    # How frames vary over time: "shots" (the default, statistics like real video) or
    # "iid" (the earlier generator: the same noise for every frame, byte for byte).
    frame_model: str = "shots"
    # Correlation of a frame's noise with the previous frame's (AR(1)); 0: independent.
    # A parameter of frame_model "iid" only (the shot model has its own time structure).
    noise_correlation: float = 0.0

    def __post_init__(self):
        if self.kind not in F.KINDS:
            raise ValueError(f"kind must be one of {', '.join(F.KINDS)}, got {self.kind!r}")
        if self.partition not in PARTITIONS:
            raise ValueError(f"partition must be one of {', '.join(PARTITIONS)}, got {self.partition!r}")
        if not 1 <= self.videos <= MAX_VIDEOS:
            raise ValueError(f"videos must be in [1, {MAX_VIDEOS}], got {self.videos}")
        if not 1 <= self.shards <= self.videos:
            raise ValueError(f"shards must be in [1, videos={self.videos}], got {self.shards}")
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")
        if self.classes < 1:
            raise ValueError(f"classes must be positive, got {self.classes}")
        if not 1 <= self.min_frames <= self.max_frames:
            raise ValueError(f"frames must satisfy 1 <= min <= max, got {self.min_frames}:{self.max_frames}")
        if self.min_window_frames < F.SEGMENT_LENGTH_FRAMES:
            raise ValueError(
                f"min_window_frames must be at least one {F.SEGMENT_LENGTH_FRAMES}-frame segment, "
                f"got {self.min_window_frames}"
            )
        if self.frame_model not in FRAME_MODELS:
            choices = ", ".join(FRAME_MODELS)
            raise ValueError(f"frame_model must be one of {choices}, got {self.frame_model!r}")
        if not 0.0 <= self.noise_correlation < 1.0:
            raise ValueError(f"noise_correlation must be in [0, 1), got {self.noise_correlation}")
        if self.noise_correlation and self.frame_model != IID_FRAMES:
            raise ValueError(
                f"noise_correlation is a parameter of frame_model {IID_FRAMES!r}, not {self.frame_model!r}"
            )
        if self.segments and self.kind != F.FRAME_LEVEL:
            raise ValueError("segments are frame-level fields; they need kind 'frame'")

    @property
    def writes_labels(self) -> bool:
        return self.partition != TEST_PARTITION


@dataclasses.dataclass(frozen=True)
class SynthSummary:
    paths: tuple[str, ...]  # shard files, in shard order
    vocabulary_path: str
    videos: int
    frames: int  # total over all videos
    bytes: int  # total size of the shard files
    seconds: float


@dataclasses.dataclass(frozen=True, eq=False)
class ClassModel:
    """What every class looks like; shared by all partitions of one seed."""

    frequencies: np.ndarray  # float64 [C], sums to 1
    window_fractions: np.ndarray  # float64 [C]; 1.0 = visible throughout the video
    rgb_prototypes: np.ndarray  # float32 [C, 1024], unit rows
    audio_prototypes: np.ndarray  # float32 [C, 128], unit rows
    signals: np.ndarray  # float32 [C, 1152]: amplitude × prototype, rgb then audio

    @property
    def classes(self) -> int:
        return len(self.frequencies)

    @property
    def always_visible(self) -> np.ndarray:
        return self.window_fractions >= 1.0


@dataclasses.dataclass(frozen=True, eq=False)
class SyntheticVideo:
    index: int
    id: bytes
    labels: np.ndarray  # int64 [K], ascending; the true labels, also for partition test
    windows: np.ndarray  # int64 [K, 2]: frames [start, end) where labels[k] is visible
    rgb: np.ndarray  # uint8 [T, 1024]
    audio: np.ndarray  # uint8 [T, 128]
    segments: dict | None  # schemas.features segment fields, or None
    shot_starts: np.ndarray | None = None  # int64 first frames of the shots (frame model "shots")

    @property
    def num_frames(self) -> int:
        return len(self.rgb)


def _unit_rows(rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
    vectors = rng.standard_normal((rows, dim))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


@functools.lru_cache(maxsize=8)
def class_model(seed: int, classes: int) -> ClassModel:
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_CLASS_STREAM,)))
    weights = 1.0 / (np.arange(classes) + ZIPF_OFFSET)
    # A permutation fixes the share of always-visible classes exactly, so even a small
    # vocabulary has both kinds.
    always_visible = rng.permutation(classes) < round(classes * ALWAYS_VISIBLE_SHARE)
    low, high = np.log(WINDOW_FRACTION_RANGE[0]), np.log(WINDOW_FRACTION_RANGE[1])
    window_fractions = np.where(always_visible, 1.0, np.exp(rng.uniform(low, high, classes)))
    rgb_prototypes = _unit_rows(rng, classes, _RGB_DIM)
    audio_prototypes = _unit_rows(rng, classes, _AUDIO_DIM)
    signals = np.concatenate(
        [RGB_AMPLITUDE * rgb_prototypes, AUDIO_AMPLITUDE * audio_prototypes], axis=1
    ).astype(np.float32)
    frequencies = weights / weights.sum()
    for array in (frequencies, window_fractions, rgb_prototypes, audio_prototypes, signals):
        array.flags.writeable = False  # the model is cached and shared: nobody may change it
    return ClassModel(frequencies, window_fractions, rgb_prototypes, audio_prototypes, signals)


@functools.lru_cache(maxsize=1)
def _noise_table() -> np.ndarray:
    """Gaussian quantiles at (k + 0.5) / 65536: noise is one table gather per 16 random bits.

    `standard_normal` costs as much as serializing the record; after 8-bit
    quantization a 65536-level gaussian is indistinguishable from a continuous one.
    """
    normal = statistics.NormalDist(0.0, NOISE_STD)
    levels = 1 << 16
    return np.array([normal.inv_cdf((k + 0.5) / levels) for k in range(levels)], dtype=np.float32)


def _mix64(value: int) -> int:
    """splitmix64's finalizer: a strong 64-bit hash for the id scramble's rounds."""
    mask = (1 << 64) - 1
    value = (value + 0x9E3779B97F4A7C15) & mask
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & mask
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & mask
    return value ^ (value >> 31)


@functools.lru_cache(maxsize=8)
def _id_round_keys(seed: int) -> tuple[int, ...]:
    sequence = np.random.SeedSequence(seed, spawn_key=(_ID_STREAM,))
    return tuple(int(key) for key in sequence.generate_state(_FEISTEL_ROUNDS, np.uint64))


def _feistel(value: int, keys: tuple[int, ...]) -> int:
    half_mask = (1 << _FEISTEL_HALF_BITS) - 1
    left, right = value >> _FEISTEL_HALF_BITS, value & half_mask
    for key in keys:
        left, right = right, left ^ (_mix64(right ^ key) & half_mask)
    return (left << _FEISTEL_HALF_BITS) | right


def video_id(seed: int, partition: str, index: int) -> bytes:
    """Six base62 characters, distinct for every (partition, index) of one seed."""
    plain = index * len(PARTITIONS) + PARTITIONS.index(partition)
    if not 0 <= plain < _ID_SPACE:
        raise ValueError(f"video index {index} is outside [0, {MAX_VIDEOS})")
    keys = _id_round_keys(seed)
    # Cycle-walking: the Feistel network permutes [0, 2**36); re-applying it until the
    # value lands in [0, 62**6) restricts it to a permutation of that smaller range.
    scrambled = _feistel(plain, keys)
    while scrambled >= _ID_SPACE:
        scrambled = _feistel(scrambled, keys)
    chars = []
    for _ in range(_ID_LENGTH):
        scrambled, digit = divmod(scrambled, len(_ID_ALPHABET))
        chars.append(_ID_ALPHABET[digit])
    return "".join(chars).encode("ascii")


def _video_seed_sequence(config: SynthConfig, index: int) -> np.random.SeedSequence:
    spawn_key = (_VIDEO_STREAM, PARTITIONS.index(config.partition), index)
    return np.random.SeedSequence(config.seed, spawn_key=spawn_key)


def _draw_num_frames(rng: np.random.Generator, config: SynthConfig) -> int:
    if rng.random() < CAPPED_LENGTH_SHARE:
        return config.max_frames
    return int(rng.integers(config.min_frames, config.max_frames + 1))


def window_lengths(fractions: np.ndarray, num_frames: int, min_frames: int) -> np.ndarray:
    """Frames each class is visible for in a video of `num_frames` (int64, like `fractions`)."""
    fractions = np.asarray(fractions)
    return np.where(
        fractions >= 1.0,
        num_frames,
        np.clip(np.rint(fractions * num_frames), min(min_frames, num_frames), num_frames),
    ).astype(np.int64)


def _draw_windows(
    rng: np.random.Generator,
    fractions: np.ndarray,
    num_frames: int,
    min_frames: int,
    shot_starts: np.ndarray | None = None,
) -> np.ndarray:
    """[K, 2] label windows; with `shot_starts`, each window starts at the cut nearest
    its uniformly drawn start (that leaves it inside the video), so labels follow shots."""
    lengths = window_lengths(fractions, num_frames, min_frames)
    starts = rng.integers(0, num_frames - lengths + 1)
    if shot_starts is not None:
        for k, (start, length) in enumerate(zip(starts, lengths, strict=True)):
            cuts = shot_starts[shot_starts <= num_frames - length]  # holds 0
            starts[k] = cuts[np.argmin(np.abs(cuts - start))]
    return np.stack([starts, starts + lengths], axis=1)


def _draw_shot_starts(rng: np.random.Generator, num_frames: int) -> np.ndarray:
    """First frames of a video's shots (int64, ascending, starting at 0): geometric lengths."""
    lengths = rng.geometric(1.0 / MEAN_SHOT_FRAMES, size=int(2 * num_frames / MEAN_SHOT_FRAMES) + 4)
    while lengths.sum() < num_frames:
        lengths = np.concatenate([lengths, rng.geometric(1.0 / MEAN_SHOT_FRAMES, size=len(lengths))])
    starts = np.concatenate([[0], np.cumsum(lengths)])
    return starts[starts < num_frames].astype(np.int64)


def _per_column(values: dict) -> np.ndarray:
    """A per-feature constant as one float32 value per frame column (rgb then audio)."""
    return np.concatenate(
        [np.full(_RGB_DIM, values[F.RGB], np.float32), np.full(_AUDIO_DIM, values[F.AUDIO], np.float32)]
    )


@functools.lru_cache(maxsize=1)
def _shot_model_columns() -> dict[str, np.ndarray]:
    rho, theta = _per_column(DRIFT_RHO), _per_column(DRIFT_THETA)
    share = _per_column(SHOT_SHARE)
    # The ARMA(1,1) of unit innovations has variance (1 + 2 rho theta + theta^2) / (1 - rho^2);
    # scaled so that drift + shot content have the within-video variance NOISE_STD**2.
    arma_variance = (1 + 2 * rho * theta + theta * theta) / (1 - rho * rho)
    columns = {
        "rho": rho,
        "theta": theta,
        "drift_scale": np.sqrt((1 - share) / arma_variance).astype(np.float32),
        "shot_std": (NOISE_STD * np.sqrt(share)).astype(np.float32),
        "background_std": _per_column(SHOT_BACKGROUND_STD),
    }
    for array in columns.values():
        array.flags.writeable = False
    return columns


def _drift_in_time(noise: np.ndarray, rho: np.ndarray, theta: np.ndarray) -> None:
    """Independent per-frame noise e [T, D] -> ARMA(1,1) in place, per column:
    x_t = rho x_(t-1) + e_t + theta e_(t-1) (an AR(1) filter, then a one-step MA)."""
    step = np.empty_like(noise[0])
    for t in range(1, len(noise)):
        np.multiply(noise[t - 1], rho, out=step)
        noise[t] += step
    noise[1:] += theta * noise[:-1]  # y_t + theta y_(t-1) = (1 + theta B) / (1 - rho B) e_t


def _draw_segments(rng: np.random.Generator, labels, windows, num_frames: int) -> dict | None:
    """Rated 5-frame segments: positives inside a label's window, negatives outside."""
    grid = np.arange(0, num_frames - F.SEGMENT_LENGTH_FRAMES + 1, F.SEGMENT_LENGTH_FRAMES)
    rated = rng.random(len(labels)) < SEGMENT_RATED_LABEL_SHARE
    if not rated.any():
        rated[rng.integers(len(labels))] = True
    starts, label_of, scores = [], [], []
    for label, (window_start, window_end), is_rated in zip(labels, windows, rated, strict=True):
        if not is_rated:
            continue
        inside = grid[(grid >= window_start) & (grid + F.SEGMENT_LENGTH_FRAMES <= window_end)]
        outside = grid[(grid + F.SEGMENT_LENGTH_FRAMES <= window_start) | (grid >= window_end)]
        for candidates, score in ((inside, 1.0), (outside, 0.0)):
            count = min(len(candidates), int(rng.integers(1, MAX_SEGMENTS_PER_SCORE + 1)))
            chosen = np.sort(rng.choice(candidates, size=count, replace=False)) if count else []
            starts.extend(int(start) for start in chosen)
            label_of.extend([int(label)] * count)
            scores.extend([score] * count)
    if not starts:
        return None
    return {
        F.SEGMENT_START_TIMES: starts,
        F.SEGMENT_END_TIMES: [start + F.SEGMENT_LENGTH_FRAMES for start in starts],
        F.SEGMENT_LABELS: label_of,
        F.SEGMENT_SCORES: scores,
    }


def _correlate_in_time(noise: np.ndarray, correlation: float) -> None:
    """Independent per-frame noise [T, D] -> AR(1) noise in place, same stationary std:
    n_t = r * n_(t-1) + sqrt(1 - r^2) * e_t, so frames k apart are correlated r^k."""
    innovation = math.sqrt(1.0 - correlation * correlation)
    for t in range(1, len(noise)):
        noise[t] *= innovation
        noise[t] += correlation * noise[t - 1]


class VideoSynthesizer:
    """Makes the videos of one config, by index, in memory.

    One float32 scratch buffer is reused for every video's frames: allocating a fresh
    megabyte per video costs as much time in page faults as filling it. Not
    thread-safe; use one synthesizer per thread.
    """

    def __init__(self, config: SynthConfig):
        self.config = config
        self.model = class_model(config.seed, config.classes)
        self._scratch = np.empty(config.max_frames * _FRAME_DIM, dtype=np.float32)

    def video(self, index: int) -> SyntheticVideo:
        """Video `index`: what `generate` writes, plus its latent label windows."""
        config, model = self.config, self.model
        # One stream per video, drawn in a fixed order: layout, noise, then segments, so
        # the frames are the same with or without segments.
        bit_generator = np.random.PCG64(_video_seed_sequence(config, index))
        rng = np.random.Generator(bit_generator)
        num_frames = _draw_num_frames(rng, config)
        label_count = 1 + int(rng.choice(len(LABEL_COUNT_PROBABILITIES), p=LABEL_COUNT_PROBABILITIES))
        label_count = min(label_count, model.classes)
        labels = np.sort(rng.choice(model.classes, size=label_count, replace=False, p=model.frequencies))
        shots = config.frame_model == SHOT_FRAMES
        shot_starts = _draw_shot_starts(rng, num_frames) if shots else None
        windows = _draw_windows(
            rng, model.window_fractions[labels], num_frames, config.min_window_frames, shot_starts
        )
        amplitudes = rng.uniform(*AMPLITUDE_JITTER, size=label_count).astype(np.float32)
        if shots:
            columns = _shot_model_columns()
            background = rng.standard_normal(_FRAME_DIM).astype(np.float32) * columns["background_std"]
            contents = rng.standard_normal((len(shot_starts), _FRAME_DIM)).astype(np.float32)
            contents *= columns["shot_std"]
        else:
            background = (rng.standard_normal(_FRAME_DIM) * BACKGROUND_STD).astype(np.float32)

        # Raw 64-bit words viewed as 16-bit table indices (little-endian, as on every
        # platform TensorFlow runs on): four noise values per word drawn.
        size = num_frames * _FRAME_DIM
        words = bit_generator.random_raw(-(-size // 4))
        indices = words.astype("<u8", copy=False).view("<u2")[:size]
        frames = _noise_table().take(indices, out=self._scratch[:size]).reshape(num_frames, _FRAME_DIM)
        if shots:
            frames *= columns["drift_scale"]  # scaling first: the filter is linear
            _drift_in_time(frames, columns["rho"], columns["theta"])
            shot_of_frame = np.repeat(np.arange(len(shot_starts)), np.diff(shot_starts, append=num_frames))
            frames += contents[shot_of_frame]
        elif config.noise_correlation:
            _correlate_in_time(frames, config.noise_correlation)
        frames += background
        for label, (start, end), amplitude in zip(labels, windows, amplitudes, strict=True):
            frames[start:end] += amplitude * model.signals[label]
        quantized = quantize(frames)

        segments = None
        if config.segments and config.writes_labels:
            segments = _draw_segments(rng, labels, windows, num_frames)
        return SyntheticVideo(
            index=index,
            id=video_id(config.seed, config.partition, index),
            labels=labels.astype(np.int64),
            windows=windows,
            rgb=np.ascontiguousarray(quantized[:, :_RGB_DIM]),
            audio=np.ascontiguousarray(quantized[:, _RGB_DIM:]),
            segments=segments,
            shot_starts=shot_starts,
        )

    def record(self, video: SyntheticVideo) -> bytes:
        """The serialized raw record of a video, as `generate` writes it."""
        labels = video.labels if self.config.writes_labels else []
        if self.config.kind == F.FRAME_LEVEL:
            return raw.frame_level_record(video.id, labels, video.rgb, video.audio, segments=video.segments)
        mean_rgb = dequantize(video.rgb).mean(axis=0, dtype=np.float64).astype(np.float32)
        mean_audio = dequantize(video.audio).mean(axis=0, dtype=np.float64).astype(np.float32)
        return raw.video_level_record(video.id, labels, mean_rgb, mean_audio)


def shard_path(out_dir: str, partition: str, shard: int) -> str:
    return os.path.join(out_dir, f"{partition}{shard:04d}.tfrecord")


def shard_bounds(videos: int, shards: int, shard: int) -> tuple[int, int]:
    """Video indices [start, end) of a shard; shard sizes differ by at most one."""
    return shard * videos // shards, (shard + 1) * videos // shards


def vocabulary_rows(seed: int, classes: int, counts) -> list[tuple]:
    """One row per class in the real vocabulary.csv's columns (verticals from the seed)."""
    model = class_model(seed, classes)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_VOCABULARY_STREAM,)))
    rows = []
    for index in range(classes):
        # As in the real file: every class has a first vertical, 15% a second, 1% a third.
        draw = rng.random()
        vertical_count = 1 + int(draw < 0.15) + int(draw < 0.01)
        verticals = [VERTICALS[i] for i in rng.choice(len(VERTICALS), size=vertical_count, replace=False)]
        verticals += [""] * (3 - vertical_count)
        fraction = model.window_fractions[index]
        visibility = (
            "visible throughout the video"
            if fraction >= 1.0
            else f"visible in a window of about {fraction:.0%} of the frames"
        )
        rows.append(
            (
                index,
                int(counts[index]),
                f"/m/synth{index}",
                f"Synthetic class {index}",
                "",
                *verticals,
                f"Synthetic class {index}, {visibility}.",
            )
        )
    return rows


def _write_atomically(path: str, write, **open_args):
    """Write through a temporary file so an interrupted run leaves no half-written file."""
    temporary = path + ".tmp"
    with open(temporary, **open_args) as fileobj:
        result = write(fileobj)
    os.replace(temporary, path)
    return result


def _write_vocabulary(path: str, rows: list[tuple]) -> None:
    def write(fileobj):
        writer = csv.writer(fileobj, lineterminator="\n")
        writer.writerow(VOCABULARY_HEADER)
        writer.writerows(rows)

    _write_atomically(path, write, mode="w", encoding="utf-8", newline="")


def _warn_about_stale_shards(out_dir: str, config: SynthConfig) -> None:
    """Shards of an earlier run with more shards would join a `train*` glob; say so, delete nothing."""
    stale = []
    for name in sorted(os.listdir(out_dir)):
        number = name.removeprefix(config.partition).removesuffix(".tfrecord")
        if name != number and len(number) == 4 and number.isdigit() and int(number) >= config.shards:
            stale.append(name)
    if stale:
        logger.warning(
            "%s also holds %d older shard(s) (%s ...) that are not part of this run",
            out_dir,
            len(stale),
            stale[0],
        )


def generate(out_dir: str, config: SynthConfig, progress: bool = True) -> SynthSummary:
    """Write the config's shards and vocabulary.csv into `out_dir`.

    TrainVideoCount of the vocabulary counts the videos of this run carrying each
    class (for partition test: the hidden labels).
    """
    # TensorFlow (which builds the records) takes seconds to import: do it before the
    # clock and the progress bar start, so neither counts it as generation time.
    importlib.import_module("tensorflow")
    started = time.perf_counter()
    os.makedirs(out_dir, exist_ok=True)
    synthesizer = VideoSynthesizer(config)
    class_counts = np.zeros(config.classes, dtype=np.int64)
    paths = []
    total_frames = 0
    total_bytes = 0
    with tqdm(total=config.videos, disable=not progress, file=sys.stderr, unit="video", desc="synth") as bar:
        for shard in range(config.shards):
            start, end = shard_bounds(config.videos, config.shards, shard)

            def write_shard(fileobj, start=start, end=end):
                nonlocal total_frames
                written = 0
                for index in range(start, end):
                    video = synthesizer.video(index)
                    class_counts[video.labels] += 1
                    total_frames += video.num_frames
                    written += write_records(fileobj, [synthesizer.record(video)])
                    bar.update(1)
                return written

            path = shard_path(out_dir, config.partition, shard)
            total_bytes += _write_atomically(path, write_shard, mode="wb")
            paths.append(path)
    _warn_about_stale_shards(out_dir, config)
    vocabulary_path = os.path.join(out_dir, VOCABULARY_FILE)
    _write_vocabulary(vocabulary_path, vocabulary_rows(config.seed, config.classes, class_counts))
    return SynthSummary(
        paths=tuple(paths),
        vocabulary_path=vocabulary_path,
        videos=config.videos,
        frames=total_frames,
        bytes=total_bytes,
        seconds=time.perf_counter() - started,
    )


def _int_at_least(minimum: int, what: str):
    """An argparse type: an integer >= minimum, with a message naming what was expected."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1, "positive")
_non_negative_int = _int_at_least(0, "non-negative")


def _frame_range(text: str) -> tuple[int, int]:
    low, sep, high = text.partition(":")
    if not sep or not low.strip().isdigit() or not high.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected MIN:MAX frames such as 30:300, got {text!r}")
    low, high = int(low), int(high)
    if not 1 <= low <= high:
        raise argparse.ArgumentTypeError(f"expected 1 <= MIN <= MAX, got {text!r}")
    return low, high


def build_parser() -> argparse.ArgumentParser:
    defaults = SynthConfig()
    parser = argparse.ArgumentParser(
        prog="fewframes synth",  # also `python -m pipelines.synth`
        description="Write deterministic synthetic YouTube-8M shards (and vocabulary.csv).",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory (created)")
    parser.add_argument("--kind", required=True, choices=F.KINDS, help="frame- or video-level records")
    parser.add_argument("--videos", required=True, type=_positive_int, metavar="N", help="number of videos")
    parser.add_argument("--shards", required=True, type=_positive_int, metavar="S", help="number of files")
    parser.add_argument("--seed", required=True, type=_non_negative_int, metavar="X", help="random seed")
    parser.add_argument(
        "--classes",
        type=_positive_int,
        default=defaults.classes,
        metavar="C",
        help=f"vocabulary size (default {defaults.classes})",
    )
    parser.add_argument(
        "--frames",
        type=_frame_range,
        default=(defaults.min_frames, defaults.max_frames),
        metavar="MIN:MAX",
        help=f"frames per video (default {defaults.min_frames}:{defaults.max_frames})",
    )
    parser.add_argument(
        "--min-window-frames",
        type=_positive_int,
        default=defaults.min_window_frames,
        metavar="N",
        help="shortest window, in frames, in which a windowed class is visible "
        f"(default {defaults.min_window_frames}; see the generative model)",
    )
    parser.add_argument(
        "--frame-model",
        choices=FRAME_MODELS,
        default=defaults.frame_model,
        help=f"how frames vary in time: {SHOT_FRAMES} (shots, drift and noise whose statistics match "
        f"real frames) or {IID_FRAMES} (the earlier generator: independent noise per frame, its bytes "
        f"unchanged) (default {defaults.frame_model}; see the generative model)",
    )
    parser.add_argument(
        "--noise-correlation",
        type=float,
        default=defaults.noise_correlation,
        metavar="R",
        help="correlation in [0, 1) of each frame's noise with the previous frame's "
        f"(default {defaults.noise_correlation}: independent; --frame-model {IID_FRAMES} only)",
    )
    parser.add_argument(
        "--segments", action="store_true", help="add 2019-style rated segments (frame level only)"
    )
    parser.add_argument(
        "--partition",
        choices=PARTITIONS,
        default=defaults.partition,
        help=f"file prefix; test writes no labels (default {defaults.partition})",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _human_bytes(count: int) -> str:
    if count < 1000:
        return f"{count} B"
    for unit in ("KB", "MB", "GB"):
        count /= 1000
        if count < 1000 or unit == "GB":
            break
    return f"{count:.1f} {unit}"


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = SynthConfig(
            kind=args.kind,
            videos=args.videos,
            shards=args.shards,
            seed=args.seed,
            classes=args.classes,
            min_frames=args.frames[0],
            max_frames=args.frames[1],
            segments=args.segments,
            partition=args.partition,
            min_window_frames=args.min_window_frames,
            frame_model=args.frame_model,
            noise_correlation=args.noise_correlation,
        )
    except ValueError as error:
        parser.error(str(error))
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    logger.info(
        "writing %d %s-level %s videos (%d:%d frames, %d classes, seed %d, %s frames%s) to %d shard(s) in %s",
        config.videos,
        config.kind,
        config.partition,
        config.min_frames,
        config.max_frames,
        config.classes,
        config.seed,
        config.frame_model,
        ", with segments" if config.segments else "",
        config.shards,
        args.out,
    )
    try:
        summary = generate(args.out, config, progress=not args.no_progress)
    except OSError as error:
        print(f"synth: error: cannot write to {args.out}: {error}", file=sys.stderr)
        return 1
    rate = summary.videos / summary.seconds if summary.seconds > 0 else math.inf
    shards = summary.paths[0] if len(summary.paths) == 1 else f"{summary.paths[0]} .. {summary.paths[-1]}"
    print(
        f"wrote {summary.videos:,} videos, {summary.frames:,} frames, {_human_bytes(summary.bytes)} "
        f"in {summary.seconds:.1f} s ({rate:.0f} videos/s)\n"
        f"  shards: {shards} ({len(summary.paths)} files)\n"
        f"  vocabulary: {summary.vocabulary_path}"
    )
    return 0


if __name__ == "__main__":
    from trainer.startup import quiet_startup

    sys.exit(main(quiet_startup(sys.argv[1:])))
