"""How much frames look like real video over time: the statistics on frames whose values are known."""

import numpy as np
import pytest

from pipelines.records import tfrecord_io
from pipelines.synthetic import realism
from schemas import features as F
from schemas import raw
from schemas.quantization import dequantize
from tests.conftest import random_frames


def _basis(dim: int, index: int, scale: float = 1.0) -> np.ndarray:
    vector = np.zeros(dim, np.float32)
    vector[index] = scale
    return vector


def _shots(dim: int, shots: int, length: int) -> np.ndarray:
    """`shots` shots of `length` identical frames, shot i along axis i (scaled: norms must not count)."""
    return np.concatenate([np.tile(_basis(dim, i, 3.0 + i), (length, 1)) for i in range(shots)])


def test_identical_frames_within_shots_give_the_lag_cosines_of_their_cuts():
    # rgb: 2 shots of 10 frames; after removing the mean, the shots point opposite ways, so a
    # lag-L pair is +1 within a shot and -1 across the cut: (20 - 3L) / (20 - L) for L < 10.
    # audio: 4 shots of 5 frames; centred shot vectors meet at cosine -1/3:
    # (20 - 4L - 3L / 3) / (20 - L) for L < 5 (3 cuts), and -1/3 from L = 5 on.
    video = {F.RGB: _shots(1024, 2, 10), F.AUDIO: _shots(128, 4, 5)}
    statistics = realism.realism_statistics([video])
    rgb, audio = statistics[F.RGB], statistics[F.AUDIO]
    assert rgb["lags"][1] == pytest.approx(17 / 19) and rgb["lags"][2] == pytest.approx(14 / 18)
    assert rgb["lags"][5] == pytest.approx(5 / 15) and rgb["lags"][10] == pytest.approx(-1.0)
    assert audio["lags"][1] == pytest.approx(15 / 19) and audio["lags"][2] == pytest.approx(10 / 18)
    assert audio["lags"][5] == pytest.approx(-1 / 3) and audio["lags"][10] == pytest.approx(-1 / 3)
    assert np.isnan(rgb["lags"][20]) and np.isnan(audio["lags"][20])  # 20 frames reach no lag-20 pair
    # Every normalised frame is 1/2 (rgb) or 3/4 (audio) squared away from its video's mean.
    assert rgb["within"] == pytest.approx(0.5) and audio["within"] == pytest.approx(0.75)
    assert rgb["between"] == 0.0 and rgb["spread_ratio"] == float("inf") and rgb["videos"] == 1


def test_a_video_shorter_than_a_lag_counts_only_at_the_lags_it_reaches():
    long = {F.RGB: _shots(1024, 2, 10), F.AUDIO: _shots(128, 2, 10)}
    # Frames a, a, b: centred d, d, -2d (unit: d, d, -d): lag 1 averages +1 and -1, lag 2 is -1.
    short = {
        F.RGB: np.stack([_basis(1024, 0), _basis(1024, 0), _basis(1024, 1)]),
        F.AUDIO: np.stack([_basis(128, 0), _basis(128, 0), _basis(128, 1)]),
    }
    statistics = realism.realism_statistics([long, short], lags=(1, 2, 5))
    for feature in F.FRAME_FEATURES:
        lags = statistics[feature]["lags"]
        assert lags[1] == pytest.approx((17 / 19 + 0.0) / 2) and lags[2] == pytest.approx((14 / 18 - 1) / 2)
        assert lags[5] == pytest.approx(5 / 15)  # the long video alone
        # within pools the squared distances of all 23 frames: 20 x 1/2, then 2/9, 2/9, 8/9 (a, a, b).
        assert statistics[feature]["within"] == pytest.approx((10 + 12 / 9) / 23)
        assert statistics[feature]["videos"] == 2


