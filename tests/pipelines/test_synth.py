"""Synthetic YouTube-8M shards: format, determinism, segments, learnability and CLI."""

from __future__ import annotations

import csv
import dataclasses
import os
import string
import subprocess
import sys

import numpy as np
import pytest

from pipelines import synth
from schemas import features as F
from schemas.quantization import dequantize
from tests.conftest import REPO_ROOT

tf = pytest.importorskip("tensorflow")

REAL_VOCABULARY_HEADER = (
    "Index,TrainVideoCount,KnowledgeGraphId,Name,WikiUrl,Vertical1,Vertical2,Vertical3,WikiDescription"
)
BASE62 = set((string.digits + string.ascii_letters).encode())

# Small enough to parse eagerly in a second; 25 videos over 3 shards is uneven on purpose.
FRAME_CONFIG = synth.SynthConfig(
    kind=F.FRAME_LEVEL,
    videos=25,
    shards=3,
    seed=11,
    classes=10,
    min_frames=20,
    max_frames=80,
    segments=True,
)


def _parse_frame_level(paths) -> list[dict]:
    """Parse with plain TensorFlow ops only (no project reader), as a consumer would."""
    context_features = {
        F.ID: tf.io.FixedLenFeature([], tf.string),
        F.LABELS: tf.io.VarLenFeature(tf.int64),
        F.SEGMENT_START_TIMES: tf.io.VarLenFeature(tf.int64),
        F.SEGMENT_END_TIMES: tf.io.VarLenFeature(tf.int64),
        F.SEGMENT_LABELS: tf.io.VarLenFeature(tf.int64),
        F.SEGMENT_SCORES: tf.io.VarLenFeature(tf.float32),
    }
    sequence_features = {
        F.RGB: tf.io.FixedLenSequenceFeature([], tf.string),
        F.AUDIO: tf.io.FixedLenSequenceFeature([], tf.string),
    }
    records = []
    for serialized in tf.data.TFRecordDataset(list(paths)):
        context, sequence = tf.io.parse_single_sequence_example(
            serialized, context_features=context_features, sequence_features=sequence_features
        )
        record = {name: tf.sparse.to_dense(value).numpy() for name, value in context.items() if name != F.ID}
        record[F.ID] = context[F.ID].numpy()
        record[F.RGB] = [frame for frame in sequence[F.RGB].numpy()]
        record[F.AUDIO] = [frame for frame in sequence[F.AUDIO].numpy()]
        record["serialized"] = serialized.numpy()
        records.append(record)
    return records


def _records_per_file(paths) -> list[int]:
    return [sum(1 for _ in tf.data.TFRecordDataset(path)) for path in paths]


def _read_bytes(directory) -> dict[str, bytes]:
    return {name: (directory / name).read_bytes() for name in sorted(os.listdir(directory))}


def _auc(scores: np.ndarray, positives: np.ndarray) -> float:
    """Probability that a random positive outscores a random negative (ties are rare here)."""
    ranks = np.empty(len(scores))
    ranks[np.argsort(scores, kind="stable")] = np.arange(1, len(scores) + 1)
    n_pos = positives.sum()
    n_neg = len(scores) - n_pos
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@pytest.fixture(scope="module")
def frame_shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("frame")
    summary = synth.generate(str(out), FRAME_CONFIG, progress=False)
    return out, summary, _parse_frame_level(summary.paths)


