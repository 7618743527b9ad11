"""pipelines.demo: the demo's command lines, step skipping and refusals (the full run is in tests/e2e)."""

import os

from pipelines import cli, demo
from pipelines.scoring import job as scoring_job
from pipelines.scoring import outputs
from trainer import task


def _demo(tmp_path, *argv) -> demo.Demo:
    return demo.Demo(demo.build_parser().parse_args(["--workdir", str(tmp_path / "demo"), *argv]))


def test_the_demo_evaluates_with_the_vocabulary_its_synthetic_shards_come_with(tmp_path):
    from pipelines import demo
    from pipelines.synth import SynthConfig, generate

    args = demo.build_parser().parse_args(["--workdir", str(tmp_path / "demo"), "--classes", "12"])
    runner = demo.Demo(args)
    generate(runner.path("raw"), SynthConfig(kind="frame", videos=4, shards=1, classes=12, seed=demo.SEED),
             progress=False)  # fmt: skip
    argv = runner.evaluate_argv(runner.path("jobs", "student"), runner.path("eval", "student"))
    parsed, _ = scoring_job.parse_args(argv)
    vocabulary = outputs.read_vocabulary(parsed.vocabulary, {"num_classes": 12})
    assert len(vocabulary.names) == 12 and all(vocabulary.verticals)
    assert parsed.input == [runner.path("raw", "validate*.tfrecord")]
    # The real-data demo names its own vocabulary, once.
    real = runner.evaluate_argv("job", "out", "shards", ("--vocabulary", "real.csv", "--jsonl"))
    assert real.count("--vocabulary") == 1 and scoring_job.parse_args(real)[0].vocabulary == "real.csv"


def test_demo_stops_before_any_work_on_a_machine_short_of_disk_or_memory(tmp_path, monkeypatch, capsys):
    from pipelines import demo

    workdir = tmp_path / "demo"
    (workdir / "raw").mkdir(parents=True)
    (workdir / "raw" / ".train.done").touch()  # an earlier run's step marker

    monkeypatch.setattr(demo, "MIN_FREE_DISK_GB", 1e9)
    assert cli.main(["demo", "--workdir", str(workdir)]) == 2
    assert "GB free; the demo needs" in capsys.readouterr().err
    assert (workdir / "raw" / ".train.done").exists()  # nothing touched without --restart

    monkeypatch.setattr(demo, "MIN_FREE_DISK_GB", 0.0)
    monkeypatch.setattr(demo, "MIN_MEMORY_GB", 1e9)
    assert cli.main(["demo", "--workdir", str(workdir), "--restart"]) == 2
    assert "GB of memory; the demo needs" in capsys.readouterr().err
    assert not workdir.exists()  # --restart deleted the earlier run; no step ran after the check


def test_a_training_command_line_takes_the_demos_sizes_and_lets_extra_flags_override(tmp_path):
    runner = _demo(tmp_path, "--epochs", "3", "--batch-size", "16", "--learning-rate", "0.01")
    argv = runner.train_argv("JOB", "student", ["--student", "dbof-small", "--epochs", "1"])
    assert argv == [
        "--train", runner.path("datasets", "train"), "--eval", runner.path("datasets", "validate"),
        "--job-dir", "JOB", "--mode", "student", "--epochs", "3", "--batch-size", "16",
        "--learning-rate", "0.01", "--seed", str(demo.SEED), "--student", "dbof-small", "--epochs", "1",
    ]  # fmt: skip
    parsed = task.build_parser().parse_args(argv)  # what `fewframes train` makes of it
    assert parsed.epochs == 1 and parsed.batch_size == 16 and parsed.student == "dbof-small"


def test_seed_draws_the_generated_videos_and_seeds_every_training_job(tmp_path, monkeypatch):
    from pipelines import synth

    drawn = []

    def generate(root, config, progress):
        os.makedirs(root, exist_ok=True)
        drawn.append(config)

    monkeypatch.setattr(synth, "generate", generate)
    runner = _demo(tmp_path, "--seed", "11", "--videos", "30")
    runner.synth()
    assert [(c.partition, c.seed) for c in drawn] == [("train", 11), ("validate", 11)]
    argv = runner.train_argv("JOB", "teacher", [])
    assert argv[argv.index("--seed") + 1] == "11"
    assert _demo(tmp_path).args.seed == demo.SEED  # the default, as before the flag


def test_the_distilled_student_trains_from_the_targets_with_the_demos_loss_weights(tmp_path):
    runner = _demo(tmp_path, "--student", "dbof-small", "--rep-weight", "0.5", "--pred-weight", "2")
    flags = runner.distillation_flags("TEACHER")
    argv = runner.train_argv("JOB", "serial", flags, source=["--targets", "TARGETS"])
    assert argv[:2] == ["--targets", "TARGETS"] and "--train" not in argv
    assert flags == ["--student", "dbof-small", "--view", demo.VIEW, "--teacher-dir", "TEACHER",
                     "--rep-weight", "0.5", "--pred-weight", "2.0"]  # fmt: skip
    parsed = task.build_parser().parse_args(argv)
    assert parsed.targets == "TARGETS" and parsed.teacher_dir == "TEACHER" and parsed.view == demo.VIEW
    assert (parsed.rep_weight, parsed.pred_weight, parsed.mode) == (0.5, 2.0, "serial")


def test_a_step_an_earlier_run_completed_is_announced_as_skipped_and_not_run_again(tmp_path, capsys):
    runner = _demo(tmp_path, "--videos", "30")
    (tmp_path / "demo" / "raw").mkdir(parents=True)
    for partition in ("train", "validate"):
        (tmp_path / "demo" / "raw" / f".{partition}.done").touch()
    runner.synth()
    total = demo.TOTAL_STEPS
    assert capsys.readouterr().out.splitlines() == [
        f"[1/{total}] synth: 30 train videos, 20 classes (already done, skipped)",
        f"[2/{total}] synth: 50 validate videos, 20 classes (already done, skipped)",  # at least 50
    ]
    assert sorted(p.name for p in (tmp_path / "demo" / "raw").iterdir()) == [".train.done", ".validate.done"]


def test_the_real_data_demo_holds_out_the_last_fifth_of_the_shards(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    for i in range(7):
        (shards / f"train{i:04d}.tfrecord").touch()
    (shards / "vocabulary.csv").touch()
    runner = demo.RealVideoLevelDemo(
        demo.build_parser().parse_args(
            ["--workdir", str(tmp_path / "out"), "--real-video-level", str(shards)]
        )
    )
    train, validate = runner.shards()
    assert [p.rsplit("/", 1)[1] for p in validate] == ["train0006.tfrecord"]  # max(1, 7 // 5)
    assert len(train) == 6 and not set(train) & set(validate)
    assert runner.vocabulary() == str(shards / "vocabulary.csv")


def test_the_real_data_demo_refuses_one_shard_or_no_vocabulary_with_one_line(tmp_path, capsys):
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "train0000.tfrecord").touch()
    argv = ["demo", "--workdir", str(tmp_path / "out"), "--real-video-level", str(shards)]
    assert cli.main(argv) == 2
    assert (
        capsys.readouterr().err
        == "fewframes demo: error: no vocabulary.csv beside the shards or their folder; pass --vocabulary\n"
    )
    (tmp_path / "vocabulary.csv").touch()  # beside the shards' folder
    assert cli.main(argv) == 2
    assert capsys.readouterr().err == (
        f"fewframes demo: error: --real-video-level {shards} needs at least 2 .tfrecord shards\n"
    )
    assert not (tmp_path / "out" / "datasets").exists()
