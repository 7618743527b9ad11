"""Training benchmark, quality: GAP of teacher / student / parallel / serial distillation over views.

    .venv/bin/python benchmarks/train_quality.py [--seeds 0,1,2] [--videos 1200] [--epochs 14] \
        [--teacher dbof-small] [--student dbof-small] [--workdir /tmp/fewframes-train-bench]

Synthetic frame-level data (`pipelines.synth`, train and validate partitions
of one seed), preprocessed with the full (teacher) view and a stored every_n:10
view, trained through the real entry point (`trainer.task`): the teacher on every
frame, then for each view the student alone (`student`), and distilled (`parallel`,
and `serial` against the teacher of the same seed). One child process per seed;
the GAP is the job's own eval on the validate partition after the last epoch.
Reported as mean ± sample std over the seeds, with the mean fraction of a video's
frames the view reads (computed from the validate videos' frame counts), and beside
the trained ratios what the same videos allow any model (`benchmarks/ceiling.py`).

Prints Markdown tables for RESULTS.md and writes JSON under --workdir.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # first: this checkout's code, whatever else is installed
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks import ceiling  # noqa: E402
from benchmarks.train_common import DEFAULT_WORKDIR, _synthetic_dataset, _write_json  # noqa: E402
from trainer import inputs  # noqa: E402
from trainer.job_dir import SUMMARY_NAME  # noqa: E402
from trainer.training import loop  # noqa: E402

DEFAULT_VIEWS = "every_n:10,every_n:30,uniform:6,uniform:10"
STORED_VIEW = "every_n:10"  # the compact view the synthetic datasets store beside the full view
GOAL_RATIO = 0.99


def _mean_std(values) -> tuple[float, float]:
    values = [v for v in values if v is not None]
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _pm(values, digits: int = 3) -> str:
    mean, std = _mean_std(values)
    if math.isnan(mean):
        return "—"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _gain(distilled, alone) -> str:
    """Paired difference of a metric (same seed, same data) and in how many seeds it is positive."""
    differences = [d - a for d, a in zip(distilled, alone, strict=True)]
    return f"{_pm(differences)} ({sum(x > 0 for x in differences)}/{len(differences)} > 0)"


def _slug(view: str) -> str:
    return view.replace(":", "")


def _train_job(argv: list[str]) -> dict:
    """One `fewframes train` job in this process (reused when its job dir holds the same run)."""
    import keras

    from trainer import task
    from trainer.config import TrainConfig

    args = task.build_parser().parse_args([*argv, "--verbose", "0"])
    config, checkpoint_dir = task.config_from_args(args, {})
    summary_path = os.path.join(config.job_dir, SUMMARY_NAME)
    config_path = os.path.join(config.job_dir, "config.json")
    if os.path.exists(summary_path) and os.path.exists(config_path):
        with open(config_path) as f:
            previous = TrainConfig.from_json(f.read())
        with open(summary_path) as f:
            summary = json.load(f)
        if previous.to_dict() == config.to_dict() and summary.get("epochs") == config.epochs:
            return summary
    if os.path.exists(config.job_dir):
        shutil.rmtree(config.job_dir)
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):  # "epoch i/n" lines
        summary = loop.train(config, checkpoint_dir, verbose=0)
    keras.backend.clear_session()
    if summary["outcome"] != "completed":
        raise RuntimeError(f"training {config.job_dir} ended: {summary['outcome']}")
    return summary


@dataclasses.dataclass(frozen=True)
class Job:
    name: str
    mode: str
    view: str | None
    variant: str = ""  # name of a loss-weight variant ("" = the defaults)
    flags: tuple[str, ...] = ()


def _variants(specs: list[str]) -> list[tuple[str, list[str]]]:
    out = []
    for spec in specs:
        name, sep, flags = spec.partition(":")
        if not sep or not name.strip():
            raise SystemExit(f"--variant takes NAME:FLAGS, e.g. 'no-rep:--rep-weight 0'; got {spec!r}")
        out.append((name.strip(), flags.split()))
    return out


def _quality_jobs(args) -> list[Job]:
    views = [v.strip() for v in args.views.split(",") if v.strip()]
    jobs = [Job("teacher", "teacher", None)]
    for view in views:
        for mode in ("student", "parallel", "serial"):
            jobs.append(Job(f"{mode}-{_slug(view)}", mode, view))
    variant_views = [v.strip() for v in args.variant_views.split(",") if v.strip()]
    for name, flags in _variants(args.variant):
        for view in variant_views:
            for mode in ("parallel", "serial"):
                jobs.append(Job(f"{mode}-{_slug(view)}-{name}", mode, view, name, tuple(flags)))
    return jobs


def _fraction_read(dataset_dir: str, view_text: str) -> dict:
    """Frames the view selects / frames in the raw video, over a dataset's videos."""
    import numpy as np
    import pyarrow.parquet as pq

    from schemas import features as F
    from schemas.views import View

    view = View.parse(view_text)
    frames = np.concatenate(
        [pq.read_table(p, columns=[F.NUM_FRAMES])[F.NUM_FRAMES].to_numpy() for p in inputs.dataset_files(
            dataset_dir, "parquet")]
    )  # fmt: skip
    selected = np.array([view.num_selected(int(n)) for n in frames], np.float64)
    return {
        "mean_fraction": float(np.mean(selected / frames)),
        "total_fraction": float(selected.sum() / frames.sum()),
        "mean_frames_read": float(selected.mean()),
        "mean_frames": float(frames.mean()),
    }