def test_frame_level_shards_parse_with_plain_tensorflow(frame_shards):
    out, summary, records = frame_shards
    expected_paths = [str(out / f"train{shard:04d}.tfrecord") for shard in range(FRAME_CONFIG.shards)]
    assert list(summary.paths) == expected_paths
    per_file = _records_per_file(summary.paths)
    assert sum(per_file) == len(records) == summary.videos == FRAME_CONFIG.videos
    assert max(per_file) - min(per_file) <= 1, per_file
    assert summary.bytes == sum(os.path.getsize(path) for path in summary.paths)

    frame_counts = []
    for record in records:
        num_frames = len(record[F.RGB])
        assert len(record[F.AUDIO]) == num_frames
        assert {len(frame) for frame in record[F.RGB]} == {F.FEATURE_DIMS[F.RGB]}
        assert {len(frame) for frame in record[F.AUDIO]} == {F.FEATURE_DIMS[F.AUDIO]}
        labels = record[F.LABELS]
        assert 1 <= len(labels) <= 4 and len(set(labels)) == len(labels)
        assert labels.min() >= 0 and labels.max() < FRAME_CONFIG.classes
        assert len(record[F.ID]) == 6 and set(record[F.ID]) <= BASE62
        frame_counts.append(num_frames)
    assert FRAME_CONFIG.min_frames <= min(frame_counts) and max(frame_counts) <= FRAME_CONFIG.max_frames
    assert len(set(frame_counts)) > 3, "frame counts must vary between videos"
    assert summary.frames == sum(frame_counts)
    assert len({record[F.ID] for record in records}) == len(records)


def test_files_hold_exactly_the_regenerated_videos_in_index_order(frame_shards):
    _, _, records = frame_shards
    synthesizer = synth.VideoSynthesizer(FRAME_CONFIG)
    for index in (0, 9, 24):
        assert records[index]["serialized"] == synthesizer.record(synthesizer.video(index))


def test_frames_carry_background_and_noise_within_the_quantizer_range(frame_shards):
    _, _, records = frame_shards
    rgb = np.frombuffer(b"".join(records[0][F.RGB]), np.uint8)
    saturated = np.mean((rgb == 0) | (rgb == 255))
    assert saturated < 0.005, "values should mostly lie within [-2, 2]"
    assert 0.3 < dequantize(rgb).std() < 0.8


def test_vocabulary_has_the_real_header_and_one_row_per_class(frame_shards):
    out, summary, records = frame_shards
    assert summary.vocabulary_path == str(out / "vocabulary.csv")
    with open(summary.vocabulary_path, newline="", encoding="utf-8") as fileobj:
        lines = fileobj.read().splitlines()
    assert lines[0] == REAL_VOCABULARY_HEADER
    rows = list(csv.DictReader(lines))
    assert [int(row["Index"]) for row in rows] == list(range(FRAME_CONFIG.classes))
    assert all(row["Vertical1"] for row in rows)
    assert rows[3]["Name"] == "Synthetic class 3" and rows[3]["KnowledgeGraphId"] == "/m/synth3"
    label_counts = np.bincount(np.concatenate([r[F.LABELS] for r in records]), minlength=FRAME_CONFIG.classes)
    assert [int(row["TrainVideoCount"]) for row in rows] == label_counts.tolist()
    # Zipf-like: the first classes are the common ones.
    assert label_counts[:3].sum() > label_counts[-3:].sum()


def test_records_and_vocabulary_look_like_the_real_release(tmp_path, shared_data_dir):
    config = synth.SynthConfig(kind=F.VIDEO_LEVEL, videos=2, shards=1, classes=5)
    summary = synth.generate(str(tmp_path), config, progress=False)
    real_path = shared_data_dir / "yt8m-v2-video-sample" / "validate0000.tfrecord"
    real = next(iter(tf.data.TFRecordDataset(str(real_path)))).numpy()
    synthetic = next(iter(tf.data.TFRecordDataset(summary.paths[0]))).numpy()

    def layout(serialized):
        feature = tf.train.Example.FromString(serialized).features.feature
        return {name: value.WhichOneof("kind") for name, value in feature.items()}

    assert layout(synthetic) == layout(real)
    real_header = (shared_data_dir / "vocabulary.csv").read_text(encoding="utf-8").splitlines()[0]
    assert open(summary.vocabulary_path, encoding="utf-8").readline().rstrip("\n") == real_header


