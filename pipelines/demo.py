"""`fewframes demo`: the whole story on generated data, on this machine, no download.

    fewframes demo --workdir demo_out [--videos 1500] [--classes 30] [--epochs 6] [--restart]

Steps (each skipped when a previous run completed it, so re-running resumes):

1. synth: frame-level train and validate shards of one seed (same classes);
2. preprocess (Beam): train and validate datasets with the student view every_n:10
   plus the full teacher view;
3. train the teacher on every frame (`--mode teacher`);
4. train the student on every 10th frame without distillation (`--mode student`);
5. run the frozen teacher once over the training set (`fewframes teacher-targets`, Beam):
   a compact dataset of the student view plus the teacher's predictions and
   representation per video;
6. train the student against those targets (`--mode serial --targets`), which neither
   loads the teacher nor reads the full view;
7. train a coarser student on every 30th frame, and fit a cascade (`fewframes cascade
   fit`) every_n:30 student -> distilled every_n:10 student -> teacher on the first
   validate shard: each video stops at the first stage sure of it;
8. evaluate the three exports and the cascade on the raw validate shards with the Beam
   job (the cascade's calibration shard among them: a held-out measure is
   benchmarks/cascade.py's);
9. compare them (bootstrap intervals over videos) and print the table and the path
   of `report.html`.

Sizes are small model configurations (`*-small` presets) so that the run takes
minutes on a 2-core laptop; the flags scale it up.
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import shutil
import sys
import time

from pipelines import evaluate
from pipelines.runner import UsageError
from trainer.export import METADATA_NAME
from trainer.job_dir import EXPORT_DIR

VIEW = "every_n:10"
COARSE_VIEW = "every_n:30"  # the cascade's first stage (nests in VIEW)
CASCADE_TARGET = 0.99  # the cascade keeps >= this share of the teacher's calibration GAP
SEED = 7  # the default --seed
MIN_FREE_DISK_GB = 2.0
MIN_MEMORY_GB = 4.0
# synth x2, preprocess x2, train x2, teacher-targets, train x2, cascade fit, evaluate x4, compare
TOTAL_STEPS = 15


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fewframes demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", default="demo_out", help="where everything is written")
    p.add_argument("--videos", type=int, default=1200, help="training videos (validate gets a third)")
    p.add_argument("--classes", type=int, default=20)
    p.add_argument("--frames", default="30:300", help="frames per video, MIN:MAX")
    # The CPU-sized H-LSTM pair: in benchmarks/train_quality.py distillation at every_n:10 beat the
    # student alone in every seed with it (with dbof-small it did not; see RESULTS.md).
    p.add_argument("--teacher", default="hlstm-small", help="teacher preset")
    p.add_argument("--student", default="hlstm-small", help="student preset")
    p.add_argument("--epochs", type=int, default=14)
    p.add_argument("--learning-rate", type=float, default=0.003)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--rep-weight", type=float, default=1.0, help="L_rep weight of the distilled student")
    p.add_argument("--pred-weight", type=float, default=1.0, help="L_pred weight of the distilled student")
    p.add_argument(
        "--seed", type=int, default=SEED, help="seed of the generated videos and of every training job"
    )
    p.add_argument("--bootstrap", type=int, default=500, help="bootstrap resamples of compare")
    p.add_argument("--restart", action="store_true", help="delete the workdir's earlier run first")
    p.add_argument(
        "--real-video-level",
        metavar="DIR",
        help="instead: real YouTube-8M video-level shards in DIR: preprocess -> train MoE -> evaluate",
    )
    p.add_argument(
        "--vocabulary", help="with --real-video-level: vocabulary.csv (default: beside the shards)"
    )
    return p


def check_machine(workdir: str) -> None:
    """A clear message instead of a failure halfway when disk or memory is short."""
    probe = workdir
    while not os.path.exists(probe):
        probe = os.path.dirname(os.path.abspath(probe))
    free = shutil.disk_usage(probe).free / 2**30
    if free < MIN_FREE_DISK_GB:
        raise UsageError(f"{probe} has {free:.1f} GB free; the demo needs {MIN_FREE_DISK_GB:.0f} GB")
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return
    if memory < MIN_MEMORY_GB:
        raise UsageError(f"this machine has {memory:.1f} GB of memory; the demo needs {MIN_MEMORY_GB:.0f} GB")


class Demo:
    TOTAL = TOTAL_STEPS

    def __init__(self, args):
        self.args = args
        self.root = os.path.abspath(args.workdir)
        self.step = 0

    def path(self, *parts) -> str:
        return os.path.join(self.root, *parts)

    def announce(self, text: str, done: bool) -> None:
        self.step += 1
        state = "already done, skipped" if done else "running"
        print(f"[{self.step}/{self.TOTAL}] {text} ({state})", flush=True)

    # ----- steps ---------------------------------------------------------------------------
    def synth(self) -> None:
        from pipelines.synth import SynthConfig, generate

        low, high = (int(x) for x in self.args.frames.split(":"))
        for partition, videos in (("train", self.args.videos), ("validate", max(50, self.args.videos // 3))):
            marker = self.path("raw", f".{partition}.done")
            self.announce(
                f"synth: {videos} {partition} videos, {self.args.classes} classes", os.path.exists(marker)
            )
            if os.path.exists(marker):
                continue
            config = SynthConfig(
                kind="frame",
                videos=videos,
                shards=2,
                classes=self.args.classes,
                seed=self.args.seed,
                min_frames=low,
                max_frames=high,
                partition=partition,
            )
            generate(self.path("raw"), config, progress=True)
            open(marker, "w").close()

    def preprocess(self) -> None:
        from pipelines import preprocess

        for partition in ("train", "validate"):
            output = self.path("datasets", partition)
            done = os.path.exists(os.path.join(output, "manifest.json"))
            self.announce(f"preprocess (Beam): {partition} -> {VIEW} + full view", done)
            if done:
                continue
            summary = preprocess.run(
                [
                    "--input",
                    self.path("raw", f"{partition}*.tfrecord"),
                    "--output",
                    output,
                    "--format",
                    "parquet",
                    "--view",
                    VIEW,
                    "--teacher-view",
                    "--num-classes",
                    str(self.args.classes),
                    "--partition",
                    partition,
                    "--overwrite",
                ]
            )
            print(f"      {summary['records_written']} videos written, {summary['records_failed']} failed")

    def train_argv(
        self,
        job: str,
        mode: str,
        extra: list[str],
        datasets: tuple[str, str] | None = None,
        source: list[str] | None = None,
    ) -> list[str]:
        """The `fewframes train` command line of a demo job; `source` replaces `--train
        DATASET` (e.g. `--targets DIR`), and `extra` comes last, so it overrides."""
        train, validate = datasets or (self.path("datasets", "train"), self.path("datasets", "validate"))
        return [
            *(source or ["--train", train]),
            "--eval",
            validate,
            "--job-dir",
            job,
            "--mode",
            mode,
            "--epochs",
            str(self.args.epochs),
            "--batch-size",
            str(self.args.batch_size),
            "--learning-rate",
            str(self.args.learning_rate),
            "--seed",
            str(self.args.seed),
            *extra,
        ]

    def distillation_flags(self, teacher_job: str) -> list[str]:
        """The distilled student's flags beyond the source: student, view, teacher, loss weights."""
        return [
            "--student",
            self.args.student,
            "--view",
            VIEW,
            "--teacher-dir",
            teacher_job,
            "--rep-weight",
            str(self.args.rep_weight),
            "--pred-weight",
            str(self.args.pred_weight),
        ]

    def train(
        self,
        name: str,
        mode: str,
        extra: list[str],
        datasets: tuple[str, str] | None = None,
        source: list[str] | None = None,
    ) -> str:
        from trainer import task

        job = self.path("jobs", name)
        done = os.path.exists(os.path.join(job, EXPORT_DIR, METADATA_NAME))
        self.announce(f"train {name} (--mode {mode})", done)
        if done:
            return job
        argv = self.train_argv(job, mode, extra, datasets, source)
        summary = task.train_from_argv(argv, verbose=2 if sys.stdout.isatty() else 0)
        if summary["outcome"] != "completed":
            raise RuntimeError(f"training {name} stopped: {summary['outcome']}")
        return job

    def teacher_targets(self, teacher: str) -> str:
        from pipelines import teacher_targets

        output = self.path("datasets", "train-targets")
        done = os.path.exists(os.path.join(output, "manifest.json"))
        self.announce("teacher-targets (Beam): the frozen teacher over the train set, once", done)
        if not done:
            started = time.perf_counter()
            summary = teacher_targets.run(
                [
                    "--teacher",
                    teacher,
                    "--input",
                    self.path("datasets", "train"),
                    "--output",
                    output,
                    "--format",
                    "parquet",
                    "--overwrite",
                ]
            )
            summary_text = teacher_targets.format_summary(summary, time.perf_counter() - started)
            print("      " + summary_text.replace("\n", "\n      "))
            if not summary["balanced"]:
                raise RuntimeError(f"teacher-targets did not account for every video: {output}")
        return output

    def cascade(self, stages: list[str]) -> str:
        """Fit the cascade on the first raw validate shard (`fewframes cascade fit`)."""
        from pipelines import cascade

        output = self.path("cascade")
        done = os.path.exists(os.path.join(output, "cascade.json"))
        calibration = sorted(glob.glob(self.path("raw", "validate*.tfrecord")))[0]
        self.announce(
            f"cascade fit (Beam): {COARSE_VIEW} -> {VIEW} -> all on {os.path.basename(calibration)}", done
        )
        if not done:
            argv = [arg for stage in stages for arg in ("--stage", stage)]
            argv += [
                "--input",
                calibration,
                "--target",
                str(CASCADE_TARGET),
                "--output",
                output,
                "--overwrite",
            ]
            summary = cascade.fit(argv)
            print("      " + cascade.format_fit(summary).replace("\n", "\n      "))
        return output

    def evaluate_argv(
        self, job: str, output: str, inputs: str | None = None, extra: tuple[str, ...] = ()
    ) -> list[str]:
        """The `fewframes evaluate` command line of a demo evaluation: the raw validate
        shards unless `inputs`, and the synthetic shards' vocabulary.csv (names and
        verticals in predictions and reports) unless `extra` names a vocabulary."""
        from pipelines.synth import VOCABULARY_FILE

        vocabulary = [] if "--vocabulary" in extra else ["--vocabulary", self.path("raw", VOCABULARY_FILE)]
        return [
            "--model",
            job,
            "--input",
            inputs or self.path("raw", "validate*.tfrecord"),
            "--output",
            output,
            "--overwrite",
            *vocabulary,
            *extra,
        ]

    def evaluate(self, name: str, job: str, inputs: str | None = None, extra: tuple[str, ...] = ()) -> str:

        output = self.path("eval", name)
        done = os.path.exists(os.path.join(output, "metrics.json"))
        self.announce(f"evaluate {name} (Beam) on the raw validate shards", done)
        if not done:
            summary = evaluate.run(self.evaluate_argv(job, output, inputs, extra))
            print("      " + evaluate.format_summary(summary).replace("\n", "\n      "))
        return output

    def run(self) -> int:
        args = self.args
        started = time.perf_counter()
        self.synth()
        self.preprocess()
        teacher = self.train("teacher", "teacher", ["--teacher", args.teacher])
        student = self.train("student", "student", ["--student", args.student, "--view", VIEW])
        # Offline distillation: the teacher runs once here instead of at every student
        # step, and the distilled student reads only the compact student view.
        targets = self.teacher_targets(teacher)
        distilled = self.train(
            "student-distilled", "serial", self.distillation_flags(teacher), source=["--targets", targets]
        )
        coarse = self.train("student-30", "student", ["--student", args.student, "--view", COARSE_VIEW])
        fitted = self.cascade([coarse, distilled, teacher])
        runs = [
            self.evaluate(name, job)
            for name, job in (
                ("teacher", teacher),
                ("student", student),
                ("student-distilled", distilled),
                ("cascade", fitted),
            )
        ]
        print(
            f"[{TOTAL_STEPS}/{TOTAL_STEPS}] compare: {len(runs)} evaluations, "
            f"{args.bootstrap} bootstrap resamples",
            flush=True,
        )
        from pipelines import compare

        code = compare.run(
            [
                *runs,
                "--output",
                self.path("compare"),
                "--labels",
                "teacher,student,student-distilled,cascade",
                "--bootstrap",
                str(args.bootstrap),
                "--overwrite",
            ]
        )
        if code != 0:
            return code
        print(f"\nreports: {self.path('compare', 'report.html')} and {self.path('eval', '*', 'report.html')}")
        print(
            f"demo finished in {time.perf_counter() - started:.0f} s; TensorBoard: "
            f"tensorboard --logdir {self.path('jobs')}"
        )
        return 0


