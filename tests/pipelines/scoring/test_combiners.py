"""The evaluation's combiners: exact metrics whatever the runner's split and merge order."""

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines.runner import local_runner
from pipelines.scoring import combiners
from tests.evaluation_fixture import scored_records
from trainer.metrics import MetricsAccumulator, average_precision


# ----- the combiners alone, in a TestPipeline -----------------------------------------------------------
def test_metrics_combiner_merges_partial_results_exactly():
    rng = np.random.default_rng(4)
    predictions = np.round(rng.random((300, 30)), 2).astype(np.float32)  # many ties
    labels = [rng.choice(30, size=rng.integers(0, 4), replace=False) for _ in range(300)]
    expected = MetricsAccumulator(30, 5).add_batch(predictions, labels).result()
    records = scored_records(predictions, labels, 5)
    with BeamTestPipeline(runner=local_runner(beam.options.pipeline_options.PipelineOptions())) as p:
        result = (
            p
            | beam.Create(records, reshuffle=True)
            | beam.CombineGlobally(combiners.MetricsCombineFn(30, 5, block=7))
            | beam.Map(lambda r: r["metrics"])
        )
        assert_that(result, equal_to([expected]))


def test_segment_map_combiner_keeps_only_the_top_k_per_class():
    rng = np.random.default_rng(8)
    ratings = [
        (int(rng.integers(0, 3)), float(np.round(rng.random(), 1)), bool(rng.random() < 0.3))
        for _ in range(400)
    ]
    combiner = combiners.SegmentMapFn(k=10)
    parts = [combiner.create_accumulator() for _ in range(4)]
    for i, rating in enumerate(ratings):
        combiner.add_input(parts[i % 4], rating)
    result = combiner.extract_output(combiner.merge_accumulators(parts))
    aps = []
    for cls in range(3):
        mine = [(s, p) for c, s, p in ratings if c == cls]
        positives = sum(p for _, p in mine)
        ranked = sorted(mine, key=lambda e: (-e[0], e[1]))[:10]
        truncated = [1 if p else 0 for _, p in ranked]
        # AP@10 over the ranked top 10, by its own definition: sum(precision@i at positives) / min(10, P)
        hits = np.cumsum(truncated)
        aps.append(sum(hits[i] / (i + 1) for i in range(len(ranked)) if truncated[i]) / min(10, positives))
    assert result["map_at_k"] == pytest.approx(np.mean(aps))
    assert result["num_rated_pairs"] == 400
    # With K at least the number of ratings, AP@K is the ordinary AP.
    full = combiners.SegmentMapFn(k=1000)
    acc = full.create_accumulator()
    for rating in ratings:
        full.add_input(acc, rating)
    ordinary = [
        average_precision([s for c, s, _ in ratings if c == k], [p for c, _, p in ratings if c == k])
        for k in range(3)
    ]
    assert full.extract_output(acc)["map_at_k"] == pytest.approx(np.mean(ordinary))


# ----- merge order and edge cases, on the CombineFns directly ------------------------------------
def _combine(fn, parts, order):
    """Each part added to its own accumulator, then merged in `order` (nested, as runners do)."""
    accumulators = []
    for part in parts:
        acc = fn.create_accumulator()
        for element in part:
            acc = fn.add_input(acc, element)
        accumulators.append(acc)
    first = fn.merge_accumulators([accumulators[i] for i in order[:2]])
    return fn.extract_output(fn.merge_accumulators([first, *(accumulators[i] for i in order[2:])]))


def test_metrics_do_not_depend_on_how_videos_are_split_or_merged():
    rng = np.random.default_rng(12)
    predictions = np.round(rng.random((120, 12)), 1).astype(np.float32)  # ties across parts
    labels = [rng.choice(12, size=rng.integers(0, 3), replace=False) for _ in range(120)]
    one_pass = MetricsAccumulator(12, 4).add_batch(predictions, labels)
    records = scored_records(predictions, labels, 4)
    fn = combiners.MetricsCombineFn(12, 4, block=5)
    shuffled = [records[i] for i in rng.permutation(len(records))]
    for cuts, order in [
        ((10, 70, 71), (3, 0, 2, 1)),
        ((60, 61, 119), (1, 2, 3, 0)),
        ((1, 2, 3), (0, 1, 2, 3)),
    ]:
        parts = np.split(np.array(shuffled, dtype=object), cuts)  # sizes differ, one may be empty
        output = _combine(fn, [list(part) for part in parts], order)
        assert output["metrics"] == one_pass.result(), (cuts, order)
        assert output["per_class"] == one_pass.per_class(), (cuts, order)


def test_metrics_of_no_videos_are_none_not_a_division_error():
    fn = combiners.MetricsCombineFn(5, 3)
    assert (
        fn.extract_output(fn.merge_accumulators([fn.create_accumulator(), fn.create_accumulator()])) is None
    )


def test_video_stats_sum_counts_and_divide_by_merged_totals():
    records = [
        {"num_frames": 10, "frames_read": 3, "model_seconds": 0.5},
        {"num_frames": 30, "frames_read": 8, "model_seconds": 0.25},
        {"num_frames": 20, "frames_read": 5, "model_seconds": 0.75},
    ]
    output = _combine(combiners.VideoStatsFn(), [records[:1], [], records[1:]], (2, 0, 1))
    assert output == {
        "videos": 3,
        "mean_num_frames": 20.0,
        "mean_frames_read": 16 / 3,
        "fraction_read": 16 / 60,
        "model_seconds": 1.5,
        "model_seconds_per_video": 0.5,
    }
    empty = combiners.VideoStatsFn().extract_output(combiners.VideoStatsFn().create_accumulator())
    assert empty["videos"] == 0 and empty["mean_frames_read"] == empty["fraction_read"] == 0.0


def test_segment_map_ranks_ties_negatives_first_and_skips_classes_without_positives():
    ratings = [
        (0, 0.9, True), (0, 0.8, False), (0, 0.7, True),  # k=2: 1/1 at rank 1 -> AP@2 = 1 / 2
        (1, 0.5, True), (1, 0.5, False),  # the tie puts the negative first: 1/2 at rank 2 -> 1/2 / 1
        (2, 0.4, False),  # no positive: a rated pair, but no AP
        (3, 0.3, True), (3, 0.1, True),  # both in the top 2: (1 + 1) / 2
    ]  # fmt: skip
    output = _combine(combiners.SegmentMapFn(k=2), [ratings[5:], ratings[:2], ratings[2:5]], (1, 2, 0))
    assert output == {
        "map_at_k": (0.5 + 0.5 + 1.0) / 3,
        "k": 2,
        "num_rated_pairs": 8,
        "num_classes_with_positives": 3,
    }


def test_scored_from_records_keeps_each_videos_labels_and_entries():
    predictions = np.array([[0.1, 0.9, 0.3], [0.6, 0.2, 0.4]], np.float32)
    labels = [np.array([1, 2]), np.array([], np.int64)]
    records = scored_records(predictions, labels, 2)
    scored = combiners.scored_from_records(records)
    assert scored.classes.tolist() == [[1, 2], [0, 2]]
    np.testing.assert_allclose(scored.scores, [[0.9, 0.3], [0.6, 0.4]])
    assert [x.tolist() for x in scored.labels()] == [[1, 2], []]
    assert scored.num_labels.tolist() == [2, 0]