def test_some_classes_get_second_verticals():
    rows = synth.vocabulary_rows(seed=0, classes=60, counts=np.zeros(60, int))
    assert any(row[6] for row in rows) and not all(row[6] for row in rows)


def test_segments_are_rated_5_frame_slots_inside_and_outside_the_label_window(frame_shards):
    _, _, records = frame_shards
    synthesizer = synth.VideoSynthesizer(FRAME_CONFIG)
    scores_seen = set()
    for index, record in enumerate(records):
        starts, ends = record[F.SEGMENT_START_TIMES], record[F.SEGMENT_END_TIMES]
        segment_labels, scores = record[F.SEGMENT_LABELS], record[F.SEGMENT_SCORES]
        assert len(starts) >= 1, "every video with at least 5 frames has a rated segment"
        assert len(starts) == len(ends) == len(segment_labels) == len(scores)
        assert np.all(starts % F.SEGMENT_LENGTH_FRAMES == 0)
        assert np.all(ends == starts + F.SEGMENT_LENGTH_FRAMES)
        assert starts.min() >= 0 and ends.max() <= len(record[F.RGB])
        assert set(segment_labels) <= set(record[F.LABELS])
        assert set(scores.tolist()) <= {0.0, 1.0}
        scores_seen |= set(scores.tolist())
        video = synthesizer.video(index)
        window_of = {int(label): window for label, window in zip(video.labels, video.windows, strict=True)}
        for start, end, label, score in zip(starts, ends, segment_labels, scores, strict=True):
            window_start, window_end = window_of[int(label)]
            if score == 1.0:
                assert window_start <= start and end <= window_end, (index, label, start, window_of)
            else:
                assert end <= window_start or start >= window_end, (index, label, start, window_of)
    assert scores_seen == {0.0, 1.0}


def test_segments_do_not_change_the_frames():
    with_segments = synth.VideoSynthesizer(FRAME_CONFIG).video(3)
    without = synth.VideoSynthesizer(dataclasses.replace(FRAME_CONFIG, segments=False)).video(3)
    assert with_segments.segments and without.segments is None
    assert np.array_equal(with_segments.rgb, without.rgb)
    assert np.array_equal(with_segments.audio, without.audio)


def test_video_level_means_are_the_dequantized_frame_means(tmp_path, frame_shards):
    _, _, frame_records = frame_shards
    config = dataclasses.replace(FRAME_CONFIG, kind=F.VIDEO_LEVEL, segments=False)
    summary = synth.generate(str(tmp_path), config, progress=False)
    spec = {
        F.ID: tf.io.FixedLenFeature([], tf.string),
        F.LABELS: tf.io.VarLenFeature(tf.int64),
        F.MEAN_RGB: tf.io.FixedLenFeature([F.FEATURE_DIMS[F.RGB]], tf.float32),
        F.MEAN_AUDIO: tf.io.FixedLenFeature([F.FEATURE_DIMS[F.AUDIO]], tf.float32),
    }
    records = [tf.io.parse_single_example(s, spec) for s in tf.data.TFRecordDataset(list(summary.paths))]
    assert len(records) == config.videos
    for record, frame_record in zip(records, frame_records, strict=True):
        mean_rgb, mean_audio = record[F.MEAN_RGB].numpy(), record[F.MEAN_AUDIO].numpy()
        assert np.all(np.isfinite(mean_rgb)) and np.all(np.isfinite(mean_audio))
        # Same config and index: the same video as the frame-level shard.
        assert record[F.ID].numpy() == frame_record[F.ID]
        assert np.array_equal(tf.sparse.to_dense(record[F.LABELS]).numpy(), frame_record[F.LABELS])
        frames = np.frombuffer(b"".join(frame_record[F.RGB]), np.uint8).reshape(-1, F.FEATURE_DIMS[F.RGB])
        np.testing.assert_allclose(mean_rgb, dequantize(frames).mean(axis=0), atol=1e-6)


