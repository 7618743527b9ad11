"""`fewframes compare`: paired bootstrap over videos, its outputs, and its refusals."""

import csv
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from pipelines import compare
from pipelines.datasets import ownership
from pipelines.scoring import outputs as out
from tests.conftest import REPO_ROOT
from tests.e2e.test_gcs import BUCKET, gcs, gcs_server  # noqa: F401  (fixtures)
from tests.evaluation_fixture import data_values, inline_images, png_size, write_evaluation_dir
from trainer.metrics import MetricsAccumulator, score_videos

VIDEOS, CLASSES = 500, 30
RUNS = {
    "teacher": dict(
        seed=1, signal=0.9, role="teacher", preset="large", view="all", every=1, ms_per_frame=0.05
    ),
    "every10": dict(seed=2, signal=0.6, view="every_n:10", every=10, shuffle_rows=True),
    "uniform5": dict(seed=3, signal=0.45, view="uniform:5", every=30),
}
RESAMPLES = 200


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    metrics = {}
    for name, options in RUNS.items():
        metrics[name] = write_evaluation_dir(str(root / name), videos=VIDEOS, classes=CLASSES, **options)
    return root, metrics


@pytest.fixture(scope="module")
def compared(runs, tmp_path_factory):
    root, _ = runs
    output = tmp_path_factory.mktemp("comparison")
    argv = [
        *(str(root / n) for n in RUNS),
        "--output",
        str(output),
        "--bootstrap",
        str(RESAMPLES),
        "--overwrite",
    ]
    assert compare.run(argv) == 0
    return output, json.loads((output / compare.COMPARISON_JSON).read_text())


def _metrics_of(directory) -> dict:
    table = out.read_videos(str(directory))
    return out.accumulator_from_table(table, CLASSES, 20).result()


def test_point_estimates_equal_metrics_accumulator(runs, compared):
    root, metrics = runs
    _, comparison = compared
    assert [row["label"] for row in comparison["runs"]] == list(RUNS)
    assert comparison["reference"] == "teacher" and comparison["num_videos"] == VIDEOS
    for row in comparison["runs"]:
        expected = _metrics_of(root / row["label"])
        for metric in compare.METRICS:
            assert row[metric] == expected[metric] == metrics[row["label"]][metric], (row["label"], metric)
            assert row[f"{metric}_diff"] == row[metric] - comparison["runs"][0][metric]


def test_frames_and_time_are_the_runs_own(runs, compared):
    _, metrics = runs
    _, comparison = compared
    for row in comparison["runs"]:
        own = metrics[row["label"]]
        assert row["num_videos"] == VIDEOS
        assert row["fraction_read"] == pytest.approx(own["frames"]["fraction_read"], rel=1e-12)
        assert row["mean_frames_read"] == pytest.approx(own["frames"]["mean_frames_read"], rel=1e-12)
        assert row["model_seconds_per_video"] == pytest.approx(
            own["timing"]["model_seconds_per_video"], rel=1e-12
        )
        assert row["role"] == own["model"]["role"] and row["view"] == own["model"]["view"]


def test_resamples_equal_metrics_accumulator_on_the_same_videos(runs):
    """The fast path (entries sorted once, repeated per resample) is the accumulator's result
    on `take(indices)`, exactly; rows are aligned by id (every10's rows are shuffled)."""
    root, _ = runs
    loaded = [compare.Run.read(str(root / n), n) for n in RUNS]
    positions, ids, _ = compare.align_videos(loaded, intersect=False)
    assert ids.to_pylist() == loaded[0].ids().to_pylist()
    scored = [out.scored_from_table(r.videos).take(p) for r, p in zip(loaded, positions, strict=True)]
    values = compare.paired_bootstrap(scored, CLASSES, resamples=4, seed=11)
    for b, indices in enumerate(compare.resample_indices(VIDEOS, 4, seed=11)):
        for r, run_scored in enumerate(scored):
            result = MetricsAccumulator(CLASSES, 20).add_scored(run_scored.take(indices)).result()
            assert values[r, b].tolist() == [result[m] for m in compare.METRICS]
    # all counts 1: the point estimate
    ones = compare.ResampledMetrics(scored[1], CLASSES).metrics(np.ones(VIDEOS, dtype=np.int64))
    assert list(ones) == [_metrics_of(root / "every10")[m] for m in compare.METRICS]


