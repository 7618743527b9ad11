"""pipelines.predict: the scoring job without labels: predictions and summary.json only."""

import csv
import json

import pytest

from pipelines import predict
from pipelines.datasets import ownership
from pipelines.scoring import outputs as out
from tests.conftest import assert_a_model_that_is_no_export_is_refused


def test_a_missing_flag_is_a_usage_error_that_names_fewframes_predict(capsys):
    with pytest.raises(SystemExit) as exit_info:
        predict.parse_args(["--input", "x", "--output", "o"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: fewframes predict ")
    assert err.splitlines()[-1] == "fewframes predict: error: the following arguments are required: --model"


def test_predict_has_no_metric_flags():
    args, _ = predict.parse_args(["--model", "job", "--input", "x", "--output", "o", "--jsonl"])
    assert args.labels is False and args.jsonl is True
    assert not hasattr(args, "segment_k") and not hasattr(args, "no_report")
    assert "--segment-k" not in predict.scoring_job.build_parser(predict.PROG, labels=False).format_help()


def test_main_answers_a_model_that_is_no_export_with_one_line_and_code_2(tmp_path, capsys):
    assert_a_model_that_is_no_export_is_refused(predict, "fewframes predict", tmp_path, capsys)


def test_predict_writes_predictions_and_a_summary_but_no_metrics(
    student_export, tiny_frame_dataset, tmp_path
):
    output = tmp_path / "predictions"
    summary = predict.run([
        "--model", str(student_export), "--input", str(tiny_frame_dataset),
        "--output", str(output), "--direct_num_workers", "1",
    ])  # fmt: skip
    assert json.loads((output / "summary.json").read_text()) == summary
    assert summary["num_videos"] == 40 and summary["num_failed"] == 0 and summary["balanced"]
    assert "gap" not in summary and "map" not in summary
    written = sorted(p.name for p in output.iterdir())
    assert written == [
        ownership.OWNED_NAME,
        "failed-00000-of-00001.jsonl",
        out.PREDICTIONS_CSV,
        "summary.json",
    ]
    with open(output / out.PREDICTIONS_CSV, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["VideoId", "LabelConfidencePairs"] and len(rows) == 41
    owned = json.loads((output / ownership.OWNED_NAME).read_text())
    assert owned["kind"] == "evaluation" and owned["files"] == written[1:]