def quality_seed(args, seed: int) -> None:
    """Child: one seed's data, every job, results.json."""
    import tensorflow as tf

    from pipelines.synth import SynthConfig

    tf.get_logger().setLevel("ERROR")  # Keras's retracing warnings: every job builds new functions
    root = os.path.join(args.workdir, "quality", f"seed{seed}")
    flags = ["--view", STORED_VIEW, "--teacher-view"]
    started = time.time()
    train_fields, validate_fields = ceiling.partitions(seed, args)
    train = _synthetic_dataset(root, "train", train_fields, flags, "tfrecord")
    validate = _synthetic_dataset(root, "validate", validate_fields, flags, "tfrecord,parquet")
    views = sorted({j.view for j in _quality_jobs(args) if j.view})
    fractions = {view: _fraction_read(validate, view) for view in views}
    print(f"seed {seed}: data ready in {time.time() - started:.0f}s", flush=True)
    limits = ceiling.ceiling(SynthConfig(**train_fields), SynthConfig(**validate_fields), views)
    print(
        f"seed {seed}: known-prototype scorer, view / all frames: "
        + ", ".join(f"{view} {limits[view]['ratio']:.3f}" for view in views),
        flush=True,
    )

    base = [
        "--train", train, "--eval", validate, "--epochs", str(args.epochs),
        "--batch-size", str(args.batch_size), "--learning-rate", str(args.learning_rate),
        "--seed", str(seed),
    ]  # fmt: skip
    teacher_dir = os.path.join(root, "jobs", "teacher")
    results = {}
    for job in _quality_jobs(args):
        argv = [*base, "--job-dir", os.path.join(root, "jobs", job.name), "--mode", job.mode]
        if job.mode in ("teacher", "parallel"):
            argv += ["--teacher", args.teacher]
        if job.mode != "teacher":
            argv += ["--student", args.student, "--view", job.view]
        if job.mode == "serial":
            argv += ["--teacher-dir", teacher_dir]
        argv += list(job.flags)
        summary = _train_job(argv)
        metrics = summary["metrics"]
        results[job.name] = {
            **dataclasses.asdict(job),
            "seconds": summary["seconds"],
            "steps": summary["global_step"],
            "teacher_gap": metrics.get("val_teacher_gap"),
            "student_gap": metrics.get("val_student_gap"),
            "teacher_hit_at_1": metrics.get("val_teacher_hit_at_1"),
            "student_hit_at_1": metrics.get("val_student_hit_at_1"),
            "teacher_map": metrics.get("val_teacher_map_nonempty_classes"),
            "student_map": metrics.get("val_student_map_nonempty_classes"),
        }
        shown = (
            results[job.name]["student_gap"] if job.mode != "teacher" else results[job.name]["teacher_gap"]
        )
        shown_map = results[job.name]["student_map" if job.mode != "teacher" else "teacher_map"]
        print(
            f"seed {seed}: {job.name:<28} GAP {shown:.4f}  mAP {shown_map:.4f}  ({summary['seconds']:.0f}s)",
            flush=True,
        )
    _write_json(
        os.path.join(root, "results.json"),
        {
            "seed": seed,
            "fractions": fractions,
            "ceiling": limits,
            "jobs": results,
            "seconds": time.time() - started,
        },
    )


