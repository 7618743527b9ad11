"""trainer.metrics against the published AP vectors, a hand-computed example, and a plain
loop-based reference written here from the definitions (not calling the module)."""

import pickle

import numpy as np
import pytest

from trainer.metrics import (
    MetricsAccumulator,
    ScoredVideos,
    average_precision,
    precision_recall_curve,
    score_videos,
    top_k_entries,
)

# --- reference implementation: plain Python loops, straight from the definitions -------


def _ref_ap(entries, num_positives):
    """entries: (score, is_label) pairs; ranked by score desc, negatives first on ties."""
    if num_positives == 0:
        return 0.0
    ranked = sorted(entries, key=lambda e: (-e[0], 1 if e[1] else 0))
    found, total = 0, 0.0
    for rank, (_, is_label) in enumerate(ranked, start=1):
        if is_label:
            found += 1
            total += found / rank
    return total / num_positives


def reference_metrics(predictions, label_sets, top_k):
    """Every metric for `predictions` [B][C] and `label_sets` (a set of classes per video)."""
    num_videos, num_classes = len(predictions), len(predictions[0])
    k = min(top_k, num_classes)
    pooled = []  # (score, is_label, class)
    class_positives = [0] * num_classes
    hits, perr_sum = 0, 0.0
    for row, labels in zip(predictions, label_sets, strict=True):
        row = [float(x) for x in row]
        ranked = sorted(range(num_classes), key=lambda c: (-row[c], c))
        for c in ranked[:k]:
            pooled.append((row[c], c in labels, c))
        for c in labels:
            class_positives[c] += 1
        if ranked[0] in labels:
            hits += 1
        n = len(labels)
        if n:  # a video without labels adds 0 to the PERR sum (but counts as a video)
            perr_sum += sum(1 for c in ranked[:n] if c in labels and row[c] > 0) / n
    total_positives = sum(class_positives)
    gap = _ref_ap([(s, lab) for s, lab, _ in pooled], total_positives)
    aps = []
    for c in range(num_classes):
        aps.append(_ref_ap([(s, lab) for s, lab, cls in pooled if cls == c], class_positives[c]))
    nonempty = [aps[c] for c in range(num_classes) if class_positives[c] > 0]
    return {
        "gap": gap,
        "map_nonempty_classes": sum(nonempty) / len(nonempty) if nonempty else 0.0,
        "map_all_classes": sum(aps) / num_classes,
        "hit_at_1": hits / num_videos,
        "perr": perr_sum / num_videos,
        "num_videos": num_videos,
        "num_positives": total_positives,
        "aps": aps,
        "class_positives": class_positives,
    }


METRIC_KEYS = ("gap", "map_nonempty_classes", "map_all_classes", "hit_at_1", "perr")


