"""benchmarks/ceiling.py: the known-prototype scorer and the unseen-label count that the
quality benchmark sets beside the trained students."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from benchmarks import ceiling
from pipelines import synth
from schemas.views import View

SMALL = synth.SynthConfig(videos=160, seed=3, classes=8, min_frames=30, max_frames=150, partition="train")


def test_window_means_equal_a_loop_over_placements():
    rng = np.random.default_rng(0)
    num_frames, length = 37, 6
    kept = np.sort(rng.choice(num_frames, size=9, replace=False))
    projections = rng.normal(size=len(kept))
    got = ceiling._window_means(projections, kept, num_frames, length)
    assert got.shape == (num_frames - length + 1,)
    for start, value in enumerate(got):
        inside = (kept >= start) & (kept < start + length)
        expected = projections[inside].mean() if inside.any() else -np.inf
        assert value == pytest.approx(expected)


def test_unseen_labels_count_windows_without_a_frame_of_the_view():
    views = {"every_n:10": View.parse("every_n:10"), "every_n:30": View.parse("every_n:30")}
    evidence = ceiling.view_evidence(SMALL, views)
    synthesizer = synth.VideoSynthesizer(SMALL)
    for name, view in views.items():
        unseen = total = 0
        for index in range(SMALL.videos):
            video = synthesizer.video(index)
            kept = view.frame_indices(video.num_frames)
            for start, end in video.windows:
                total += 1
                unseen += not any(start <= k < end for k in kept)
        assert (evidence[name].unseen_labels, evidence[name].total_labels) == (unseen, total)
    assert 0 < evidence["every_n:10"].unseen_labels < evidence["every_n:30"].unseen_labels
    # Windows of at least 20 frames always hold two frames of every_n:10.
    longer = ceiling.view_evidence(dataclasses.replace(SMALL, videos=40, min_window_frames=20), views)
    assert longer["every_n:10"].unseen_labels == 0


def test_the_scorer_reads_the_labels_from_the_frames_and_loses_what_the_view_misses():
    validate = dataclasses.replace(SMALL, videos=80, partition="validate")
    result = ceiling.ceiling(SMALL, validate, ["every_n:10", "every_n:30"])
    # A scorer without the frames ranks by class frequency only; the prototypes lift it
    # to nearly perfect on all frames.
    assert result[ceiling.ALL_FRAMES]["gap"] > 0.97
    assert result["every_n:30"]["gap"] < result["every_n:10"]["gap"] < result[ceiling.ALL_FRAMES]["gap"]
    for view in ("every_n:10", "every_n:30"):
        assert result[view]["ratio"] == pytest.approx(result[view]["gap"] / result[ceiling.ALL_FRAMES]["gap"])
        assert 0 < result[view]["unseen_labels"] < 0.5


def test_calibrated_scores_fall_back_to_the_frequency_of_a_class_without_both_outcomes():
    features = np.zeros((4, 2, 3))
    features[:, 1, 0] = [0.0, 1.0, 2.0, 3.0]
    labels = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    train = ceiling.ViewEvidence(features, labels, 0, 6)
    scores = ceiling.calibrated_scores(train, train)
    assert np.allclose(scores[:, 0], 1.0)  # class 0 is always present
    assert scores[0, 1] < 0.5 < scores[3, 1]  # class 1 follows its feature
