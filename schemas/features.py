"""Names, shapes and limits of YouTube-8M features.

Every module refers to features through these constants, so a name is spelt once.
"""

# Context / video-level keys of the raw records.
from __future__ import annotations


def feature_dim(features) -> int:
    return sum(FEATURE_DIMS[f] for f in features)


ID = "id"
LEGACY_ID = "video_id"  # the 2017 release's name for `id`
LABELS = "labels"

# Frame-level feature lists (one quantized byte string per frame).
RGB = "rgb"
AUDIO = "audio"
FRAME_FEATURES = (RGB, AUDIO)
FEATURE_DIMS = {RGB: 1024, AUDIO: 128}

# Video-level features (float32 means over frames).
MEAN_RGB = "mean_rgb"
MEAN_AUDIO = "mean_audio"
MEAN_FEATURE_OF = {RGB: MEAN_RGB, AUDIO: MEAN_AUDIO}

# 2019 segment-rated fields (context of a frame-level record).
SEGMENT_START_TIMES = "segment_start_times"
SEGMENT_END_TIMES = "segment_end_times"
SEGMENT_LABELS = "segment_labels"
SEGMENT_SCORES = "segment_scores"
SEGMENT_FIELDS = (SEGMENT_START_TIMES, SEGMENT_END_TIMES, SEGMENT_LABELS, SEGMENT_SCORES)
SEGMENT_LENGTH_FRAMES = 5

# Preprocessed-only columns.
NUM_FRAMES = "num_frames"
FRAME_INDEX = "frame_index"
FULL_VIEW_PREFIX = "full_"  # teacher view columns: full_rgb, full_audio

# Limits of the dataset.
MAX_FRAMES = 300
NUM_CLASSES_V2 = 3862  # 2018 (v2) and 2019 (v3) vocabularies
NUM_CLASSES_2017 = 4716

FRAME_LEVEL = "frame"
VIDEO_LEVEL = "video"
KINDS = (FRAME_LEVEL, VIDEO_LEVEL)


def full_view_column(feature: str) -> str:
    """Name of the teacher (all-frames) column of a frame feature."""
    return FULL_VIEW_PREFIX + feature


# Teacher-targets columns (`schemas.targets`): a frozen teacher's outputs per video.
TEACHER_PREDICTIONS = "teacher_predictions"
TEACHER_TOP_CLASSES = "teacher_top_classes"
TEACHER_TOP_SCORES = "teacher_top_scores"
TEACHER_REST_SCORE = "teacher_rest_score"
TEACHER_REPRESENTATION = "teacher_representation"