def test_resamples_equal_metrics_accumulator_with_ties_and_unlabelled_videos():
    """Coarse scores (many ties across and within videos), videos without labels and with
    more labels than k, small k: still the accumulator's values, bit for bit."""
    rng = np.random.default_rng(3)
    videos, classes, top_k = 300, 12, 5
    labels = [rng.choice(classes, size=rng.integers(0, 8), replace=False) for _ in range(videos)]
    scored = []
    for signal in (0.0, 0.3):
        predictions = np.round(rng.random((videos, classes)) * 4) / 4
        for row, video_labels in enumerate(labels):
            predictions[row, video_labels] += signal
        scored.append(score_videos(predictions.astype(np.float32), labels, top_k))
    values = compare.paired_bootstrap(scored, classes, resamples=25, seed=5)
    for b, indices in enumerate(compare.resample_indices(videos, 25, seed=5)):
        for r, run_scored in enumerate(scored):
            result = MetricsAccumulator(classes, top_k).add_scored(run_scored.take(indices)).result()
            assert values[r, b].tolist() == [result[m] for m in compare.METRICS], (r, b)


def test_intervals_contain_the_point_estimate(compared):
    _, comparison = compared
    for row in comparison["runs"]:
        for metric in compare.METRICS:
            assert row[f"{metric}_ci_low"] < row[metric] < row[f"{metric}_ci_high"], (row["label"], metric)
            low, high = row[f"{metric}_diff_ci_low"], row[f"{metric}_diff_ci_high"]
            assert low <= row[f"{metric}_diff"] <= high
    # the students are clearly worse than the teacher here: the paired interval excludes 0
    for row in comparison["runs"][1:]:
        assert row["gap_diff_ci_high"] < 0


def test_intervals_narrow_with_more_videos(tmp_path):
    widths = {}
    for videos in (300, 3000):
        dirs = [str(tmp_path / f"{videos}-{n}") for n in ("a", "b")]
        for seed, directory in enumerate(dirs):
            write_evaluation_dir(directory, videos=videos, classes=CLASSES, seed=seed, signal=0.6)
        comparison = compare.compare_runs(dirs, resamples=100, seed=0)
        widths[videos] = {
            m: [r[f"{m}_ci_high"] - r[f"{m}_ci_low"] for r in comparison["runs"]]
            + [comparison["runs"][1][f"{m}_diff_ci_high"] - comparison["runs"][1][f"{m}_diff_ci_low"]]
            for m in compare.METRICS
        }
    for metric in compare.METRICS:
        for small, large in zip(widths[300][metric], widths[3000][metric], strict=True):
            assert large < 0.6 * small, metric  # ~1/sqrt(10) expected


def test_paired_difference_of_a_run_with_itself_is_exactly_zero(runs, tmp_path):
    root, _ = runs
    shutil.copytree(root / "every10", tmp_path / "again")
    comparison = compare.compare_runs([str(root / "every10"), str(tmp_path / "again")], resamples=100)
    reference, again = comparison["runs"]
    for metric in compare.METRICS:
        for suffix in ("_diff", "_diff_ci_low", "_diff_ci_high"):
            assert reference[metric + suffix] == 0.0 and again[metric + suffix] == 0.0
        assert again[metric + "_ci_low"] == reference[metric + "_ci_low"]


def test_same_seed_same_outputs_other_seed_other_intervals(runs, tmp_path):
    root, _ = runs
    dirs = [str(root / n) for n in RUNS]
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        assert (
            compare.run([*dirs, "--output", str(tmp_path / name), "--bootstrap", "20", "--seed", str(seed)])
            == 0
        )
    files = (compare.COMPARISON_JSON, compare.COMPARISON_CSV, out.REPORT_FILE)
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    a = json.loads((tmp_path / "a" / compare.COMPARISON_JSON).read_text())
    c = json.loads((tmp_path / "c" / compare.COMPARISON_JSON).read_text())
    assert a["runs"][1]["gap"] == c["runs"][1]["gap"]
    assert a["runs"][1]["gap_ci_low"] != c["runs"][1]["gap_ci_low"]