def _random_case(seed, num_videos, num_classes, max_labels, score_levels=None, low=0.0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    if score_levels is None:
        predictions = rng.uniform(low, 1.0, (num_videos, num_classes))
    else:  # few distinct values: many exact ties, inside and across videos
        predictions = rng.choice(np.linspace(low, 1.0, score_levels), (num_videos, num_classes))
    predictions = predictions.astype(dtype)
    label_sets = []
    for _ in range(num_videos):
        n = int(rng.integers(0, max_labels + 1))  # 0 labels happens: unlabelled videos
        label_sets.append(set(rng.choice(num_classes, size=min(n, num_classes), replace=False).tolist()))
    return predictions, label_sets


def _multi_hot(label_sets, num_classes):
    dense = np.zeros((len(label_sets), num_classes), dtype=np.int64)
    for row, labels in enumerate(label_sets):
        dense[row, sorted(labels)] = 1
    return dense


def _index_lists(label_sets):
    return [np.array(sorted(labels), dtype=np.int64) for labels in label_sets]


def _accumulate(predictions, label_sets, num_classes, top_k, batch_size=17, dense=False):
    acc = MetricsAccumulator(num_classes, top_k)
    for start in range(0, len(predictions), batch_size):
        stop = start + batch_size
        labels = label_sets[start:stop]
        labels = _multi_hot(labels, num_classes) if dense else _index_lists(labels)
        acc.add_batch(predictions[start:stop], labels)
    return acc


# --- average_precision ----------------------------------------------------------------


@pytest.mark.parametrize(
    "scores,labels,expected",
    [
        ([0.98, 0.88, 0.77, 0.65, 0.64, 0.59, 0.45, 0.43, 0.20, 0.05], [1, 1, 0, 0, 0, 1, 1, 0, 0, 1], 0.714),
        ([0.878, 0.832, 0.759, 0.621, 0.458, 0.285, 0.134], [1, 0, 1, 0, 0, 1, 0], 0.722),
        ([0.98], [1], 1.0),
        ([0.56], [0], 0.0),
    ],
)
def test_published_average_precision_vectors(scores, labels, expected):
    assert round(average_precision(scores, labels), 3) == expected


def test_average_precision_exact_values_and_options():
    # (1/1 + 2/2 + 3/6 + 4/7 + 5/10) / 5
    scores = [0.98, 0.88, 0.77, 0.65, 0.64, 0.59, 0.45, 0.43, 0.20, 0.05]
    labels = [1, 1, 0, 0, 0, 1, 1, 0, 0, 1]
    assert average_precision(scores, labels) == pytest.approx((1 + 1 + 3 / 6 + 4 / 7 + 5 / 10) / 5, abs=1e-15)
    # Positives missing from the list count in the denominator.
    assert average_precision([0.9, 0.1], [1, 0], num_positives=4) == pytest.approx(0.25)
    # Ties: negatives first, so a tie never helps.
    assert average_precision([0.5, 0.5], [1, 0]) == pytest.approx(0.5)
    assert average_precision([0.5, 0.5], [0, 1]) == pytest.approx(0.5)
    assert average_precision([], []) == 0.0
    with pytest.raises(ValueError):
        average_precision([0.9, 0.8], [1, 1], num_positives=1)
    with pytest.raises(ValueError):
        average_precision([0.9, np.nan], [1, 0])


# --- a tiny example computed by hand --------------------------------------------------


def test_hand_computed_example():
    # 4 videos, 5 classes, top_k=2. Class 4 never is a label and never reaches a top-2.
    predictions = np.array(
        [
            [0.9, 0.8, 0.1, 0.2, 0.01],  # labels {0, 2}: top-2 = c0 (label), c1
            [0.3, 0.8, 0.6, 0.05, 0.01],  # labels {1}:   top-2 = c1 (label), c2
            [0.5, 0.5, 0.4, 0.0, 0.01],  # no labels:    top-2 = c0, c1 (tie: lower class first)
            [0.2, 0.1, 0.3, 0.6, 0.01],  # labels {0, 3}: top-2 = c3 (label), c2
        ]
    )
    labels = [[0, 2], [1], [], [0, 3]]
    acc = MetricsAccumulator(5, top_k=2).add_batch(predictions, labels)
    result = acc.result()
    # Pooled ranking (score desc, negatives first among equal scores):
    #   0.9 +, 0.8 -, 0.8 +, 0.6 -, 0.6 +, 0.5 -, 0.5 -, 0.3 -
    # Positives at ranks 1, 3, 5; 5 labels in all (v0's c2 and v3's c0 are outside the top-2):
    #   GAP = (1/1 + 2/3 + 3/5) / 5 = 34/75 = 0.45333...
    assert result["gap"] == pytest.approx(34 / 75, abs=1e-12)
    # Top-1: c0 (hit), c1 (hit), c0 (no labels: miss), c3 (hit) -> 3/4.
    assert result["hit_at_1"] == pytest.approx(0.75)
    # PERR: v0 top-2 {c0, c1} -> 1/2; v1 top-1 {c1} -> 1; v2 no labels -> 0; v3 {c3, c2} -> 1/2.
    assert result["perr"] == pytest.approx((0.5 + 1 + 0 + 0.5) / 4)
    # Class APs: c0 entries (0.9 +, 0.5 -), 2 positives -> 1/2; c1 (0.8 -, 0.8 +, 0.5 -), 1
    # positive -> 1/2; c2 (0.6 -, 0.3 -) -> 0; c3 (0.6 +) -> 1; c4 no positives -> 0.
    assert [c["ap"] for c in acc.per_class()] == pytest.approx([0.5, 0.5, 0.0, 1.0, 0.0])
    assert [c["positives"] for c in acc.per_class()] == [2, 1, 1, 1, 0]
    assert result["map_nonempty_classes"] == pytest.approx(2.0 / 4)
    assert result["map_all_classes"] == pytest.approx(2.0 / 5)
    assert (result["num_videos"], result["num_positives"], result["top_k"]) == (4, 5, 2)

    curve = precision_recall_curve(acc)
    assert curve.precision == pytest.approx([1, 1 / 2, 2 / 3, 2 / 4, 3 / 5, 3 / 6, 3 / 7, 3 / 8])
    assert curve.recall == pytest.approx([1 / 5, 1 / 5, 2 / 5, 2 / 5, 3 / 5, 3 / 5, 3 / 5, 3 / 5])
    assert curve.score == pytest.approx([0.9, 0.8, 0.8, 0.6, 0.6, 0.5, 0.5, 0.3])


# --- against the reference ------------------------------------------------------------

CASES = {
    # name: (seed, num_videos, num_classes, top_k, max_labels, score_levels, low, dtype)
    "random": (0, 150, 40, 20, 4, None, 0.0, np.float64),
    "random_float32": (1, 120, 60, 20, 5, None, 0.0, np.float32),
    "many_ties": (2, 150, 30, 20, 4, 5, 0.0, np.float64),
    "all_scores_equal": (3, 60, 25, 20, 3, 1, 1.0, np.float64),
    "more_labels_than_top_k": (4, 100, 30, 3, 9, 7, 0.0, np.float64),
    "num_classes_below_top_k": (5, 80, 7, 20, 4, 4, 0.0, np.float64),
    "top_k_1": (6, 100, 20, 1, 3, 6, 0.0, np.float64),
    "non_positive_scores": (7, 100, 25, 20, 4, 9, -1.0, np.float64),
    "mostly_unlabelled": (8, 100, 30, 20, 1, 6, 0.0, np.float64),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("dense", [False, True], ids=["index_lists", "multi_hot"])
def test_matches_reference(name, dense):
    seed, num_videos, num_classes, top_k, max_labels, levels, low, dtype = CASES[name]
    predictions, label_sets = _random_case(seed, num_videos, num_classes, max_labels, levels, low, dtype)
    if name == "mostly_unlabelled":
        label_sets = [labels if i % 4 == 0 else set() for i, labels in enumerate(label_sets)]
    expected = reference_metrics(predictions, label_sets, top_k)
    acc = _accumulate(predictions, label_sets, num_classes, top_k, dense=dense)
    result = acc.result()
    for key in METRIC_KEYS:
        assert result[key] == pytest.approx(expected[key], abs=1e-6), key
    assert result["num_videos"] == expected["num_videos"]
    assert result["num_positives"] == expected["num_positives"]
    assert result["top_k"] == top_k
    per_class = acc.per_class()
    assert [c["ap"] for c in per_class] == pytest.approx(expected["aps"], abs=1e-6)
    assert [c["positives"] for c in per_class] == expected["class_positives"]


def test_classes_without_positives_differ_between_the_two_maps():
    predictions, label_sets = _random_case(9, 100, 30, 20, 4, 8)
    label_sets = [{c for c in labels if c < 12} for labels in label_sets]  # classes 12.. have none
    expected = reference_metrics(predictions, label_sets, 20)
    result = _accumulate(predictions, label_sets, 30, 20).result()
    assert result["map_all_classes"] == pytest.approx(result["map_nonempty_classes"] * 12 / 30)
    for key in METRIC_KEYS:
        assert result[key] == pytest.approx(expected[key], abs=1e-6), key


def test_no_labels_at_all():
    predictions = np.random.default_rng(10).random((20, 8))
    result = MetricsAccumulator(8).add_batch(predictions, [[] for _ in range(20)]).result()
    assert {k: result[k] for k in METRIC_KEYS} == dict.fromkeys(METRIC_KEYS, 0.0)
    assert (result["num_videos"], result["num_positives"]) == (20, 0)


# --- top_k_entries ----------------------------------------------------------------------


def test_top_k_entries_order_and_ties():
    predictions = np.array([[0.2, 0.7, 0.7, 0.1, 0.7], [0.3, 0.3, 0.3, 0.3, 0.9]])
    entries = top_k_entries(predictions, [[2, 4], []], top_k=2)
    assert entries.video_index.tolist() == [0, 0, 1, 1]
    assert entries.class_index.tolist() == [1, 2, 4, 0]  # equal scores: lower classes kept, in order
    assert entries.score.tolist() == [0.7, 0.7, 0.9, 0.3]
    assert entries.is_label.tolist() == [False, True, False, False]
    assert entries.num_positives.tolist() == [2, 0]
    dense = top_k_entries(predictions, np.array([[0, 0, 1, 0, 1], [0, 0, 0, 0, 0]]), top_k=2)
    for got, want in zip(dense, entries, strict=True):
        assert np.array_equal(got, want)
    # Hit@1 follows the same tie-break (class 1 wins over 2 and 4): a miss here.
    assert MetricsAccumulator(5).add_batch(predictions[:1], [[2, 4]]).result()["hit_at_1"] == 0.0


def test_label_formats_agree():
    predictions, label_sets = _random_case(14, 30, 9, 1)
    label_sets = [labels or {0} for labels in label_sets]  # exactly one label each
    single = np.array([next(iter(labels)) for labels in label_sets])
    forms = [
        _index_lists(label_sets),
        tuple(_index_lists(label_sets)),
        np.array(_index_lists(label_sets) + [np.array([1, 2])], dtype=object)[:-1],  # object array
        single,  # one class index per video
        _multi_hot(label_sets, 9),
        _multi_hot(label_sets, 9).astype(bool),
        _multi_hot(label_sets, 9).astype(np.float32),
    ]
    results = [MetricsAccumulator(9, 4).add_batch(predictions, labels).result() for labels in forms]
    assert all(result == results[0] for result in results)
    assert results[0]["num_positives"] == 30


def test_top_k_entries_matches_sorting_on_random_ties():
    rng = np.random.default_rng(11)
    predictions = rng.choice([0.0, 0.5, 1.0], (50, 12))
    entries = top_k_entries(predictions, [[] for _ in range(50)], top_k=5)
    for v in range(50):
        want = sorted(range(12), key=lambda c: (-predictions[v, c], c))[:5]
        assert entries.class_index[entries.video_index == v].tolist() == want


# --- merging and pickling -------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_merge_order_independence(seed):
    rng = np.random.default_rng(100 + seed)
    num_classes, top_k = 25, 6
    predictions, label_sets = _random_case(seed, 120, num_classes, 5, score_levels=6)
    reference = _accumulate(predictions, label_sets, num_classes, top_k, batch_size=1000).result()

    perm = rng.permutation(len(predictions))
    predictions, label_sets = predictions[perm], [label_sets[i] for i in perm]
    num_parts = int(rng.integers(1, 6))
    cuts = np.sort(rng.integers(0, len(predictions) + 1, num_parts - 1))  # parts may be empty
    parts = []
    for start, stop in zip(np.r_[0, cuts], np.r_[cuts, len(predictions)], strict=True):
        acc = MetricsAccumulator(num_classes, top_k)
        pos = start
        while pos < stop:  # random batch sizes
            end = min(stop, pos + int(rng.integers(1, 30)))
            acc.add_batch(predictions[pos:end], _index_lists(label_sets[pos:end]))
            pos = end
        parts.append(acc)

    orders = [list(range(num_parts)), list(range(num_parts))[::-1], rng.permutation(num_parts).tolist()]
    results = []
    for order in orders:
        results.append(MetricsAccumulator.merge_all([parts[i] for i in order]).result())
        chained = MetricsAccumulator(num_classes, top_k)
        for i in order:
            chained.merge(parts[i])
        results.append(chained.result())
    # Tree-shaped: pairs first, then the pairs.
    pairs = [MetricsAccumulator.merge_all(parts[i : i + 2]) for i in range(0, num_parts, 2)]
    results.append(MetricsAccumulator.merge_all(pairs[::-1]).result())

    for result in results:
        for key in METRIC_KEYS:
            assert result[key] == pytest.approx(reference[key], abs=1e-12), key
        assert result["num_videos"] == reference["num_videos"]
        assert result["num_positives"] == reference["num_positives"]
    # merge_all leaves its inputs alone.
    assert sum(p.num_videos for p in parts) == len(predictions)


def test_merge_with_itself_and_empty():
    predictions, label_sets = _random_case(12, 40, 10, 3)
    acc = _accumulate(predictions, label_sets, 10, 4)
    doubled = _accumulate(np.concatenate([predictions, predictions]), label_sets + label_sets, 10, 4)
    before = acc.result()
    acc.merge(MetricsAccumulator(10, 4))
    assert acc.result() == before
    acc.merge(acc)
    assert acc.result() == pytest.approx(doubled.result(), abs=1e-12)


def test_pickle_round_trip():
    predictions, label_sets = _random_case(13, 90, 20, 4, score_levels=5)
    acc = _accumulate(predictions, label_sets, 20, 20, batch_size=7)
    acc.add_batch(predictions[:3], _index_lists(label_sets[:3]), video_ids=["a", "b", "c"])
    restored = pickle.loads(pickle.dumps(acc))
    assert restored.result() == acc.result()
    assert restored.per_class() == acc.per_class()
    assert restored.video_ids == acc.video_ids
    assert restored.video_ids[-3:] == ["a", "b", "c"]
    empty = pickle.loads(pickle.dumps(MetricsAccumulator(20)))
    assert empty.merge(restored).result() == acc.result()


def test_errors():
    acc = MetricsAccumulator(4, top_k=2)
    with pytest.raises(ValueError):
        acc.result()  # no videos (the starter raises too)
    with pytest.raises(ValueError):
        acc.add_batch(np.zeros((2, 5)), [[], []])  # wrong number of classes
    with pytest.raises(ValueError):
        acc.add_batch(np.zeros((2, 4)), [[0]])  # labels for 1 video, predictions for 2
    with pytest.raises(ValueError):
        acc.add_batch(np.zeros((1, 4)), [[4]])  # label index out of range
    with pytest.raises(ValueError):
        acc.add_batch(np.full((1, 4), np.nan), [[0]])
    with pytest.raises(ValueError):
        acc.merge(MetricsAccumulator(4, top_k=3))
    with pytest.raises(ValueError):
        MetricsAccumulator(4, top_k=0)
    with pytest.raises(ValueError):
        MetricsAccumulator.merge_all([])


# --- ScoredVideos: what a distributed job ships and a bootstrap resamples ---------------


def test_scored_videos_take_equals_scoring_the_chosen_videos():
    rng = np.random.default_rng(11)
    predictions = rng.random((30, 9)).astype(np.float32)
    predictions[:, 3] = predictions[:, 4]  # ties within videos
    labels = [rng.choice(9, size=rng.integers(0, 4), replace=False) for _ in range(30)]
    scored = score_videos(predictions, labels, top_k=4)
    pick = rng.integers(0, 30, size=45)  # with repeats, as a bootstrap draws
    taken = scored.take(pick)
    expected = score_videos(predictions[pick], [labels[i] for i in pick], top_k=4)
    for name in ScoredVideos._fields:
        np.testing.assert_array_equal(getattr(taken, name), getattr(expected, name), err_msg=name)
    assert [list(x) for x in taken.labels()] == [sorted(labels[i]) for i in pick]
    from_scored = MetricsAccumulator(9, top_k=4).add_scored(taken).result()
    from_predictions = MetricsAccumulator(9, top_k=4).add_batch(predictions[pick], [labels[i] for i in pick])
    assert from_scored == from_predictions.result()


def test_add_scored_refuses_other_k_and_out_of_range_labels():
    scored = score_videos(np.eye(3, dtype=np.float32), [[0], [1], [2]], top_k=2)
    with pytest.raises(ValueError, match="2 entries each, expected 3"):
        MetricsAccumulator(3, top_k=3).add_scored(scored)
    with pytest.raises(ValueError, match=r"label indices must be in \[0, 2\)"):
        MetricsAccumulator(2, top_k=2).add_scored(scored._replace(classes=scored.classes))
