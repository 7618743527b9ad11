"""The cascade's arithmetic: nesting, frames counted once, exit rules, the threshold search."""

import json

import numpy as np
import pytest

from pipelines.scoring import cascade as C
from schemas.views import View


def views(*texts):
    return [View.parse(t) for t in texts]


# ----- nesting -----------------------------------------------------------------------------------
def test_every_n_chain_to_all_nests():
    C.check_views_nest(views("every_n:30", "every_n:10", "all"))


def test_uniform_nests_in_an_odd_multiple_and_in_all():
    C.check_views_nest(views("uniform:10", "uniform:30", "all"))
    assert C.view_nests(View.parse("uniform:5"), View.parse("uniform:25"))


@pytest.mark.parametrize(
    "chain, stage",
    [
        (("every_n:10", "every_n:30"), 0),  # finer first
        (("every_n:20", "every_n:30"), 0),  # 30 does not divide 20
        (("every_n:30", "every_n:10", "every_n:20"), 1),
        (("uniform:10", "uniform:20"), 0),  # an even multiple: frame floor(n/20) is not in uniform:20
        (("uniform:10", "uniform:25"), 0),
        (("all", "every_n:2"), 0),
        (("every_n:30", "uniform:30"), 0),
    ],
)
def test_chains_that_do_not_nest_are_refused_in_one_line(chain, stage):
    with pytest.raises(C.CascadeError) as error:
        C.check_views_nest(views(*chain))
    message = str(error.value)
    assert "\n" not in message
    assert f"stage {stage} reads {chain[stage]}" in message


def test_a_random_view_and_a_single_stage_are_refused():
    with pytest.raises(C.CascadeError, match="not deterministic"):
        C.check_views_nest(views("random:10", "all"))
    with pytest.raises(C.CascadeError, match="at least two stages"):
        C.check_views_nest(views("all"))


def test_uniform_ten_in_twenty_fails_on_a_length_the_check_names_by_construction():
    # n = 40: uniform:10 keeps 2, 6, ..., uniform:20 keeps 1, 3, 5, ...: frame 2 is only in the first.
    assert 2 in View.parse("uniform:10").frame_indices(40)
    assert 2 not in View.parse("uniform:20").frame_indices(40)
    assert not C.view_nests(View.parse("uniform:10"), View.parse("uniform:20"))


def test_stages_of_other_class_spaces_or_features_are_refused():
    base = {"kind": "frame", "features": ["rgb", "audio"], "label_space": "entities", "num_classes": 10}
    C.check_same_space([base, dict(base)])
    with pytest.raises(C.CascadeError, match="stage 1 has num_classes 25 but stage 0 has 10"):
        C.check_same_space([base, base | {"num_classes": 25}])
    with pytest.raises(C.CascadeError, match="stage 2 has features"):
        C.check_same_space([base, base, base | {"features": ["rgb"]}])


# ----- frames counted once ----------------------------------------------------------------------
def test_a_video_pays_each_frame_once_across_nested_stages():
    chain = views("every_n:30", "every_n:10", "all")
    # 300 frames: 10, then the 20 more every_n:10 adds, then the 270 more all adds.
    assert C.frames_paid(chain, 300).tolist() == [10, 30, 300]
    assert C.frames_paid(chain, 25).tolist() == [1, 3, 25]
    # Lengths above MAX_FRAMES are capped as every view caps them.
    assert C.frames_paid(chain, 1000).tolist() == [10, 30, 300]


def test_frames_paid_is_the_union_when_views_do_not_nest():
    # Not a valid cascade, but the count stays honest: uniform:1 keeps frame 20 of 40, every_n:10
    # keeps 0, 10, 20, 30: the union is 4 frames, not 5.
    assert C.frames_paid(views("uniform:1", "every_n:10"), 40).tolist() == [1, 4]
    assert C.frames_paid(views("uniform:1", "every_n:7"), 40).tolist() == [1, 7]


def test_frames_matrix_rows_follow_each_videos_length():
    chain = views("every_n:30", "all")
    assert C.frames_matrix(chain, [300, 31, 300]).tolist() == [[10, 300], [2, 31], [10, 300]]


# ----- exit rules --------------------------------------------------------------------------------
def test_top1_rule_scores_the_highest_probability():
    rule = C.ExitRule(C.RULE_TOP1)
    scores = np.array([[0.9, 0.1], [0.4, 0.3]])
    assert rule.scores(0, np.array([[1, 2], [3, 4]]), scores, np.array([10, 10])).tolist() == [0.9, 0.4]


def test_agreement_rule_is_the_shared_share_of_top_k_and_never_exits_the_first_stage():
    rule = C.ExitRule(C.RULE_AGREEMENT, agreement_k=2)
    classes = np.array([[1, 2, 3], [4, 5, 6]])
    previous = np.array([[2, 1, 9], [5, 8, 4]])
    scores = np.ones((2, 3))
    assert rule.scores(1, classes, scores, np.ones(2), previous).tolist() == [1.0, 0.5]
    assert np.isneginf(rule.scores(0, classes, scores, np.ones(2))).all()
    assert C.candidate_thresholds(rule.scores(0, classes, scores, np.ones(2))) == [None]


