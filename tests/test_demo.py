"""`fewframes demo` end to end at a small size: every artifact of the story exists."""

import json

from pipelines import cli


def test_small_demo_runs_end_to_end_and_resumes(tmp_path, capsys):
    argv = ["demo", "--workdir", str(tmp_path / "demo"), "--videos", "120", "--classes", "6",
            "--frames", "20:80", "--epochs", "1", "--batch-size", "16", "--bootstrap", "50"]  # fmt: skip
    assert cli.main(argv) == 0
    root = tmp_path / "demo"
    comparison = json.loads((root / "compare" / "comparison.json").read_text())
    rows = {row["label"]: row for row in comparison["runs"]}
    assert set(rows) == {"teacher", "student", "student-distilled"}
    assert rows["teacher"]["fraction_read"] == 1.0
    assert 0.09 < rows["student"]["fraction_read"] < 0.15  # every 10th of 20-80 frames
    for name in rows:
        metrics = json.loads((root / "eval" / name / "metrics.json").read_text())
        assert metrics["num_videos"] == 50 and metrics["num_failed"] == 0
        assert (root / "eval" / name / "report.html").exists()
    assert (root / "compare" / "report.html").exists()
    first = capsys.readouterr().out
    assert "compare" in first and "report.html" in first

    assert cli.main(argv) == 0  # a second run finds every step done
    second = capsys.readouterr().out
    assert second.count("already done, skipped") == 10


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