def test_same_config_gives_identical_bytes_and_another_seed_does_not(tmp_path):
    config = synth.SynthConfig(videos=7, shards=2, seed=3, classes=8, min_frames=10, max_frames=30)
    synth.generate(str(tmp_path / "a"), config, progress=False)
    synth.generate(str(tmp_path / "b"), config, progress=False)
    synth.generate(str(tmp_path / "c"), dataclasses.replace(config, seed=4), progress=False)
    first, again, other_seed = (_read_bytes(tmp_path / name) for name in "abc")
    assert list(first) == ["train0000.tfrecord", "train0001.tfrecord", "vocabulary.csv"]
    assert first == again
    assert other_seed["train0000.tfrecord"] != first["train0000.tfrecord"]
    assert other_seed["train0001.tfrecord"] != first["train0001.tfrecord"]


def test_videos_do_not_depend_on_the_shard_count(tmp_path):
    config = synth.SynthConfig(videos=7, shards=3, seed=3, classes=8, min_frames=10, max_frames=30)
    three = synth.generate(str(tmp_path / "three"), config, progress=False)
    one = synth.generate(str(tmp_path / "one"), dataclasses.replace(config, shards=1), progress=False)
    concatenated = b"".join(open(path, "rb").read() for path in three.paths)
    assert concatenated == open(one.paths[0], "rb").read()


def test_test_partition_writes_no_labels_and_no_segments(tmp_path):
    config = dataclasses.replace(FRAME_CONFIG, videos=4, shards=1, partition="test")
    summary = synth.generate(str(tmp_path), config, progress=False)
    assert [os.path.basename(path) for path in summary.paths] == ["test0000.tfrecord"]
    records = _parse_frame_level(summary.paths)
    assert len(records) == 4
    for record in records:
        assert len(record[F.RGB]) > 0
        for name in (F.LABELS, *F.SEGMENT_FIELDS):
            assert len(record[name]) == 0, name
    train_ids = {synth.video_id(config.seed, "train", index) for index in range(4)}
    assert not train_ids & {record[F.ID] for record in records}, "partitions are different videos"


def test_ids_are_unique_short_and_random_looking():
    ids = [synth.video_id(0, partition, index) for partition in synth.PARTITIONS for index in range(3000)]
    assert len(set(ids)) == len(ids)
    assert all(len(video_id) == 6 and set(video_id) <= BASE62 for video_id in ids)
    assert len({video_id[0] for video_id in ids[:100]}) > 30, "consecutive indices must not share prefixes"
    assert synth.video_id(1, "train", 0) != synth.video_id(0, "train", 0)


def test_short_window_classes_need_all_frames_and_always_visible_ones_show_in_the_mean():
    """The property the teacher-student setup relies on, checked with fixed projections.

    max_t <frame_t, prototype> - mean_t (the background's offset) detects a label
    visible in a few frames; every 10th frame often misses the window. The mean frame
    (what a video-level model sees) shows the always-visible classes.
    """
    config = synth.SynthConfig(videos=250, seed=5, classes=12, min_frames=150, max_frames=300)
    synthesizer = synth.VideoSynthesizer(config)
    model = synthesizer.model
    max_all, max_every_10th, mean_frame, positives = [], [], [], []
    for index in range(config.videos):
        video = synthesizer.video(index)
        projections = dequantize(video.rgb) @ model.rgb_prototypes.T  # [T, C]
        strided = projections[::10]
        max_all.append(projections.max(axis=0) - projections.mean(axis=0))
        max_every_10th.append(strided.max(axis=0) - strided.mean(axis=0))
        mean_frame.append(projections.mean(axis=0))
        positives.append(np.isin(np.arange(config.classes), video.labels))
    max_all, max_every_10th = np.array(max_all), np.array(max_every_10th)
    mean_frame, positives = np.array(mean_frame), np.array(positives)

    counts = positives.sum(axis=0)
    windowed = np.flatnonzero(~model.always_visible & (counts >= 40))
    always = np.flatnonzero(model.always_visible & (counts >= 30))
    assert len(windowed) and len(always), "the seed must give both kinds of common classes"
    short = windowed[np.argmin(model.window_fractions[windowed])]
    assert model.window_fractions[short] < 0.1

    auc_all = _auc(max_all[:, short], positives[:, short])
    auc_every_10th = _auc(max_every_10th[:, short], positives[:, short])
    assert auc_all > 0.95
    assert auc_every_10th < auc_all - 0.08, (auc_all, auc_every_10th)
    assert _auc(mean_frame[:, short], positives[:, short]) < 0.8, "a short window barely moves the mean"
    for visible in always:
        assert _auc(mean_frame[:, visible], positives[:, visible]) > 0.95