def test_still_videos_spread_only_between_videos():
    videos = [
        {F.RGB: np.tile(_basis(1024, i, 2.0), (6, 1)), F.AUDIO: np.tile(_basis(128, i), (6, 1))}
        for i in (0, 1)
    ]
    statistics = realism.realism_statistics(videos, lags=(1,))
    for feature in F.FRAME_FEATURES:
        # Means e0 and e1: each is |e_i - (e0 + e1) / 2|^2 = 1/2 from the overall mean.
        assert statistics[feature]["between"] == pytest.approx(0.5) and statistics[feature]["within"] == 0.0
        assert statistics[feature]["spread_ratio"] == 0.0
        assert statistics[feature]["lags"][1] == 0.0  # nothing moves: no direction to agree on


def test_uint8_codes_are_measured_as_the_frames_they_dequantize_to():
    rng = np.random.default_rng(3)
    codes = [dict(zip(F.FRAME_FEATURES, random_frames(rng, n), strict=True)) for n in (12, 25)]
    for video in codes:  # a slow drift, so that lags differ from 0
        for feature in F.FRAME_FEATURES:
            video[feature] = np.cumsum(video[feature] // 32, axis=0, dtype=np.uint8)
    measured = realism.realism_statistics(codes)
    as_floats = realism.realism_statistics({f: dequantize(v[f]) for f in F.FRAME_FEATURES} for v in codes)
    raw_codes = realism.realism_statistics(
        {f: v[f].astype(np.float32) for f in F.FRAME_FEATURES} for v in codes
    )
    assert measured == as_floats
    assert measured[F.RGB]["within"] != pytest.approx(raw_codes[F.RGB]["within"], rel=1e-3)


def test_no_videos_is_an_error_not_a_nan():
    with pytest.raises(ValueError, match="no videos to measure"):
        realism.realism_statistics([])


def test_read_frames_gives_each_records_codes_whatever_its_field_order(tmp_path):
    rng = np.random.default_rng(5)
    videos = [random_frames(rng, n) for n in (4, 7)]
    records = [raw.frame_level_record(f"v{i}".encode(), [i], *frames) for i, frames in enumerate(videos)]
    records[1] += b"\x18\x01"  # an unknown field 3 (varint 1): not canonical, so TensorFlow parses it
    with open(tmp_path / "train0000.tfrecord", "wb") as f:
        tfrecord_io.write_records(f, records)
    read = list(realism.read_frames([str(tmp_path / "train0000.tfrecord")]))
    assert len(read) == 2
    for got, (rgb, audio) in zip(read, videos, strict=True):
        assert got[F.RGB].dtype == np.uint8 and np.array_equal(got[F.RGB], rgb)
        assert np.array_equal(got[F.AUDIO], audio)
    (tmp_path / "damaged.tfrecord").write_bytes(tfrecord_io.encode_record(records[0])[:-9])
    with pytest.raises(ValueError, match="damaged.tfrecord: truncated record"):
        list(realism.read_frames([str(tmp_path / "damaged.tfrecord")]))


# ----- the real sample ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sample(shared_data_dir):
    return shared_data_dir / "yt8m-v2-frame-sample"


def test_realism_statistics_of_the_real_sample_agree_with_the_data_readme(sample):
    """The README's figures come from the 143 videos of the sample's source; these 40
    are a subset (measured: at most 0.034 from them, rgb lag 2), so the definition of
    `realism_statistics` is the README's if it lands within 0.05."""
    readme = {
        F.RGB: ({1: 0.47, 2: 0.35, 5: 0.19, 10: 0.11, 20: 0.04}, 0.751 / 0.232),
        F.AUDIO: ({1: 0.25, 2: 0.20, 5: 0.13, 10: 0.08, 20: 0.03}, 0.630 / 0.352),
    }
    shards = sorted(str(path) for path in sample.glob("*.tfrecord"))
    statistics = realism.realism_statistics(realism.read_frames(shards))
    for feature, (lags, ratio) in readme.items():
        assert statistics[feature]["videos"] == 40
        for lag, value in lags.items():
            assert abs(statistics[feature]["lags"][lag] - value) < 0.05, (feature, lag, statistics[feature])
        assert 1 / 1.3 < statistics[feature]["spread_ratio"] / ratio < 1.3, (feature, statistics[feature])