def test_csv_holds_the_json_rows(compared):
    output, comparison = compared
    with open(output / compare.COMPARISON_CSV, newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == compare.csv_columns()
        rows = list(reader)
    assert [r["label"] for r in rows] == list(RUNS)
    for row, expected in zip(rows, comparison["runs"], strict=True):
        assert row["features"] == "rgb+audio"
        for metric in compare.METRICS:
            for suffix in ("", "_ci_low", "_ci_high", "_diff", "_diff_ci_low", "_diff_ci_high"):
                assert float(row[metric + suffix]) == expected[metric + suffix]


def test_report_images_decode_and_numbers_equal_the_json(compared):
    output, comparison = compared
    page = (output / out.REPORT_FILE).read_text(encoding="utf-8")
    images = inline_images(page)
    assert len(images) == 3  # GAP and mAP against frames read, time against frames read
    for data in images:
        width, height = png_size(data)
        assert width >= 300 and height >= 200 and len(data) > 5_000
    cells = data_values(page)
    seen = 0
    for cell in cells:
        row = comparison["runs"][int(cell["data-run"])]
        metric = cell["data-metric"]
        assert cell["data-value"] == row[metric], metric
        if "data-ci-low" in cell:
            base = metric
            assert (
                cell["data-ci-low"] == row[f"{base}_ci_low"]
                and cell["data-ci-high"] == row[f"{base}_ci_high"]
            )
        seen += 1
    # runs table: 3 facts x 3 runs; metrics: 5 x 3; differences: 5 x 2
    assert seen == 9 + 15 + 10
    assert "Difference from teacher" in page and "<script" not in page


def test_labels_and_intersect(runs, tmp_path, capsys):
    root, _ = runs
    partial = tmp_path / "partial"
    write_evaluation_dir(str(partial), videos=VIDEOS, classes=CLASSES, seed=5, keep=np.arange(40, VIDEOS))
    argv = [str(root / "teacher"), str(partial), "--output", str(tmp_path / "out"), "--bootstrap", "20"]
    assert compare.run(argv) == 2
    assert (
        "partial lacks 40 of the 500 videos of teacher and has 0 that teacher lacks"
        in capsys.readouterr().err
    )
    reverse = [str(partial), str(root / "teacher"), "--output", str(tmp_path / "out")]
    assert compare.run(reverse) == 2
    assert (
        "teacher lacks 0 of the 460 videos of partial and has 40 that partial lacks"
        in capsys.readouterr().err
    )
    assert compare.run([*argv, "--intersect", "--labels", "T,P"]) == 0
    comparison = json.loads((tmp_path / "out" / compare.COMPARISON_JSON).read_text())
    assert comparison["num_videos"] == VIDEOS - 40 and comparison["videos_dropped"] == {"T": 40, "P": 0}
    assert [r["label"] for r in comparison["runs"]] == ["T", "P"]
    table = out.read_videos(str(root / "teacher")).slice(40)
    expected = out.accumulator_from_table(table, CLASSES, 20).result()
    assert comparison["runs"][0]["gap"] == expected["gap"]
    assert "left out: T 40, P 0" in (tmp_path / "out" / out.REPORT_FILE).read_text()


def _error(argv, capsys) -> str:
    assert compare.run([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fewframes compare: error: "), err
    return err


def test_refuses_fewer_than_two_runs(runs, tmp_path, capsys):
    root, _ = runs
    assert "at least two evaluation outputs, got 1" in _error(
        [root / "teacher", "--output", tmp_path], capsys
    )


def test_refuses_a_directory_that_is_not_an_evaluation(runs, tmp_path, capsys):
    root, _ = runs
    (tmp_path / "empty").mkdir()
    err = _error([root / "teacher", tmp_path / "empty", "--output", tmp_path / "o"], capsys)
    assert "empty is not an evaluation output (no metrics.json)" in err
    (tmp_path / "half").mkdir()
    shutil.copy(root / "teacher" / out.METRICS_FILE, tmp_path / "half")
    err = _error([root / "teacher", tmp_path / "half", "--output", tmp_path / "o"], capsys)
    assert "has no videos.parquet" in err


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(classes=CLASSES + 1), "different class counts: teacher has 30, other has 31"),
        (
            dict(label_space="verticals"),
            "different label spaces (label_space): teacher has entities, other has verticals",
        ),
        (dict(top_k=10), "different top-k: teacher 20, other 10"),
        (dict(videos_seed=9), "other and teacher disagree on the labels of"),
    ],
)
def test_refuses_runs_that_do_not_match(runs, tmp_path, capsys, options, message):
    root, _ = runs
    write_evaluation_dir(str(tmp_path / "other"), **{"videos": VIDEOS, "classes": CLASSES, **options})
    assert message in _error([root / "teacher", tmp_path / "other", "--output", tmp_path / "o"], capsys)