def quality(args, argv: list[str]) -> None:
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    started = time.time()
    per_seed = []
    for seed in seeds:
        command = [sys.executable, os.path.abspath(__file__), *argv, "--child-seed", str(seed)]
        subprocess.run(command, check=True)
        with open(os.path.join(args.workdir, "quality", f"seed{seed}", "results.json")) as f:
            per_seed.append(json.load(f))
    report = quality_report(args, per_seed)
    _write_json(os.path.join(args.workdir, "quality", "summary.json"), per_seed)
    print(f"\nquality sweep: {len(seeds)} seeds in {(time.time() - started) / 60:.1f} min\n")
    print(report)


def quality_report(args, per_seed: list[dict]) -> str:
    jobs = _quality_jobs(args)
    views = [v.strip() for v in args.views.split(",") if v.strip()]
    n = len(per_seed)

    def gaps(name, key="student_gap"):
        return [r["jobs"][name][key] for r in per_seed]

    teacher = gaps("teacher", "teacher_gap")

    def ratios(name):
        return [g / t for g, t in zip(gaps(name), teacher, strict=True)]

    def goal(name):
        values = ratios(name)
        met = sum(v >= GOAL_RATIO for v in values)
        return f"{'yes' if statistics.fmean(values) >= GOAL_RATIO else 'no'} ({met}/{n})"

    lines = [
        f"Teacher `{args.teacher}`, student `{args.student}`; {args.videos} train / {args.eval_videos} "
        f"validate synthetic videos of {args.frames} frames, {args.classes} classes"
        + (f", windows of at least {args.min_window_frames} frames" if args.min_window_frames else "")
        + f", {args.frame_model} frames"
        + (f", frame noise correlated {args.noise_correlation} in time" if args.noise_correlation else "")
        + f"; {args.epochs} epochs, "
        f"batch {args.batch_size}, learning rate {args.learning_rate}; GAP on the validate videos, "
        f"mean ± sample std over {n} seeds ({args.seeds}).",
        "",
        "| view | frames read | teacher GAP | student GAP | parallel GAP | serial GAP "
        "| parallel / teacher | serial / teacher | ≥ 0.99 × teacher (parallel; serial) "
        "| parallel − student | serial − student |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    rows = [(view, "", f"{{}}-{_slug(view)}") for view in views]
    for name, _ in _variants(args.variant):
        for view in [v.strip() for v in args.variant_views.split(",") if v.strip()]:
            rows.append((view, name, f"{{}}-{_slug(view)}-{name}"))
    for view, variant, pattern in rows:
        fraction = statistics.fmean(r["fractions"][view]["mean_fraction"] for r in per_seed)
        label = f"{view}" + (f", {variant}" if variant else "")
        parallel, serial = pattern.format("parallel"), pattern.format("serial")
        student = gaps(f"student-{_slug(view)}")
        lines.append(
            f"| {label} | {fraction:.3f} | {_pm(teacher)} | {_pm(gaps(f'student-{_slug(view)}'))} "
            f"| {_pm(gaps(parallel))} | {_pm(gaps(serial))} | {_pm(ratios(parallel))} "
            f"| {_pm(ratios(serial))} | {goal(parallel)}; {goal(serial)} "
            f"| {_gain(gaps(parallel), student)} | {_gain(gaps(serial), student)} |"
        )
    # mAP over the classes with a positive (`map_nonempty_classes`), paired with GAP: a loss
    # term can raise GAP (the pooled ranking, led by frequent classes) while lowering mAP.
    lines += [
        "",
        "mAP (`map_nonempty_classes`, the job's own evaluation), same jobs:",
        "",
        "| view | teacher mAP | student mAP | parallel mAP | serial mAP | parallel − student "
        "| serial − student |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for view, variant, pattern in rows:
        label = f"{view}" + (f", {variant}" if variant else "")
        parallel, serial = pattern.format("parallel"), pattern.format("serial")
        student = gaps(f"student-{_slug(view)}", "student_map")
        parallel_map, serial_map = gaps(parallel, "student_map"), gaps(serial, "student_map")
        lines.append(
            f"| {label} | {_pm(gaps('teacher', 'teacher_map'))} | {_pm(student)} | {_pm(parallel_map)} "
            f"| {_pm(serial_map)} | {_gain(parallel_map, student)} | {_gain(serial_map, student)} |"
        )
    variants = _variants(args.variant)
    if variants:
        lines += ["", "Variants: " + "; ".join(f"{name} = `{' '.join(flags)}`" for name, flags in variants)]
    lines += _ceiling_lines(per_seed, views, teacher, ratios)
    # Consistency: the teacher trained inside `parallel` must match the teacher-only run.
    parallel_teacher = [
        abs(r["jobs"][j.name]["teacher_gap"] - r["jobs"]["teacher"]["teacher_gap"])
        for r in per_seed
        for j in jobs
        if j.mode == "parallel"
    ]
    seconds = {
        mode: statistics.fmean(r["jobs"][j.name]["seconds"] for r in per_seed for j in jobs if j.mode == mode)
        for mode in ("teacher", "student", "parallel", "serial")
    }
    training_minutes = sum(j["seconds"] for r in per_seed for j in r["jobs"].values()) / 60
    lines += [
        "",
        f"- Teacher GAP inside the parallel runs vs the teacher-only run: largest difference "
        f"{max(parallel_teacher):.2e} (the student's terms must not reach the teacher).",
        "- Mean seconds per job (2 shared cores): "
        + ", ".join(f"{mode} {value:.0f}" for mode, value in seconds.items())
        + f"; all jobs of the sweep {training_minutes:.1f} min of training.",
    ]
    return "\n".join(lines)


def _ceiling_lines(per_seed: list[dict], views: list[str], teacher: list[float], ratios) -> list[str]:
    """The trained ratios beside what the data lets any model reach (`benchmarks/ceiling.py`)."""
    if not all("ceiling" in r for r in per_seed):
        return []  # results written before the ceiling was measured

    def limit(view, key):
        return [r["ceiling"][view][key] for r in per_seed]

    known_all = limit(ceiling.ALL_FRAMES, "gap")
    lines = [
        "",
        "What the same videos allow (`benchmarks/ceiling.py`): the share of the validate "
        "videos' labels whose window holds no frame of the view, and the GAP of a scorer "
        "that knows each class's signal direction and window length, through the view "
        f"against all frames (all frames: {_pm(known_all)}; the trained teacher reaches "
        f"{_pm([t / k for t, k in zip(teacher, known_all, strict=True)])} of it).",
        "",
        "| view | labels with no frame in the view | known-prototype scorer, view / all frames "
        "| parallel / teacher | serial / teacher |",
        "| --- | --- | --- | --- | --- |",
    ]
    for view in views:
        lines.append(
            f"| {view} | {_pm(limit(view, 'unseen_labels'))} | {_pm(limit(view, 'ratio'))} "
            f"| {_pm(ratios(f'parallel-{_slug(view)}'))} | {_pm(ratios(f'serial-{_slug(view)}'))} |"
        )
    return lines


# ===== command line =========================================================================
def build_parser() -> argparse.ArgumentParser:
    q = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("--seeds", default="0,1,2")
    ceiling.add_data_arguments(q)
    q.add_argument("--epochs", type=int, default=14)
    q.add_argument("--batch-size", type=int, default=32)
    q.add_argument("--learning-rate", type=float, default=3e-3)
    q.add_argument("--teacher", default="dbof-small", help="teacher preset (hlstm for the paper's scale)")
    q.add_argument("--student", default="dbof-small", help="student preset (hlstm-student for the paper's)")
    q.add_argument("--views", default=DEFAULT_VIEWS)
    q.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:FLAGS",
        help="extra parallel+serial rows with other train flags, e.g. 'no-rep:--rep-weight 0' (repeatable)",
    )
    q.add_argument("--variant-views", default="every_n:10", help="views the variants run on")
    q.add_argument("--child-seed", type=int, default=None, help=argparse.SUPPRESS)
    q.add_argument("--workdir", default=DEFAULT_WORKDIR)
    return q


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.child_seed is not None:
        quality_seed(args, args.child_seed)
    else:
        quality(args, argv)


if __name__ == "__main__":
    main()
