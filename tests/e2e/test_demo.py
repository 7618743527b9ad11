"""`fewframes demo` end to end at a small size: every artifact of the story exists."""

import json

from pipelines import cli


def test_demo_runs_end_to_end_resumes_and_distillation_beats_the_plain_student(tmp_path, capsys):
    """The demo at its default sizes (about 3 minutes on 2 cores): the story it tells holds."""
    argv = ["demo", "--workdir", str(tmp_path / "demo"), "--bootstrap", "200"]
    assert cli.main(argv) == 0
    root = tmp_path / "demo"
    comparison = json.loads((root / "compare" / "comparison.json").read_text())
    rows = {row["label"]: row for row in comparison["runs"]}
    assert set(rows) == {"teacher", "student", "student-distilled", "cascade"}
    # The cascade is one row: its frames are the union of the views each video went through.
    cascade = json.loads((root / "eval" / "cascade" / "metrics.json").read_text())
    stages = cascade["cascade"]["stages"]
    assert [s["view"] for s in stages] == ["every_n:30", "every_n:10", "all"]
    assert stages[0]["videos_entering"] == 400 and sum(s["videos_exiting"] for s in stages) == 400
    assert abs(rows["cascade"]["fraction_read"] - cascade["frames"]["fraction_read"]) < 1e-12
    assert rows["cascade"]["fraction_read"] < rows["teacher"]["fraction_read"]
    assert rows["teacher"]["fraction_read"] == 1.0
    assert 0.09 < rows["student"]["fraction_read"] < 0.12  # every 10th of 30-300 frames
    # Reading a tenth of the frames costs accuracy, distillation (from the offline
    # teacher targets) wins part of it back: +0.021 GAP at the demo's seed, +0.024 to
    # +0.029 at seeds 1-3, as online distillation (benchmarks/offline_quality.py), on
    # the earlier i.i.d. frames. On the default shot frames (issue 22) the demo's seed
    # measured teacher 0.543, student 0.539, distilled 0.566: distillation still wins
    # +0.024, but the teacher's lead over the student is thin (+0.004), since
    # neighbouring frames now repeat their shot.
    assert rows["student-distilled"]["gap"] > rows["student"]["gap"] + 0.01
    assert rows["teacher"]["gap"] > rows["student"]["gap"]
    assert rows["student"]["model_seconds_per_video"] < rows["teacher"]["model_seconds_per_video"] / 4
    targets = json.loads((root / "datasets" / "train-targets" / "manifest.json").read_text())
    assert targets["balanced"] and targets["records_written"] == 1200
    assert targets["teacher_view"] is False  # the distilled student never reads the full view
    distilled = json.loads((root / "jobs" / "student-distilled" / "config.json").read_text())
    assert distilled["targets"] == distilled["train"] == str(root / "datasets" / "train-targets")
    for name in rows:
        metrics = json.loads((root / "eval" / name / "metrics.json").read_text())
        assert metrics["num_videos"] == 400 and metrics["num_failed"] == 0
        assert metrics["gap"] == rows[name]["gap"]
        assert (root / "eval" / name / "report.html").exists()
    assert (root / "compare" / "report.html").exists()
    first = capsys.readouterr().out
    assert "compare" in first and "report.html" in first

    assert cli.main(argv) == 0  # a second run finds every step done
    second = capsys.readouterr().out
    assert second.count("already done, skipped") == 14


def test_real_video_level_demo_names_its_predictions(shared_data_dir, tmp_path, capsys):
    import csv

    shards = tmp_path / "shards"
    shards.mkdir()
    for i in range(3):
        name = f"validate{i:04d}.tfrecord"
        (shards / name).symlink_to(shared_data_dir / "yt8m-v2-video-sample" / name)
    vocabulary = shared_data_dir / "vocabulary.csv"
    argv = ["demo", "--workdir", str(tmp_path / "out"), "--real-video-level", str(shards),
            "--vocabulary", str(vocabulary), "--epochs", "1"]  # fmt: skip
    assert cli.main(argv) == 0
    evaluation = tmp_path / "out" / "eval" / "video-moe"
    metrics = json.loads((evaluation / "metrics.json").read_text())
    assert metrics["num_videos"] > 200 and metrics["num_failed"] == 0
    assert metrics["input"]["files"] == 1 and metrics["model"]["num_classes"] == 3862
    with open(vocabulary, newline="") as f:
        names = {int(row["Index"]): row["Name"] for row in csv.DictReader(f)}
    first = json.loads((evaluation / "predictions.jsonl").read_text().splitlines()[0])
    assert all(p["name"] == names[p["class"]] for p in first["predictions"])
    assert first["predictions"][0]["name"] in capsys.readouterr().out
