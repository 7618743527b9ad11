"""`evaluate` / `predict --model CASCADE_DIR`: videos routed through the stages in Beam."""

import json
import pathlib
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipelines import cli, predict
from pipelines.scoring import job as scoring_job
from pipelines.scoring import outputs as out
from schemas import features as F
from schemas import raw
from schemas.views import View
from tests.pipelines.scoring.conftest import num_frames
from trainer.metrics import score_videos


def test_each_video_exits_at_the_first_stage_sure_of_it_with_that_stages_predictions(
    cascade_run, cascade_dir, direct_scores
):
    _, summary, videos = cascade_run
    _, threshold = cascade_dir
    assert set(videos) == set(direct_scores[0])
    exits = {v: 0 if direct_scores[0][v].max() >= threshold else 1 for v in videos}
    assert 0 < sum(e == 0 for e in exits.values()) < 40  # both routes are taken
    for video, row in videos.items():
        predictions = direct_scores[exits[video]][video]
        expected = score_videos(predictions[None, :], [row["labels"]], 20)
        assert row["top_classes"] == expected.classes[0].tolist(), video
        np.testing.assert_allclose(row["top_scores"], expected.scores[0], atol=1e-5)
    stages = summary["cascade"]["stages"]
    assert [s["videos_entering"] for s in stages] == [40, sum(e == 1 for e in exits.values())]
    assert [s["videos_exiting"] for s in stages] == [
        sum(e == 0 for e in exits.values()),
        stages[1]["videos_entering"],
    ]
    assert stages[0]["threshold"] == threshold and stages[1]["threshold"] is None
    assert summary["model"]["role"] == "cascade" and summary["model"]["serving_view"] == "every_n:4 -> all"


def test_a_video_pays_each_frame_once_over_the_stages_it_went_through(
    cascade_run, cascade_dir, shards, direct_scores
):
    _, summary, videos = cascade_run
    _, threshold = cascade_dir
    _, good = shards
    lengths = {raw.id_and_labels(r)[0]: num_frames(r) for r in good}
    quarter = View.parse("every_n:4")
    went_on = {v for v in videos if direct_scores[0][v].max() < threshold}
    for video, row in videos.items():
        n = min(lengths[video], 300)
        assert row["frames_read"] == (n if video in went_on else quarter.num_selected(n)), video
    stages = summary["cascade"]["stages"]
    assert stages[0]["model_frames_read"] == sum(quarter.num_selected(n) for n in lengths.values())
    assert stages[0]["new_frames_read"] == stages[0]["model_frames_read"]
    assert stages[1]["model_frames_read"] == sum(min(lengths[v], 300) for v in went_on)
    # The teacher's frames that every_n:4 had already read are not paid again.
    assert stages[1]["new_frames_read"] == sum(
        min(lengths[v], 300) - quarter.num_selected(lengths[v]) for v in went_on
    )
    paid = stages[0]["new_frames_read"] + stages[1]["new_frames_read"]
    assert summary["frames"]["fraction_read"] == pytest.approx(paid / sum(lengths.values()))
    assert (
        summary["cascade"]["input_read_once"]
        and summary["cascade"]["input_bytes"] == summary["input"]["bytes"]
    )
    seconds = sum(s["model_seconds"] for s in stages)
    assert summary["timing"]["model_seconds"] == pytest.approx(seconds)


def test_bad_records_become_dead_letters_and_a_cascade_run_balances(cascade_run):
    output, summary, _ = cascade_run
    assert (summary["num_records"], summary["num_videos"], summary["num_failed"]) == (43, 40, 3)
    assert summary["balanced"]
    failed = [json.loads(line) for p in output.glob("failed-*.jsonl") for line in p.read_text().splitlines()]
    assert sorted(r["id"] for r in failed if r["id"]) == ["badlabel", "shortaud"]


def test_predict_with_a_cascade_dir_writes_every_videos_predictions(
    cascade_dir, cascade_run, shards, tmp_path
):
    directory, _ = cascade_dir
    root, _ = shards
    _, _, videos = cascade_run
    summary = predict.run(["--model", str(directory), "--input", f"{root}/train*.tfrecord", "--output",
                           str(tmp_path / "p"), "--direct_num_workers", "1"])  # fmt: skip
    lines = (tmp_path / "p" / out.PREDICTIONS_CSV).read_text().splitlines()[1:]
    assert len(lines) == 40 and summary["balanced"]
    first = {line.split(",")[0]: [int(c) for c in line.split(",")[1].split()[::2]] for line in lines}
    assert all(first[v] == videos[v]["top_classes"] for v in videos)
    assert [s["videos_entering"] for s in summary["cascade"]["stages"]][0] == 40