def test_min_window_frames_lengthens_short_windows_only():
    base = synth.SynthConfig(videos=120, seed=2, classes=12, min_frames=30, max_frames=300)
    longer = dataclasses.replace(base, min_window_frames=20)
    short_seen = False
    for index in range(base.videos):
        default_video = synth.VideoSynthesizer(base).video(index)
        video = synth.VideoSynthesizer(longer).video(index)
        assert np.array_equal(video.labels, default_video.labels)
        lengths = video.windows[:, 1] - video.windows[:, 0]
        default_lengths = default_video.windows[:, 1] - default_video.windows[:, 0]
        num_frames = video.num_frames
        assert (lengths >= min(20, num_frames)).all(), (index, lengths)
        # Only the windows the minimum reaches change length.
        assert np.array_equal(lengths, np.maximum(default_lengths, min(20, num_frames)))
        # The rule other code (benchmarks/ceiling.py) reads the lengths from.
        fractions = synth.class_model(base.seed, base.classes).window_fractions[video.labels]
        assert np.array_equal(lengths, synth.window_lengths(fractions, num_frames, 20))
        assert np.array_equal(
            default_lengths, synth.window_lengths(fractions, num_frames, base.min_window_frames)
        )
        short_seen |= bool((default_lengths < 20).any())
        # Every window then holds at least two frames of every_n:10 (videos have >= 30).
        kept = np.arange(0, num_frames, 10)
        for start, end in video.windows:
            assert ((kept >= start) & (kept < end)).sum() >= 2
    assert short_seen, "the seed must have windows the minimum lengthens"


def test_noise_correlation_makes_neighbouring_frames_alike_without_changing_the_labels():
    # A parameter of the earlier, i.i.d. frame model (the shot model has its own time structure).
    base = synth.SynthConfig(videos=6, seed=4, classes=12, min_frames=300, max_frames=300, frame_model="iid")
    correlated = dataclasses.replace(base, noise_correlation=0.9)
    lag1, lag10, stds = [], [], []
    for index in range(base.videos):
        plain, video = (
            synth.VideoSynthesizer(base).video(index),
            synth.VideoSynthesizer(correlated).video(index),
        )
        assert np.array_equal(video.labels, plain.labels) and np.array_equal(video.windows, plain.windows)
        # The mean over frames takes out the background and the always-visible labels'
        # signal; outside the windowed labels' windows only the noise is left.
        frames = dequantize(video.rgb).astype(np.float64)
        quiet = np.ones(len(frames), bool)
        for start, end in video.windows:
            if end - start < len(frames):
                quiet[max(start - 1, 0) : end + 1] = False
        noise = frames - frames.mean(axis=0)
        for lag, out in ((1, lag1), (10, lag10)):
            pairs = quiet[lag:] & quiet[:-lag]
            a, b = noise[lag:][pairs], noise[:-lag][pairs]
            out.append((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))
        stds.append(noise[quiet].std())
    # AR(1) with r = 0.9: r at lag 1, r^10 = 0.35 at lag 10; the std stays the noise's.
    assert 0.85 < np.median(lag1) < 0.93, lag1
    assert 0.2 < np.median(lag10) < 0.5, lag10
    assert abs(np.median(stds) - synth.NOISE_STD) < 0.05, stds
    with pytest.raises(ValueError, match="noise_correlation"):
        dataclasses.replace(base, noise_correlation=1.0)
    with pytest.raises(ValueError, match="noise_correlation is a parameter of frame_model 'iid'"):
        dataclasses.replace(correlated, frame_model="shots")