def test_gate_learns_that_a_confident_top1_is_right_and_is_deterministic():
    rng = np.random.default_rng(0)
    top1 = rng.uniform(0, 1, 400)
    features = C.gate_features(np.stack([top1, top1 / 2], axis=1), np.full(400, 10))
    right = top1 > 0.5
    gate = C.Gate.fit(features, right)
    probability = gate.predict(features)
    assert probability[right].min() > probability[~right].max()
    assert gate == C.Gate.fit(features, right)
    assert C.Gate.from_dict(json.loads(json.dumps(gate.to_dict()))) == gate


def test_exit_stage_takes_the_first_stage_whose_score_reaches_its_threshold():
    scores = [np.array([0.9, 0.5, 0.5, 0.1]), np.array([0.0, 0.8, 0.2, 0.9])]
    assert C.exit_stage(scores, [0.9, 0.8]).tolist() == [0, 1, 2, 1]
    assert C.exit_stage(scores, [None, 0.8]).tolist() == [2, 1, 2, 1]
    assert C.exit_stage(scores, [None, None]).tolist() == [2, 2, 2, 2]


# ----- the threshold search on constructed scores ---------------------------------------------------
def record(video, labels, classes, scores, num_frames=300):
    return {
        "id": video,
        "labels": labels,
        "top_classes": classes,
        "top_scores": scores,
        "num_frames": num_frames,
    }


def two_stage_scores():
    """Four videos, k = 1. The last stage is always right (0.9 on the label: GAP 1). The first stage
    is right and sure (0.95) on the two easy videos, wrong and unsure (0.6) on the two hard ones."""
    first = [
        record("easy-a", [1], [1], [0.95]),
        record("easy-b", [2], [2], [0.95]),
        record("hard-a", [3], [7], [0.6]),
        record("hard-b", [4], [8], [0.6]),
    ]
    last = [record(r["id"], r["labels"], r["labels"], [0.9]) for r in first]
    return C.StageScores.from_records(views("every_n:30", "all"), [first, last])


def test_search_sends_only_the_unsure_videos_on_when_the_target_is_the_last_stage_gap():
    stages = two_stage_scores()
    assert stages.stage_gap(1) == 1.0
    assert stages.stage_gap(0) == 0.5  # ranks: right, right, wrong, wrong over 4 labels
    result = C.search_thresholds(stages, C.exit_scores(C.ExitRule(C.RULE_TOP1), stages), target=0.99)
    # Candidates are 0 (always), 0.6, 0.95 and never; 0.95 lets the easy videos out at 10 frames each.
    assert result.best.thresholds == (0.95,)
    assert result.best.gap == 1.0
    assert result.best.exits == (2, 2)
    assert result.best.mean_frames == (10 + 10 + 300 + 300) / 4
    assert result.method == "exhaustive"


def test_search_lets_every_video_out_early_when_half_the_gap_is_enough():
    stages = two_stage_scores()
    result = C.search_thresholds(stages, C.exit_scores(C.ExitRule(C.RULE_TOP1), stages), target=0.5)
    # 0.6 lets every calibration video out too; the tie goes to the smaller threshold, 0
    # (always), which also lets out a later video scored below every calibration video.
    assert C.candidate_thresholds(C.exit_scores(C.ExitRule(C.RULE_TOP1), stages)[0]) == [0.0, 0.6, 0.95, None]
    assert result.best.thresholds == (C.EXIT_ALWAYS,)
    assert (result.best.gap, result.best.mean_frames, result.best.exits) == (0.5, 10.0, (4, 0))
    assert C.exit_stage([np.array([0.01, 0.6])], result.best.thresholds).tolist() == [0, 0]


def test_frontier_runs_from_the_cheapest_point_to_the_last_stage():
    stages = two_stage_scores()
    result = C.search_thresholds(stages, C.exit_scores(C.ExitRule(C.RULE_TOP1), stages), target=0.5)
    curve = [(p.mean_frames, p.gap) for p in result.frontier()]
    # "never" costs 300 for the same GAP 1.0 as 0.95 at 155: it is not on the curve.
    assert curve == [(10.0, 0.5), (155.0, 1.0)]


def three_stage_scores():
    """Six videos, k = 1; each stage is right on more videos, and sure exactly where it is right."""
    truth = {f"v{i}": [i] for i in range(6)}
    right = [{"v0", "v1"}, {"v0", "v1", "v2", "v3"}, set(truth)]
    stages = [
        [
            record(v, labels, labels if v in good else [50 + i], [0.9 if v in good else 0.3 + s / 10])
            for i, (v, labels) in enumerate(truth.items())
        ]
        for s, good in enumerate(right)
    ]
    return C.StageScores.from_records(views("every_n:30", "every_n:10", "all"), stages)


