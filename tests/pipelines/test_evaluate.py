"""pipelines.evaluate: the scoring job with labels, under its own name."""

import csv
import json

import pyarrow.parquet as pq
import pytest

from pipelines import evaluate
from pipelines.datasets import ownership
from pipelines.scoring import outputs as out
from tests.conftest import assert_a_model_that_is_no_export_is_refused


def test_a_missing_flag_is_a_usage_error_that_names_fewframes_evaluate(capsys):
    with pytest.raises(SystemExit) as exit_info:
        evaluate.parse_args(["--model", "job", "--input", "x"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: fewframes evaluate ")
    assert err.splitlines()[-1] == "fewframes evaluate: error: the following arguments are required: --output"


def test_evaluate_parses_its_metric_flags_and_leaves_beam_options_to_beam():
    args, beam_args = evaluate.parse_args(
        [
            "--model",
            "job",
            "--input",
            "a*.tfrecord,b*.tfrecord",
            "--output",
            "o",
            "--segment-k",
            "50",
            "--no-report",
            "--runner",
            "DirectRunner",
            "--direct_num_workers",
            "2",
        ]  # fmt: skip
    )
    assert args.labels is True and args.segment_k == 50 and args.no_report is True
    assert args.input == ["a*.tfrecord", "b*.tfrecord"]
    assert beam_args == ["--runner", "DirectRunner", "--direct_num_workers", "2"]


def test_main_answers_a_model_that_is_no_export_with_one_line_and_code_2(tmp_path, capsys):
    assert_a_model_that_is_no_export_is_refused(evaluate, "fewframes evaluate", tmp_path, capsys)


def test_evaluate_writes_metrics_per_class_and_videos_of_a_labelled_partition(
    student_export, tiny_frame_dataset, tmp_path
):
    output = tmp_path / "eval"
    summary = evaluate.run([
        "--model", str(student_export), "--input", f"{tiny_frame_dataset.parent}/raw/train*.tfrecord",
        "--output", str(output), "--no-report", "--direct_num_workers", "1",
    ])  # fmt: skip
    metrics = json.loads((output / out.METRICS_FILE).read_text())
    assert metrics == summary and metrics["num_videos"] == 40 and metrics["balanced"]
    assert 0 < metrics["gap"] <= 1 and metrics["map"] == metrics["map_nonempty_classes"]
    with open(output / out.PER_CLASS_FILE, newline="") as f:
        assert sorted(int(row["class"]) for row in csv.DictReader(f)) == list(range(8))
    assert pq.read_table(output / out.VIDEOS_FILE).num_rows == 40
    assert not (output / "summary.json").exists() and not (output / out.REPORT_FILE).exists()  # --no-report
    owned = json.loads((output / ownership.OWNED_NAME).read_text())
    assert owned["kind"] == "evaluation" and out.METRICS_FILE in owned["files"]
    lines = evaluate.format_summary(summary).splitlines()
    assert lines[0].startswith("videos 40 scored, 0 failed (of 40 records)")
    assert lines[1].startswith(f"GAP {metrics['gap']:.4f}  mAP {metrics['map']:.4f}")