def test_frame_counts_follow_a_distribution_with_many_capped_videos():
    synthesizer = synth.VideoSynthesizer(synth.SynthConfig(videos=400, classes=5))
    counts = np.array([synthesizer.video(index).num_frames for index in range(400)])
    assert 0.3 < np.mean(counts == 300) < 0.6
    assert counts.min() >= 30 and len(np.unique(counts)) > 100
    assert 200 < counts.mean() < 250


def test_cli_writes_the_shards_and_returns_0(tmp_path, capsys):
    out = tmp_path / "raw"
    argv = ["--out", str(out), "--kind", "frame", "--videos", "5", "--shards", "2", "--seed", "7"]
    argv += ["--classes", "6", "--frames", "10:40", "--segments", "--partition", "validate", "--no-progress"]
    assert synth.main(argv) == 0
    assert sorted(os.listdir(out)) == ["validate0000.tfrecord", "validate0001.tfrecord", "vocabulary.csv"]
    printed = capsys.readouterr().out
    assert "5 videos" in printed and "validate0000.tfrecord" in printed
    records = _parse_frame_level(
        sorted(str(out / name) for name in os.listdir(out) if name.endswith("tfrecord"))
    )
    assert len(records) == 5
    assert all(10 <= len(record[F.RGB]) <= 40 for record in records)
    assert all(record[F.LABELS].max() < 6 for record in records)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--frames", "300:30"], "MIN <= MAX"),
        (["--frames", "ten:20"], "MIN:MAX"),
        (["--kind", "foo"], "invalid choice"),
        (["--kind", "video", "--segments"], "segments"),
        (["--videos", "0"], "positive integer"),
        (["--videos", "2", "--shards", "3"], "shards"),
        (["--partition", "dev"], "invalid choice"),
        (["--seed", "-1"], "non-negative"),
        (["--min-window-frames", "4"], "min_window_frames must be at least"),
        (["--frame-model", "ar1"], "invalid choice"),
        (["--noise-correlation", "0.5"], "noise_correlation is a parameter of frame_model 'iid'"),
    ],
)
def test_cli_rejects_bad_arguments_with_a_usage_error(tmp_path, capsys, extra, message):
    argv = ["--out", str(tmp_path), "--kind", "frame", "--videos", "4", "--shards", "1", "--seed", "0"]
    with pytest.raises(SystemExit) as raised:
        synth.main(argv + extra)
    assert raised.value.code == 2
    error = capsys.readouterr().err
    assert "error:" in error and message in error and "Traceback" not in error
    assert not os.listdir(tmp_path)


def test_config_rejects_inconsistent_values():
    with pytest.raises(ValueError, match="segments"):
        synth.SynthConfig(kind=F.VIDEO_LEVEL, segments=True)
    with pytest.raises(ValueError, match="frames"):
        synth.SynthConfig(min_frames=50, max_frames=40)


def test_module_runs_as_a_script():
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.synth", "--help"],
        capture_output=True,
        text=True,
        cwd=str(REPO_ROOT),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "--frames MIN:MAX" in result.stdout and "--segments" in result.stdout


def test_shards_left_by_an_earlier_larger_run_are_reported_not_deleted(tmp_path, caplog):
    config = synth.SynthConfig(videos=4, shards=3, classes=4, min_frames=5, max_frames=10)
    synth.generate(str(tmp_path), config, progress=False)
    with caplog.at_level("WARNING", logger="pipelines.synth"):
        synth.generate(str(tmp_path), dataclasses.replace(config, shards=1), progress=False)
    assert "2 older shard(s) (train0001.tfrecord" in caplog.text
    assert (tmp_path / "train0002.tfrecord").exists()