def test_three_stages_each_let_out_the_videos_they_got_right():
    stages = three_stage_scores()
    scores = C.exit_scores(C.ExitRule(C.RULE_TOP1), stages)
    exhaustive = C.search_thresholds(stages, scores, target=1.0)
    assert exhaustive.best.thresholds == (0.9, 0.9)
    assert exhaustive.best.exits == (2, 2, 2)
    assert exhaustive.best.mean_frames == (2 * 10 + 2 * 30 + 2 * 300) / 6
    # The coordinate search (forced by a tiny exhaustive budget) finds the same vector here.
    coordinate = C.search_thresholds(stages, scores, target=1.0, max_exhaustive=1)
    assert coordinate.method == "coordinate"
    assert coordinate.best == exhaustive.best


def test_time_cost_counts_every_stage_a_video_went_through():
    stages = three_stage_scores()
    cost = C.time_matrix([1.0, 2.0, 10.0], stages.num_videos)
    result = C.search_thresholds(stages, C.exit_scores(C.ExitRule(C.RULE_TOP1), stages), 1.0, cost=cost)
    assert result.best.mean_cost == (2 * 1 + 2 * 3 + 2 * 13) / 6


def test_search_is_the_same_whatever_the_order_of_the_records():
    def search(order):
        stages = three_stage_scores()
        records = [
            [
                record(
                    v,
                    [int(stages.classes[2, i, 0])],
                    [int(stages.classes[s, i, 0])],
                    [float(stages.scores[s, i, 0])],
                )
                for i, v in enumerate(stages.ids)
            ]
            for s in range(3)
        ]
        shuffled = C.StageScores.from_records(
            views("every_n:30", "every_n:10", "all"), [[r[i] for i in order] for r in records]
        )
        rule = C.ExitRule(C.RULE_GATE, gates=C.fit_gates(shuffled))
        return rule.gates, C.search_thresholds(shuffled, C.exit_scores(rule, shuffled), 0.9).best

    assert search([0, 1, 2, 3, 4, 5]) == search([5, 3, 1, 0, 4, 2])


def test_a_target_above_one_or_not_positive_is_refused():
    stages = two_stage_scores()
    scores = C.exit_scores(C.ExitRule(C.RULE_TOP1), stages)
    for target in (1.01, 0.0):
        with pytest.raises(C.CascadeError, match="--target must lie in"):
            C.search_thresholds(stages, scores, target=target)


def test_videos_a_stage_dead_lettered_are_left_out_of_calibration():
    first = [record("a", [1], [1], [0.9]), record("b", [2], [2], [0.9])]
    last = [record("b", [2], [2], [0.9]), record("c", [3], [3], [0.9])]
    stages = C.StageScores.from_records(views("every_n:30", "all"), [first, last])
    assert stages.ids == ("b",)
    assert stages.num_positives == 1


# ----- cascade.json ------------------------------------------------------------------------------
def spec(**overrides):
    fields = {
        "stages": (
            C.Stage("stages/0", "every_n:30", {"role": "student"}),
            C.Stage("stages/1", "all", {"role": "teacher"}, 0.002),
        ),
        "rule": C.ExitRule(C.RULE_TOP1),
        "thresholds": (0.8,),
    }
    return C.CascadeSpec(**(fields | overrides))


def test_cascade_json_round_trips(tmp_path):
    original = spec(calibration={"gap": 0.5})
    C.write_cascade(str(tmp_path), original)
    assert C.is_cascade_dir(str(tmp_path))
    data = json.loads((tmp_path / C.CASCADE_FILE).read_text())
    assert data["schema_version"] == C.SCHEMA_VERSION
    assert C.read_cascade(str(tmp_path)) == original
    assert C.stage_dir(str(tmp_path), original.stages[1]) == str(tmp_path / "stages" / "1")


def test_a_never_threshold_is_stored_as_null(tmp_path):
    C.write_cascade(str(tmp_path), spec(thresholds=(None,)))
    assert json.loads((tmp_path / C.CASCADE_FILE).read_text())["thresholds"] == [None]
    assert C.read_cascade(str(tmp_path)).thresholds == (None,)


@pytest.mark.parametrize("path", ["../elsewhere", "/abs/export", "gs://bucket/export", "stages/../../x"])
def test_stage_paths_outside_the_cascade_dir_are_refused(tmp_path, path):
    data = spec().to_dict()
    data["stages"][0]["path"] = path
    (tmp_path / C.CASCADE_FILE).write_text(json.dumps(data))
    with pytest.raises(C.CascadeError, match="not a relative path inside the cascade dir"):
        C.read_cascade(str(tmp_path))


def test_another_schema_version_and_a_malformed_file_are_refused(tmp_path):
    data = spec().to_dict() | {"schema_version": 99}
    (tmp_path / C.CASCADE_FILE).write_text(json.dumps(data))
    with pytest.raises(C.CascadeError, match="schema version 99"):
        C.read_cascade(str(tmp_path))
    data = spec().to_dict()
    del data["stages"][0]["view"]
    (tmp_path / C.CASCADE_FILE).write_text(json.dumps(data))
    with pytest.raises(C.CascadeError, match="malformed"):
        C.read_cascade(str(tmp_path))


def test_a_spec_whose_views_do_not_nest_is_refused():
    with pytest.raises(C.CascadeError, match="views do not nest"):
        spec(stages=(C.Stage("stages/0", "all", {}), C.Stage("stages/1", "every_n:10", {})))