def test_a_cascade_whose_stage_export_was_replaced_is_refused_in_one_line(
    cascade_dir, shards, student_export, tmp_path, capsys
):
    directory, _ = cascade_dir
    root, _ = shards
    tampered = tmp_path / "tampered"
    shutil.copytree(directory, tampered)
    # Stage 1 (the teacher) replaced by the student's export: its view and weights differ.
    shutil.rmtree(tampered / "stages" / "1")
    shutil.copytree(student_export, tampered / "stages" / "1")
    argv = [
        "evaluate",
        "--model",
        str(tampered),
        "--input",
        f"{root}/train*.tfrecord",
        "--output",
        str(tmp_path / "o"),
    ]
    assert cli.main(argv) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(lines) == 1 and "stage 1" in lines[0] and "is not the export cascade.json names" in lines[0]
    assert not pathlib.Path(tmp_path / "o").exists()


def test_compare_shows_a_cascade_as_one_run_with_the_frames_it_read(
    cascade_dir, cascade_run, shards, tmp_path
):
    from pipelines import compare

    directory, _ = cascade_dir
    root, _ = shards
    output, summary, _ = cascade_run
    teacher = tmp_path / "teacher"
    scoring_job.run(["--model", str(directory / "stages" / "1"), "--input", f"{root}/train*.tfrecord",
                     "--output", str(teacher), "--direct_num_workers", "1"])  # fmt: skip
    comparison = compare.compare_runs([str(output), str(teacher)], resamples=20)
    cascade_row, teacher_row = comparison["runs"]
    assert (cascade_row["role"], cascade_row["view"]) == ("cascade", "every_n:4 -> all")
    assert cascade_row["fraction_read"] == pytest.approx(summary["frames"]["fraction_read"])
    assert cascade_row["fraction_read"] < teacher_row["fraction_read"] == pytest.approx(1.0)


def test_a_dataset_input_routes_as_its_raw_shards(cascade_dir, cascade_run, tiny_frame_dataset, tmp_path):
    directory, _ = cascade_dir
    _, raw_summary, raw_videos = cascade_run
    summary = scoring_job.run(["--model", str(directory), "--input", str(tiny_frame_dataset), "--output",
                               str(tmp_path / "o"), "--direct_num_workers", "1"])  # fmt: skip
    videos = {row["id"]: row for row in pq.read_table(tmp_path / "o" / out.VIDEOS_FILE).to_pylist()}
    assert set(videos) == set(raw_videos) and summary["balanced"]
    for video, row in videos.items():
        assert row["top_classes"] == raw_videos[video]["top_classes"], video
        assert row["frames_read"] == raw_videos[video]["frames_read"], video
    entering = [s["videos_entering"] for s in summary["cascade"]["stages"]]
    assert entering == [s["videos_entering"] for s in raw_summary["cascade"]["stages"]]


def test_raw_records_travel_as_frame_codes_that_each_stage_dequantizes(
    cascade_dir, shards, tiny_frame_dataset
):
    from pipelines.scoring import routing

    directory, _ = cascade_dir
    root, good = shards
    planned = routing.plan_cascade(str(directory), [f"{root}/train*.tfrecord"])
    assert planned.codes and planned.read_plan.parse_config.frame_dtype == "uint8"
    assert str(planned.row_view) == "all"
    # A dataset's rows are read as stored (the dataset's own dtype decides the dequantization).
    assert not routing.plan_cascade(str(directory), [str(tiny_frame_dataset)]).codes
    # The cut is by index into the frames the row holds: every_n:4 of all frames.
    row = {F.NUM_FRAMES: 9, "rgb": np.arange(9)[:, None]}
    cut = routing.stage_frames(row, {"rgb": "rgb"}, View.parse("all"), View.parse("every_n:4"))
    assert cut["rgb"][:, 0].tolist() == [0, 4, 8]
    row = {F.NUM_FRAMES: 9, "rgb": np.array([0, 2, 4, 6, 8])[:, None]}  # rows holding every_n:2
    cut = routing.stage_frames(row, {"rgb": "rgb"}, View.parse("every_n:2"), View.parse("every_n:4"))
    assert cut["rgb"][:, 0].tolist() == [0, 4, 8]