class RealVideoLevelDemo(Demo):
    """Real video-level shards: preprocess -> train MoE -> evaluate -> named predictions.

    The shards are split by file: the last fifth (at least one file) is evaluated, the
    rest trains. Labels and names are the real 3,862-class vocabulary.
    """

    TOTAL = 4  # preprocess x2, train, evaluate

    def shards(self) -> tuple[list[str], list[str]]:
        files = sorted(glob.glob(os.path.join(self.args.real_video_level, "*.tfrecord")))
        if len(files) < 2:
            raise UsageError(
                f"--real-video-level {self.args.real_video_level} needs at least 2 .tfrecord shards"
            )
        held = max(1, len(files) // 5)
        return files[:-held], files[-held:]

    def vocabulary(self) -> str:
        candidates = (
            [self.args.vocabulary]
            if self.args.vocabulary
            else [
                os.path.join(self.args.real_video_level, "vocabulary.csv"),
                os.path.join(os.path.dirname(os.path.abspath(self.args.real_video_level)), "vocabulary.csv"),
            ]
        )
        for path in candidates:
            if path and os.path.exists(path):
                return path
        raise UsageError("no vocabulary.csv beside the shards or their folder; pass --vocabulary")

    def run(self) -> int:
        from pipelines import preprocess

        started = time.perf_counter()
        vocabulary = self.vocabulary()
        splits = dict(zip(("train", "validate"), self.shards(), strict=True))
        for partition, files in splits.items():
            output = self.path("datasets", partition)
            done = os.path.exists(os.path.join(output, "manifest.json"))
            self.announce(f"preprocess (Beam): {len(files)} real video-level shards -> {partition}", done)
            if not done:
                summary = preprocess.run(
                    [
                        "--input",
                        ",".join(files),
                        "--output",
                        output,
                        "--format",
                        "parquet",
                        "--partition",
                        partition,
                        "--overwrite",
                    ]
                )
                print(
                    f"      {summary['records_written']} videos written, {summary['records_failed']} failed"
                )
        job = self.train(
            "video-moe",
            "teacher",
            ["--teacher", "video-moe", "--vocabulary", vocabulary],
            (self.path("datasets", "train"), self.path("datasets", "validate")),
        )
        output = self.evaluate(
            "video-moe", job, ",".join(splits["validate"]), ("--vocabulary", vocabulary, "--jsonl")
        )
        with open(os.path.join(output, "predictions.jsonl")) as f:
            first = json.loads(f.readline())
        shown = ", ".join(f"{p['name']} ({p['score']:.2f})" for p in first["predictions"][:5])
        print(f"\nvideo {first['id']}: {shown}")
        print(
            f"predictions: {os.path.join(output, 'predictions.csv')} and predictions.jsonl (names, verticals)"
        )
        print(f"report: {os.path.join(output, 'report.html')}")
        print(f"demo finished in {time.perf_counter() - started:.0f} s")
        return 0


def run(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.restart and os.path.exists(args.workdir):
        shutil.rmtree(args.workdir)
    check_machine(args.workdir)
    os.makedirs(args.workdir, exist_ok=True)
    if args.real_video_level:
        return RealVideoLevelDemo(args).run()
    return Demo(args).run()


def main(argv=None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        return run(argv)
    except UsageError as error:
        print(f"fewframes demo: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    from trainer.startup import quiet_startup

    sys.exit(main(quiet_startup(sys.argv[1:])))
