"""`fewframes cascade fit` end to end: tiny trained stages, a real Beam calibration run."""

import json
import math

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipelines import cascade, cli
from pipelines.runner import UsageError
from pipelines.scoring import cascade as C
from tests.conftest import make_dataset, train_job
from tests.evaluation_fixture import data_values
from trainer.export import read_metadata
from trainer.metrics import MetricsAccumulator, ScoredVideos


def _fit(*argv):
    return cascade.fit([*argv, "--direct_num_workers", "1"])


def _stage_records(directory, index) -> dict:
    table = pq.read_table(directory / "calibration" / f"stage-{index}-videos.parquet")
    return {row["id"]: row for row in table.to_pylist()}


def _gap(records: list[dict]) -> float:
    """GAP of the given per-video records, by the evaluation's accumulator."""
    k = len(records[0]["top_classes"])
    scored = ScoredVideos.from_entries(
        [r["top_classes"] for r in records],
        np.array([r["top_scores"] for r in records]),
        [r["perr"] for r in records],
        [len(r["labels"]) for r in records],
        [label for r in records for label in r["labels"]],
    )
    return MetricsAccumulator(num_classes=8, top_k=k).add_scored(scored).result()["gap"]


@pytest.fixture(scope="module")
def raw_calibration(tiny_frame_dataset):
    return str(tiny_frame_dataset.parent / "raw" / "train*.tfrecord")


