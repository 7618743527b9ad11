"""The raw YouTube-8M record formats (input of the preprocessing job).

Frame level: `tf.train.SequenceExample` with context `id` (bytes) and `labels`
(int64 list) and feature lists `rgb` / `audio` holding one quantized byte string per
frame (1024 and 128 bytes). Video level: `tf.train.Example` with `id`, `labels`,
`mean_rgb` (float[1024]) and `mean_audio` (float[128]). The 2017 release names the id
`video_id`; both are read. The 2019 segment set adds `segment_start_times`,
`segment_end_times`, `segment_labels` (int64) and `segment_scores` (float) to the
context of a frame-level record.
"""

from __future__ import annotations

import numpy as np

from schemas import features as F


def _tf():
    import tensorflow as tf

    return tf


def context_parse_spec(kind: str) -> dict:
    """Context (or Example) features of a raw record, as a TF parse spec.

    Everything is variable length so that one bad record is found by validation
    rather than failing a whole parsed batch.
    """
    tf = _tf()
    spec = {
        F.ID: tf.io.FixedLenFeature([], tf.string, default_value=""),
        F.LEGACY_ID: tf.io.FixedLenFeature([], tf.string, default_value=""),
        F.LABELS: tf.io.VarLenFeature(tf.int64),
    }
    if kind == F.FRAME_LEVEL:
        for name in (F.SEGMENT_START_TIMES, F.SEGMENT_END_TIMES, F.SEGMENT_LABELS):
            spec[name] = tf.io.VarLenFeature(tf.int64)
        spec[F.SEGMENT_SCORES] = tf.io.VarLenFeature(tf.float32)
    else:
        for feature in F.FRAME_FEATURES:
            spec[F.MEAN_FEATURE_OF[feature]] = tf.io.VarLenFeature(tf.float32)
    return spec


def sequence_parse_spec() -> dict:
    tf = _tf()
    return {
        feature: tf.io.FixedLenSequenceFeature([], tf.string, allow_missing=True)
        for feature in F.FRAME_FEATURES
    }


def detect_kind(serialized: bytes) -> str:
    """Whether a serialized record is frame level or video level.

    An `Example` parses as a `SequenceExample` whose context is its features (same
    field number), so one parse answers both questions.
    """
    tf = _tf()
    try:
        record = tf.train.SequenceExample.FromString(serialized)
    except Exception as error:  # protobuf's DecodeError is not importable portably
        raise ValueError(f"record is not a tf.train.SequenceExample or Example: {error}") from None
    if F.RGB in record.feature_lists.feature_list:
        return F.FRAME_LEVEL
    if F.MEAN_RGB in record.context.feature:
        return F.VIDEO_LEVEL
    raise ValueError(
        f"record has neither a '{F.RGB}' feature list (frame level) nor a '{F.MEAN_RGB}' "
        "feature (video level)"
    )


def has_segments(serialized: bytes) -> bool:
    """Whether a frame-level record's context carries rated 2019 segments (False for a
    record protobuf cannot read)."""
    try:
        record = _tf().train.SequenceExample.FromString(serialized)
    except Exception:  # protobuf's DecodeError is not importable portably
        return False
    return F.SEGMENT_START_TIMES in record.context.feature


def id_and_labels(serialized: bytes) -> tuple[str, list[int]] | None:
    """A record's id (or legacy id) and its video labels, of either kind (an `Example`'s
    features parse as a `SequenceExample` context); None for a record protobuf cannot read."""
    try:
        context = _tf().train.SequenceExample.FromString(serialized).context.feature
    except Exception:  # protobuf's DecodeError is not importable portably
        return None
    ids = [context[n].bytes_list.value for n in (F.ID, F.LEGACY_ID) if n in context]
    video_id = ids[0][0].decode("utf-8", "replace") if ids and ids[0] else ""
    labels = list(context[F.LABELS].int64_list.value) if F.LABELS in context else []
    return video_id, labels


def frame_level_record(
    video_id: bytes,
    labels,
    rgb: np.ndarray,
    audio: np.ndarray,
    segments: dict | None = None,
) -> bytes:
    """Serialize a frame-level SequenceExample exactly as the released shards are."""
    tf = _tf()
    record = tf.train.SequenceExample()
    context = record.context.feature
    context[F.ID].bytes_list.value.append(video_id)
    context[F.LABELS].int64_list.value.extend(int(v) for v in labels)
    if segments:
        for name in (F.SEGMENT_START_TIMES, F.SEGMENT_END_TIMES, F.SEGMENT_LABELS):
            context[name].int64_list.value.extend(int(v) for v in segments[name])
        context[F.SEGMENT_SCORES].float_list.value.extend(np.asarray(segments[F.SEGMENT_SCORES], np.float32))
    for name, frames in ((F.RGB, rgb), (F.AUDIO, audio)):
        # Appending in place avoids building a Feature message per frame (3x faster).
        feature_list = record.feature_lists.feature_list[name].feature
        for frame in np.asarray(frames, np.uint8):
            feature_list.add().bytes_list.value.append(frame.tobytes())
    return record.SerializeToString(deterministic=True)


def video_level_record(video_id: bytes, labels, mean_rgb, mean_audio) -> bytes:
    """Serialize a video-level Example exactly as the released shards are."""
    tf = _tf()
    record = tf.train.Example()
    feature = record.features.feature
    feature[F.ID].bytes_list.value.append(video_id)
    feature[F.LABELS].int64_list.value.extend(int(v) for v in labels)
    feature[F.MEAN_RGB].float_list.value.extend(np.asarray(mean_rgb, np.float32))
    feature[F.MEAN_AUDIO].float_list.value.extend(np.asarray(mean_audio, np.float32))
    return record.SerializeToString(deterministic=True)
