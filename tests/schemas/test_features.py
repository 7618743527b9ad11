"""Names, widths and limits of YouTube-8M features, spelt once."""

import pytest

from schemas import features as F


@pytest.mark.parametrize(
    "features,width", [((F.RGB,), 1024), ((F.AUDIO,), 128), ((F.RGB, F.AUDIO), 1152), ((), 0)]
)
def test_feature_dim_is_the_summed_width_of_the_chosen_features(features, width):
    assert F.feature_dim(features) == width


def test_every_frame_feature_has_a_width_and_a_video_level_mean_named_as_in_the_release():
    assert F.FRAME_FEATURES == ("rgb", "audio")  # the order frames are concatenated in
    assert set(F.FEATURE_DIMS) == set(F.MEAN_FEATURE_OF) == set(F.FRAME_FEATURES)
    assert F.MEAN_FEATURE_OF == {"rgb": "mean_rgb", "audio": "mean_audio"}


def test_teacher_view_columns_are_the_frame_features_prefixed_full():
    assert [F.full_view_column(f) for f in F.FRAME_FEATURES] == ["full_rgb", "full_audio"]
    assert F.full_view_column(F.RGB).startswith(F.FULL_VIEW_PREFIX)


def test_the_release_limits_and_the_2019_segment_fields():
    assert (F.MAX_FRAMES, F.NUM_CLASSES_V2, F.NUM_CLASSES_2017, F.SEGMENT_LENGTH_FRAMES) == (
        300,
        3862,
        4716,
        5,
    )
    assert F.SEGMENT_FIELDS == (
        "segment_start_times",
        "segment_end_times",
        "segment_labels",
        "segment_scores",
    )
    assert (F.ID, F.LEGACY_ID, F.LABELS) == ("id", "video_id", "labels")
    assert F.KINDS == (F.FRAME_LEVEL, F.VIDEO_LEVEL) == ("frame", "video")