def test_fit_writes_thresholds_whose_cascade_meets_the_target_on_the_calibration_videos(
    tmp_path, student_export, teacher_job, raw_calibration
):
    output = tmp_path / "cascade"
    summary = _fit("--stage", str(student_export), "--stage", str(teacher_job), "--input", raw_calibration,
                   "--target", "0.9", "--output", str(output))  # fmt: skip
    assert summary["balanced"]
    spec = C.read_cascade(str(output))
    assert [s.view for s in spec.stages] == ["every_n:4", "all"]
    # The exports are copied inside the cascade dir, and named by their weights.
    for i, source in enumerate((student_export, teacher_job / "export")):
        assert (output / "stages" / str(i) / "saved_model.pb").is_file()
        assert spec.stages[i].model["weights_sha256"] == read_metadata(str(source))["weights_sha256"]
        assert spec.stages[i].path == f"stages/{i}"

    # Recompute the fitted cascade from the per-stage records, independently of the search.
    first, last = _stage_records(output, 0), _stage_records(output, 1)
    assert set(first) == set(last) and len(first) == spec.calibration["num_videos"] == 40
    threshold = math.inf if spec.thresholds[0] is None else spec.thresholds[0]
    exits = {v: 0 if first[v]["top_scores"][0] >= threshold else 1 for v in sorted(first)}
    chosen = [(first if exits[v] == 0 else last)[v] for v in sorted(first)]
    frames = [
        -(-min(r["num_frames"], 300) // 4) if exits[r["id"]] == 0 else min(r["num_frames"], 300)
        for r in chosen
    ]
    best = spec.calibration["cascade"]
    assert best["gap"] == pytest.approx(_gap(chosen))
    assert best["gap"] >= 0.9 * _gap(list(last.values())) - 1e-12
    assert spec.calibration["last_stage_gap"] == pytest.approx(_gap(list(last.values())))
    assert best["mean_frames"] == pytest.approx(np.mean(frames))
    assert best["exits"] == [list(exits.values()).count(0), list(exits.values()).count(1)]
    # Each stage's own GAP and frames, as an evaluation of it would report them.
    assert spec.calibration["stages"][0]["gap"] == pytest.approx(_gap(list(first.values())))
    assert spec.calibration["stages"][0]["records"] == 40
    assert spec.calibration["stages"][0]["failed"] == 0
    # The curve starts at the cheapest point and ends at a GAP no lower than the fitted one.
    curve = spec.calibration["curve"]
    assert [p["mean_cost"] for p in curve] == sorted(p["mean_cost"] for p in curve)
    assert curve[-1]["gap"] >= best["gap"]
    values = data_values((output / "report.html").read_text())
    assert {v["data-metric"]: v["data-value"] for v in values}["cascade.gap"] == pytest.approx(best["gap"])


def test_fit_with_a_learned_gate_and_time_cost_records_gates_and_stage_times(
    tmp_path, student_export, teacher_job, tiny_frame_dataset
):
    output = tmp_path / "cascade"
    _fit("--stage", str(student_export), "--stage", str(teacher_job), "--input", str(tiny_frame_dataset),
         "--target", "0.95", "--output", str(output), "--rule", "gate", "--cost", "time")  # fmt: skip
    data = json.loads((output / C.CASCADE_FILE).read_text())
    assert data["rule"]["name"] == "gate" and len(data["rule"]["gates"]) == 1
    seconds = [stage["model_seconds_per_video"] for stage in data["stages"]]
    assert all(s > 0 for s in seconds)
    spec = C.read_cascade(str(output))
    # The recorded cost is the stage times a video went through.
    best = spec.calibration["cascade"]
    assert best["mean_cost"] == pytest.approx(
        (best["exits"][0] * seconds[0] + best["exits"][1] * sum(seconds)) / 40
    )
    # Fitting again into the same directory needs --overwrite, and replaces only the fit's files.
    (output / "notes.txt").write_text("mine")
    argv = ["--stage", str(student_export), "--stage", str(teacher_job), "--input", str(tiny_frame_dataset),
            "--target", "0.9", "--output", str(output)]  # fmt: skip
    with pytest.raises(UsageError, match="already holds files"):
        _fit(*argv)
    (output / "notes.txt").unlink()
    again = _fit(*argv, "--overwrite")
    assert again["rule"]["name"] == "top1" and C.read_cascade(str(output)).rule.name == "top1"
    assert (output / "stages" / "1" / "saved_model.pb").is_file()


def _fails_in_one_line(capsys, argv, expected: str):
    assert cli.main(["cascade", "fit", *argv]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(lines) == 1 and expected in lines[0], lines


def test_fit_refuses_stages_whose_views_do_not_nest_and_writes_nothing(
    tmp_path, capsys, student_export, teacher_job, raw_calibration
):
    output = tmp_path / "cascade"
    argv = ["--stage", str(teacher_job), "--stage", str(student_export), "--input", raw_calibration,
            "--target", "0.9", "--output", str(output)]  # fmt: skip
    _fails_in_one_line(capsys, argv, "views do not nest: stage 0 reads all")
    assert not output.exists()


def test_fit_refuses_a_target_above_one_and_a_single_stage(tmp_path, capsys, student_export, raw_calibration):
    base = ["--input", raw_calibration, "--output", str(tmp_path / "c")]
    _fails_in_one_line(
        capsys, [*base, "--stage", "a", "--stage", "b", "--target", "1.2"], "--target must lie in"
    )
    _fails_in_one_line(
        capsys, [*base, "--stage", str(student_export), "--target", "0.9"], "at least two --stage"
    )
    _fails_in_one_line(
        capsys,
        [*base, "--stage", str(student_export), "--stage", str(tmp_path / "nothing"), "--target", "0.9"],
        "--stage 1:",
    )
    assert not (tmp_path / "c").exists()


def test_export_refuses_a_directory_that_is_not_a_cascade_in_one_line(tmp_path, capsys):
    assert cli.main(["cascade", "export", str(tmp_path), "--output", str(tmp_path / "e")]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(lines) == 1 and "cannot read" in lines[0] and C.CASCADE_FILE in lines[0]
    assert not (tmp_path / "e").exists()
    assert cli.main(["cascade", "tune"]) == 2
    assert "unknown subcommand 'tune'" in capsys.readouterr().err


def test_fit_refuses_stages_of_another_class_space_in_one_line(
    tmp_path_factory, tmp_path, capsys, student_export, raw_calibration
):
    """A second tiny student trained on 5 classes, after the 8-class one."""
    root = tmp_path_factory.mktemp("five-classes")
    dataset = make_dataset(root, videos=16, classes=5, seed=9)
    train_job(["--train", str(dataset), "--job-dir", str(root / "job"), "--mode", "student",
               "--student", "dbof-small", "--view", "all", "--epochs", "1", "--batch-size", "8",
               "--verbose", "0"])  # fmt: skip
    argv = ["--stage", str(student_export), "--stage", str(root / "job"), "--input", raw_calibration,
            "--target", "0.9", "--output", str(tmp_path / "c")]  # fmt: skip
    _fails_in_one_line(capsys, argv, "stage 1 has num_classes 5 but stage 0 has 8")
    assert not (tmp_path / "c").exists()