def test_refuses_bad_flags_and_outputs(runs, tmp_path, capsys):
    root, _ = runs
    a, b = root / "teacher", root / "every10"
    assert "--labels gives 1 labels for 2 runs" in _error(
        [a, b, "--output", tmp_path, "--labels", "x"], capsys
    )
    assert "--labels must be distinct" in _error([a, b, "--output", tmp_path, "--labels", "x,x"], capsys)
    assert "--confidence must be between 0 and 1" in _error(
        [a, b, "--output", tmp_path, "--confidence", "95"], capsys
    )
    assert "is one of the compared runs" in _error([a, b, "--output", b], capsys)
    assert "the following arguments are required: --output" in _error([a, b], capsys)
    assert compare.run([str(a), str(b), "--output", str(tmp_path / "o"), "--bootstrap", "5"]) == 0
    capsys.readouterr()
    assert "already holds comparison.csv" in _error(
        [a, b, "--output", tmp_path / "o", "--bootstrap", "5"], capsys
    )


def test_overwrite_never_replaces_an_evaluations_report(runs, tmp_path, capsys):
    root, _ = runs
    evaluation = tmp_path / "eval"
    shutil.copytree(root / "teacher", evaluation)
    before = {p.name: p.read_bytes() for p in evaluation.iterdir()}
    argv = [root / "teacher", root / "every10", "--output", evaluation, "--bootstrap", "5", "--overwrite"]
    assert "holds files that no comparison wrote: metrics.json" in _error(argv, capsys)
    assert {p.name: p.read_bytes() for p in evaluation.iterdir()} == before
    # Its own earlier comparison it replaces, and records the files it wrote.
    assert compare.run([str(a) for a in argv[:3]] + [str(tmp_path / "cmp"), "--bootstrap", "5"]) == 0
    (tmp_path / "cmp" / "notes.txt").write_text("mine")
    assert "no comparison wrote: notes.txt;" in _error([*argv[:3], tmp_path / "cmp", "--overwrite"], capsys)
    (tmp_path / "cmp" / "notes.txt").unlink()
    assert (
        compare.run([str(a) for a in argv[:3]] + [str(tmp_path / "cmp"), "--bootstrap", "5", "--overwrite"])
        == 0
    )
    owned = json.loads((tmp_path / "cmp" / ownership.OWNED_NAME).read_text())
    assert owned["kind"] == "comparison" and owned["files"] == sorted(compare.OUTPUT_FILES)


def test_module_entry_point(runs, tmp_path):
    root, _ = runs
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.compare", str(root / "teacher"), "--output", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("fewframes compare: error: compare needs at least two")
    )


def test_gs_paths(gcs, runs):  # noqa: F811
    from pipelines.scoring.report import write_evaluation_report

    root, _ = runs
    remote = []
    for name in ("teacher", "every10"):
        for file in (out.METRICS_FILE, out.PER_CLASS_FILE, out.VIDEOS_FILE):
            out.write_bytes(f"gs://{BUCKET}/eval/{name}/{file}", (root / name / file).read_bytes())
        remote.append(f"gs://{BUCKET}/eval/{name}")
    path = write_evaluation_report(remote[0])
    assert path == f"gs://{BUCKET}/eval/teacher/report.html"
    assert len(inline_images(out.read_bytes(path).decode())) == 3
    assert compare.run([*remote, "--output", f"gs://{BUCKET}/cmp", "--bootstrap", "20"]) == 0
    comparison = json.loads(out.read_bytes(f"gs://{BUCKET}/cmp/{compare.COMPARISON_JSON}"))
    assert [r["path"] for r in comparison["runs"]] == remote
