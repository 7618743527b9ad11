"""How much frame-level shards look like real video over time (real and synthetic alike).

The statistics are those of `../shared/data/README.md`, measured on what the records
hold (8-bit codes, dequantized as every reader does), per feature (rgb, audio):

* `lags`: for each lag, the mean over videos of the mean over t of the cosine between
  frame t and frame t + lag, after l2-normalising every frame and removing its video's
  mean (of the normalised frames). Videos shorter than lag + 1 frames do not count.
* `within` / `between`: the mean squared distance of a normalised frame to its video's
  mean (over all frames), and of the video means to their overall mean (over videos);
  `spread_ratio` = within / between.

`pipelines.synth` is tuned so that its default frames match the real sample on these;
`benchmarks/realism.py` prints them for any shards.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from pipelines.records import wire
from pipelines.records.tfrecord_io import Record, iter_frames
from schemas import features as F
from schemas.quantization import dequantize

LAGS = (1, 2, 5, 10, 20)


def read_frames(paths: Iterable[str]) -> Iterator[dict[str, np.ndarray]]:
    """Each frame-level record's uint8 frames {rgb: [T, 1024], audio: [T, 128]}, in file order.

    Canonical records are sliced by `pipelines.records.wire` (the preprocessing's fast reader);
    any other record is parsed by TensorFlow.
    """
    for path in paths:
        with open(path, "rb") as fileobj:
            for item in iter_frames(fileobj):
                if not isinstance(item, Record):
                    raise ValueError(f"{path}: {item.reason}")
                yield _frames_of(item.data)


def _frames_of(data: bytes) -> dict[str, np.ndarray]:
    canonical = wire.split_frame_record(data)
    if canonical is not None:
        return canonical.frames
    import tensorflow as tf

    spec = {feature: tf.io.FixedLenSequenceFeature([], tf.string) for feature in F.FRAME_FEATURES}
    _, lists = tf.io.parse_single_sequence_example(data, sequence_features=spec)
    return {
        feature: np.frombuffer(b"".join(lists[feature].numpy()), np.uint8).reshape(-1, dim)
        for feature, dim in F.FEATURE_DIMS.items()
    }


def realism_statistics(frames_per_video: Iterable[dict[str, np.ndarray]], lags=LAGS) -> dict:
    """{feature: {"lags": {lag: mean cosine}, "within", "between", "spread_ratio", "videos"}}.

    `frames_per_video` yields {feature: [T, dim]} per video: uint8 codes (dequantized
    here) or floats.
    """
    cosines = {feature: {lag: [] for lag in lags} for feature in F.FRAME_FEATURES}
    within = {feature: [] for feature in F.FRAME_FEATURES}  # per video: sum of squared distances, T
    means = {feature: [] for feature in F.FRAME_FEATURES}
    for video in frames_per_video:
        for feature in F.FRAME_FEATURES:
            frames = video[feature]
            frames = dequantize(frames) if frames.dtype == np.uint8 else np.asarray(frames, np.float32)
            frames = frames.astype(np.float64)
            norms = np.linalg.norm(frames, axis=1, keepdims=True)
            frames = frames / np.maximum(norms, 1e-12)
            mean = frames.mean(axis=0)
            centred = frames - mean
            means[feature].append(mean)
            within[feature].append((float((centred**2).sum()), len(frames)))
            unit = centred / np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-12)
            for lag in lags:
                if len(unit) > lag:
                    cosines[feature][lag].append(float(np.einsum("ij,ij->i", unit[:-lag], unit[lag:]).mean()))
    result = {}
    for feature in F.FRAME_FEATURES:
        if not means[feature]:
            raise ValueError("no videos to measure")
        video_means = np.stack(means[feature])
        between = float(((video_means - video_means.mean(axis=0)) ** 2).sum(axis=1).mean())
        total, count = np.sum(within[feature], axis=0)
        within_mean = float(total / count)
        result[feature] = {
            "lags": {lag: float(np.mean(v)) if v else float("nan") for lag, v in cosines[feature].items()},
            "within": within_mean,
            "between": between,
            "spread_ratio": within_mean / between if between > 0 else float("inf"),
            "videos": len(video_means),
        }
    return result