# The real sample's statistics (../shared/data/README.md, measured on 143 real videos with
# pipelines.synthetic.realism's definition) and the tolerance: +-0.05 on each lag's mean
# cosine, a factor 1.3 on the within/between spread ratio.
REAL_LAG_COSINES = {
    F.RGB: {1: 0.47, 2: 0.35, 5: 0.19, 10: 0.11, 20: 0.04},
    F.AUDIO: {1: 0.25, 2: 0.20, 5: 0.13, 10: 0.08, 20: 0.03},
}
REAL_SPREAD_RATIOS = {F.RGB: 0.751 / 0.232, F.AUDIO: 0.630 / 0.352}


def _realism(config: synth.SynthConfig) -> dict:
    from pipelines.synthetic.realism import realism_statistics

    synthesizer = synth.VideoSynthesizer(config)
    videos = (synthesizer.video(index) for index in range(config.videos))
    return realism_statistics({F.RGB: video.rgb, F.AUDIO: video.audio} for video in videos)


def _matches_real_video(statistics: dict) -> bool:
    return all(
        abs(statistics[feature]["lags"][lag] - real) <= 0.05
        for feature, lags in REAL_LAG_COSINES.items()
        for lag, real in lags.items()
    ) and all(
        1 / 1.3 <= statistics[feature]["spread_ratio"] / real <= 1.3
        for feature, real in REAL_SPREAD_RATIOS.items()
    )


def test_default_frames_change_over_time_like_real_video_and_iid_frames_do_not():
    config = synth.SynthConfig(videos=40, seed=11, classes=20)
    shots = _realism(config)
    assert _matches_real_video(shots), shots
    iid = _realism(dataclasses.replace(config, frame_model="iid"))
    assert not _matches_real_video(iid) and abs(iid[F.RGB]["lags"][2]) < 0.05, iid


def test_label_windows_start_at_cuts_and_frames_jump_there():
    config = synth.SynthConfig(videos=30, seed=6, classes=12, min_frames=100, max_frames=300)
    synthesizer = synth.VideoSynthesizer(config)
    inside, across = [], []
    for index in range(config.videos):
        video = synthesizer.video(index)
        cuts = video.shot_starts
        assert cuts[0] == 0 and (np.diff(cuts) > 0).all() and cuts[-1] < video.num_frames
        assert np.isin(video.windows[:, 0], cuts).all(), (video.windows, cuts)
        frames = dequantize(video.rgb).astype(np.float64)
        steps = np.linalg.norm(np.diff(frames, axis=0), axis=1)  # step t: frame t -> t + 1
        at_cut = np.isin(np.arange(1, video.num_frames), cuts)
        inside.extend(steps[~at_cut])
        across.extend(steps[at_cut])
    # A cut changes the shot's content: the step across it is longer than inside a shot.
    assert np.median(across) > 1.1 * np.median(inside), (np.median(across), np.median(inside))


def test_iid_frame_model_writes_the_earlier_generators_bytes(tmp_path):
    """Digests of the shards and vocabulary written by the generator before the shot
    model (commit 1d6c89e, whose only frame model this was), for the same configs."""
    import hashlib

    expected = {
        0.0: "2e4b9c3a0cabff376d0c7e86bb70b24eca9c0e111370655974d500268ac51403",
        0.8: "1307bd44651a75bd46f4f8af29e150f38e02451d69a3daea0f295d5dc5ca4435",
    }
    for correlation, digest in expected.items():
        config = synth.SynthConfig(
            videos=6, shards=2, seed=7, classes=9, min_frames=20, max_frames=80, segments=True,
            frame_model="iid", noise_correlation=correlation,
        )  # fmt: skip
        summary = synth.generate(str(tmp_path / str(correlation)), config, progress=False)
        sha = hashlib.sha256()
        for path in (*summary.paths, summary.vocabulary_path):
            sha.update(open(path, "rb").read())
        assert sha.hexdigest() == digest, correlation
