"""Training benchmarks: distillation quality, FLOPs and model time, end-to-end time, real data.

    .venv/bin/python benchmarks/train.py quality [--seeds 0,1,2] [--videos 1200] [--epochs 14] \
        [--teacher dbof-small] [--student dbof-small] [--workdir /tmp/fewframes-train-bench]
    .venv/bin/python benchmarks/train.py speed [--reps 5] [--pairs hlstm,dbof,netvlad,nextvlad,mean] \
        [--params JSON]
    .venv/bin/python benchmarks/train.py e2e [--videos 320] [--pairs hlstm,dbof,mean]
    .venv/bin/python benchmarks/train.py real [--data ../shared/data/yt8m-v2-video-sample] \
        [--epochs 5,10,20,40]
    .venv/bin/python benchmarks/train.py throughput [--data DIR] [--repeat K] [--pairs hlstm,dbof] \
        [--epochs 3] [--batch-size 64]
    .venv/bin/python benchmarks/train.py all   (quality, speed, e2e and real, default settings)

quality: synthetic frame-level data (`pipelines.synth`, train and validate partitions
  of one seed), preprocessed with the full (teacher) view and a stored every_n:10
  view, trained through the real entry point (`trainer.task`): the teacher on every
  frame, then for each view the student alone (`student`), and distilled (`parallel`,
  and `serial` against the teacher of the same seed). One child process per seed;
  the GAP is the job's own eval on the validate partition after the last epoch.
  Reported as mean ± sample std over the seeds, with the mean fraction of a video's
  frames the view reads (computed from the validate videos' frame counts), and beside
  the trained ratios what the same videos allow any model (`benchmarks/ceiling.py`).
speed: analytic multiply-adds per video from the model configs (`flop_count`), and
  model time per video at batch 64 on decoded float32 input of 300-frame videos: the
  teacher on all 300 frames against the student on its view, side by side in one
  process, repetitions interleaved, medians compared. For models without an LSTM the
  time is also split into normalization, aggregator (per frame and per video) and head.
e2e: read + parse + model from TFRecord datasets of synthetic 300-frame videos: the
  teacher from the full-view dataset against the student from a compact every_n:10
  dataset (and from the full dataset), videos/s through `trainer.inputs` + the model.
real: the video-level logistic and MoE trained (`trainer.task`, teacher mode) on the real
  sample shards validate0000-0015 and evaluated on validate0016-0019.
throughput: training examples/s through the real entry point (`trainer.task`) on the
  backend KERAS_BACKEND selects, for each pair's teacher, student alone (every_n:10 cut
  from the full view) and parallel jobs, from a Parquet dataset of 300-frame videos;
  with GPU utilisation sampled by nvidia-smi where there is one. The first epoch (it
  compiles) is reported apart. Needs no TensorFlow when --data is given, so it also
  runs on a JAX or PyTorch GPU machine; --repeat K lists each Parquet file K times (a
  dataset of K x the videos without K x the bytes on disk), for machines that can only
  be sent a small dataset. The input alone (Parquet -> numpy batches, no model) is timed
  too, for each --input-workers setting, to tell an input-bound job from a model-bound one.

Each part prints Markdown tables for RESULTS.md and writes JSON under --workdir.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import glob
import itertools
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks import ceiling  # noqa: E402

DEFAULT_WORKDIR = "/tmp/fewframes-train-bench"
DEFAULT_VIEWS = "every_n:10,every_n:30,uniform:6,uniform:10"
STORED_VIEW = "every_n:10"  # the compact view the synthetic datasets store beside the full view
GOAL_RATIO = 0.99
NUM_CLASSES = 3862
INPUT_DIM = 1152  # rgb 1024 + audio 128


# ===== shared helpers =======================================================================
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


def _stamp_matches(path: str, stamp: dict) -> bool:
    if not os.path.exists(path):
        return False
    with open(path) as f:
        return json.load(f) == stamp


def _write_json(path: str, data) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
    os.replace(path + ".tmp", path)


def _preprocess(inputs: str, output: str, num_classes: int, formats: str, extra=()) -> dict:
    from pipelines import preprocess

    return preprocess.run(
        [
            "--input",
            inputs,
            "--output",
            output,
            "--num-classes",
            str(num_classes),
            "--format",
            formats,
            "--num-shards",
            "4",
            "--overwrite",
            *extra,
        ]
    )


def _synthetic_dataset(root: str, name: str, synth: dict, preprocess_flags: list[str], formats: str) -> str:
    """Generate synthetic shards and preprocess them into ROOT/NAME (reused when unchanged)."""
    from pipelines.synth import SynthConfig, generate

    output = os.path.join(root, name)
    stamp = {"synth": synth, "preprocess": preprocess_flags, "formats": formats}
    stamp_path = os.path.join(root, f"{name}.stamp.json")
    if _stamp_matches(stamp_path, stamp) and os.path.exists(os.path.join(output, "manifest.json")):
        return output
    raw_dir = os.path.join(root, f"raw-{name}")
    shutil.rmtree(raw_dir, ignore_errors=True)
    config = SynthConfig(**synth)
    summary = generate(raw_dir, config, progress=False)
    print(
        f"  generated {summary.videos} {config.partition} videos, "
        f"{summary.frames / summary.videos:.0f} frames mean, in {summary.seconds:.0f}s",
        flush=True,
    )
    _preprocess(
        os.path.join(raw_dir, f"{config.partition}*.tfrecord"),
        output,
        config.classes,
        formats,
        ["--no-duplicate-check", *preprocess_flags],
    )
    shutil.rmtree(raw_dir, ignore_errors=True)
    _write_json(stamp_path, stamp)
    return output


def _train_job(argv: list[str]) -> dict:
    """One `fewframes train` job in this process (reused when its job dir holds the same run)."""
    import keras

    from trainer import task
    from trainer.config import TrainConfig

    args = task.build_parser().parse_args([*argv, "--verbose", "0"])
    config, checkpoint_dir = task.config_from_args(args, {})
    summary_path = os.path.join(config.job_dir, task.SUMMARY_NAME)
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
        summary = task.train(config, checkpoint_dir, verbose=0)
    keras.backend.clear_session()
    if summary["outcome"] != "completed":
        raise RuntimeError(f"training {config.job_dir} ended: {summary['outcome']}")
    return summary


# ===== quality ==============================================================================
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
    from trainer.data import dataset_files

    view = View.parse(view_text)
    frames = np.concatenate(
        [pq.read_table(p, columns=[F.NUM_FRAMES])[F.NUM_FRAMES].to_numpy() for p in dataset_files(
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
        command = [sys.executable, os.path.abspath(__file__), "quality", *argv, "--child-seed", str(seed)]
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


# ===== FLOPs ================================================================================
def flop_count(spec, num_frames: int, input_dim: int = INPUT_DIM, num_classes: int = NUM_CLASSES) -> dict:
    """Analytic multiply-adds per video, split into per-frame and per-video parts.

    Counts the multiply-adds of every matmul (dense layers, LSTM gates, VLAD sums) and
    one operation per element for the reductions over frames (mean/max pooling, the
    l2 norm of each frame); activations, softmaxes and masks are left out (each is a
    few operations per output element, far below the matmuls except where noted).
    Returns {"per_frame": {...}, "per_video": {...}, "total": multiply-adds}; one
    FLOP = 2 multiply-adds.
    """
    agg, head = spec.aggregator_config(), spec.head_config()
    D, T = input_dim, num_frames
    frame: dict[str, float] = {"l2 normalization": 2 * D * T}
    video: dict[str, float] = {}

    def lstm_stack(units, layers, width):
        macs = 0
        for _ in range(layers):
            macs += 4 * units * (width + units)
            width = units
        return macs

    def hidden(width, config, gating_reduction=1):
        if not config.hidden_size:
            return width
        video["hidden layer"] = width * config.hidden_size
        if config.gating:
            h = config.hidden_size
            if gating_reduction > 1:
                video["context gating"] = 2 * h * (h // gating_reduction)
            else:
                video["context gating"] = h * h
        return config.hidden_size

    name = spec.aggregator
    if name in ("mean", "max"):
        frame[f"{name} pooling"] = D * T
        rep = D
    elif name == "video":
        rep = D
    elif name == "dbof":
        frame["cluster projection"] = D * agg.cluster_size * T
        frame["pooling"] = agg.cluster_size * T
        rep = hidden(agg.cluster_size, agg)
    elif name == "lstm":
        frame["LSTM steps"] = lstm_stack(agg.units, agg.num_layers, D) * T
        rep = agg.output_dim(D)
    elif name == "hlstm":
        chunks = -(-T // agg.chunk_size)
        # Padded steps of the last chunk are computed (masked, not skipped).
        frame["frame-level LSTM"] = lstm_stack(agg.units, agg.num_layers, D) * chunks * agg.chunk_size
        state = agg.output_dim(D)
        frame["chunk-level LSTM"] = lstm_stack(agg.units, agg.num_layers, state) * chunks
        rep = state
    elif name == "netvlad":
        K = agg.clusters
        frame["soft assignment"] = D * K * T
        frame["VLAD sums"] = K * D * T
        video["residuals + normalizations"] = 3 * K * D
        rep = hidden(K * D, agg)
    elif name == "nextvlad":
        K, G, wide = agg.clusters, agg.groups, agg.expansion * D
        group_dim = agg.group_dim(D)
        frame["expansion"] = D * wide * T
        frame["attention"] = wide * G * T
        frame["soft assignment"] = wide * G * K * T
        frame["VLAD sums"] = K * wide * T
        video["residuals + normalizations"] = 2 * K * group_dim
        rep = hidden(K * group_dim, agg, agg.gating_reduction)
    else:
        raise ValueError(f"no FLOP count for aggregator {name!r}")

    head_macs = 0
    if head.input_context_gating:
        head_macs += rep * rep
    if head.hidden_size:
        head_macs += rep * head.hidden_size
        rep = head.hidden_size
    if spec.head == "moe":
        head_macs += rep * num_classes * (2 * head.num_mixtures + 1)
    else:
        head_macs += rep * num_classes
    if head.context_gating:
        head_macs += num_classes * num_classes
    video[f"{spec.head} head"] = head_macs
    total = sum(frame.values()) + sum(video.values())
    return {"per_frame": frame, "per_video": video, "total": total}


# ===== speed: model time ====================================================================
SPEED_PAIRS = {
    "hlstm": ("H-LSTM (paper)", "hlstm", "hlstm-student"),
    "dbof": ("DBoF", "dbof", "dbof"),
    "netvlad": ("NetVLAD", "netvlad", "netvlad"),
    "nextvlad": ("NeXtVLAD", "nextvlad", "nextvlad"),
    "mean": ("mean-logistic", "mean-logistic", "mean-logistic"),
    "lstm": ("LSTM (starter)", "lstm", "lstm"),
}
LSTM_AGGREGATORS = ("lstm", "hlstm")


def _pairs(text: str) -> list[tuple[str, str, str, str]]:
    out = []
    for key in (k.strip() for k in text.split(",") if k.strip()):
        if key in SPEED_PAIRS:
            out.append((key, *SPEED_PAIRS[key]))
        elif "/" in key:  # TEACHER/STUDENT presets
            teacher, student = key.split("/", 1)
            out.append((key, key, teacher, student))
        else:
            raise SystemExit(f"unknown pair {key!r}: one of {', '.join(SPEED_PAIRS)} or TEACHER/STUDENT")
    return out


def _decoded_frames(batch: int, frames: int, seed: int = 0):
    """Random quantized frames, dequantized as a dataset stores them, as float32."""
    import numpy as np

    from schemas.quantization import dequantize

    rng = np.random.default_rng(seed)
    return dequantize(rng.integers(0, 256, (batch, frames, INPUT_DIM), dtype=np.uint8)).astype(np.float32)


def _timed(fn, *inputs) -> float:
    start = time.perf_counter()
    out = fn(*inputs)
    (out if not isinstance(out, dict) else next(iter(out.values()))).numpy()
    return time.perf_counter() - start


def _classifier(preset: str, width: int, params: dict | None = None):
    """A preset's classifier, with `params` overrides as `--teacher-params` takes them."""
    from trainer.config import ModelChoice
    from trainer.distill import FramesClassifier

    params = params or {}
    choice = ModelChoice(preset, params.get("aggregator", {}), params.get("head", {}))
    return FramesClassifier(choice.spec(), NUM_CLASSES, INPUT_DIM).build_on(width)


def speed(args) -> None:
    import keras
    import numpy as np
    import tensorflow as tf

    from schemas.views import View

    view = View.parse(args.view)
    frames = args.frames
    full = _decoded_frames(args.batch_size, frames)
    lengths = np.full(args.batch_size, frames, np.int32)
    cut, cut_lengths = view.gather_padded(full, lengths)
    inputs = {
        "teacher": (tf.constant(full), tf.sequence_mask(lengths, full.shape[1], tf.float32)),
        "student": (tf.constant(cut), tf.sequence_mask(cut_lengths, cut.shape[1], tf.float32)),
    }
    print(
        f"speed: batch {args.batch_size}, {frames}-frame videos; teacher {full.shape[1]} frames, "
        f"student {view} = {cut.shape[1]} frames; {args.reps} interleaved repetitions; "
        f"{tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()} threads",
        flush=True,
    )
    results = {}
    params = json.loads(args.params)
    for key, label, teacher_preset, student_preset in _pairs(args.pairs):
        if params:
            label = f"{label} with {json.dumps(params)}"
        models = {
            "teacher": _classifier(teacher_preset, full.shape[1], params),
            "student": _classifier(student_preset, cut.shape[1], params),
        }
        flops = {
            "teacher": flop_count(models["teacher"].spec, full.shape[1]),
            "student": flop_count(models["student"].spec, cut.shape[1]),
        }
        functions = {}
        for role, model in models.items():
            functions[role, "model"] = (
                tf.function(lambda f, m, model=model: model({"frames": f, "mask": m})["predictions"]),
                inputs[role],
            )
            if model.spec.aggregator not in LSTM_AGGREGATORS:
                # Components: normalization, aggregator (all frames, and one frame = its
                # per-video part), head.
                f, m = inputs[role]
                normalized = model.normalization(f, m)
                representation = model.classifier.aggregator(normalized, m)
                functions[role, "normalization"] = (tf.function(model.normalization), (f, m))
                functions[role, "aggregator"] = (tf.function(model.classifier.aggregator), (normalized, m))
                functions[role, "aggregator 1 frame"] = (
                    tf.function(model.classifier.aggregator),
                    (normalized[:, :1], m[:, :1]),
                )
                functions[role, "head"] = (tf.function(model.classifier.head), (representation,))
        for fn, fn_inputs in functions.values():  # trace and warm up
            for _ in range(args.warmup):
                _timed(fn, *fn_inputs)
        times = {name: [] for name in functions}
        for _ in range(args.reps):
            for name, (fn, fn_inputs) in functions.items():
                times[name].append(_timed(fn, *fn_inputs))
        medians = {f"{role}/{part}": statistics.median(t) for (role, part), t in times.items()}
        ratios = [t / s for t, s in zip(times["teacher", "model"], times["student", "model"], strict=True)]
        results[key] = {
            "label": label,
            "teacher": teacher_preset,
            "student": student_preset,
            "flops": flops,
            "median_seconds_per_batch": medians,
            "all_seconds": {f"{role}/{part}": t for (role, part), t in times.items()},
            "ratio_of_medians": medians["teacher/model"] / medians["student/model"],
            "paired_ratios": ratios,
        }
        print(
            f"{label}: teacher {medians['teacher/model'] * 1e3:.1f} ms/batch, student "
            f"{medians['student/model'] * 1e3:.1f} ms/batch, ratio {results[key]['ratio_of_medians']:.2f} "
            f"(paired {min(ratios):.2f}-{max(ratios):.2f})",
            flush=True,
        )
        del models, functions
        keras.backend.clear_session()
    _write_json(os.path.join(args.workdir, "speed", "results.json"), results)
    print()
    print(speed_report(args, results))


def speed_report(args, results: dict) -> str:
    batch = args.batch_size
    lines = [
        f"Analytic cost (GFLOPs, 1 multiply-add = 2 FLOPs) and measured model time per video "
        f"at batch {batch} on decoded float32 input, {args.frames}-frame videos, teacher on all frames, "
        f"student on {args.view}; median of {args.reps} interleaved repetitions.",
        "",
        "| model (teacher → student) | GFLOPs/video teacher | student | FLOP ratio "
        "| ms/video teacher | student | **time ratio** (paired min–max) | GFLOP/s teacher / student |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results.values():
        med = r["median_seconds_per_batch"]
        t_flops, s_flops = 2 * r["flops"]["teacher"]["total"], 2 * r["flops"]["student"]["total"]
        t_ms, s_ms = med["teacher/model"] / batch * 1e3, med["student/model"] / batch * 1e3
        pair = r["teacher"] if r["teacher"] == r["student"] else f"{r['teacher']} → {r['student']}"
        lines.append(
            f"| {r['label']} (`{pair}`) | {t_flops / 1e9:.3f} | {s_flops / 1e9:.3f} "
            f"| {t_flops / s_flops:.2f} | {t_ms:.2f} | {s_ms:.2f} "
            f"| **{r['ratio_of_medians']:.2f}** ({min(r['paired_ratios']):.2f}–"
            f"{max(r['paired_ratios']):.2f}) "
            f"| {t_flops / t_ms / 1e6:.1f} / {s_flops / s_ms / 1e6:.1f} |"
        )
    pooled = [r for r in results.values() if "student/head" in r["median_seconds_per_batch"]]
    if pooled:
        lines += [
            "",
            "Where the time goes (ms per video, medians; per-video part = aggregator on 1 frame + head):",
            "",
            "| model | role | normalization | aggregator | of which per-video | head | sum of parts "
            "| whole model | per-frame share (time) | per-frame share (FLOPs) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in pooled:
            med = r["median_seconds_per_batch"]
            for role in ("teacher", "student"):
                part = {k.split("/", 1)[1]: v / batch * 1e3 for k, v in med.items() if k.startswith(role)}
                fixed = part["aggregator 1 frame"] + part["head"]
                per_frame = part["normalization"] + max(part["aggregator"] - part["aggregator 1 frame"], 0.0)
                parts_sum = part["normalization"] + part["aggregator"] + part["head"]
                flops = r["flops"][role]
                flop_share = sum(flops["per_frame"].values()) / flops["total"]
                lines.append(
                    f"| {r['label']} | {role} | {part['normalization']:.3f} | {part['aggregator']:.3f} "
                    f"| {part['aggregator 1 frame']:.3f} | {part['head']:.3f} | {parts_sum:.3f} "
                    f"| {part['model']:.3f} | {per_frame / (per_frame + fixed):.0%} | {flop_share:.0%} |"
                )
    lines += ["", "FLOP breakdown per video (GFLOPs; per-frame parts at the role's frame count):", ""]
    for r in results.values():
        for role in ("teacher", "student"):
            f = r["flops"][role]
            items = {**f["per_frame"], **f["per_video"]}
            text = ", ".join(f"{name} {2 * v / 1e9:.4g}" for name, v in items.items())
            lines.append(f"- {r['label']} {role} (`{r[role]}`): {text}")
    return "\n".join(lines)


# ===== e2e: read + parse + model ============================================================
E2E_SOURCES = (
    "teacher, full dataset",
    "student, compact dataset",
    "student, full dataset (stored view)",
    "student, full dataset (view cut from the full view)",
)


def e2e(args) -> None:
    import tensorflow as tf

    from schemas import features as F
    from schemas.views import View
    from trainer import inputs as I
    from trainer.labels import LabelSpace

    root = os.path.join(args.workdir, "e2e")
    synth = {
        "kind": "frame", "videos": args.videos, "shards": 4, "seed": 7, "classes": NUM_CLASSES,
        "min_frames": args.frames, "max_frames": args.frames, "partition": "train",
    }  # fmt: skip
    full_dir = _synthetic_dataset(root, "full", synth, ["--view", args.view, "--teacher-view"], "tfrecord")
    compact_dir = _synthetic_dataset(root, "compact", synth, ["--view", args.view], "tfrecord")
    view = View.parse(args.view)
    labels = LabelSpace.build("entities", NUM_CLASSES, None)
    features = F.FRAME_FEATURES
    teacher_plan = I.plan_inputs(full_dir, "teacher", view, features, labels)
    sources = {
        E2E_SOURCES[0]: ("teacher", teacher_plan, I.TEACHER_FRAMES, I.TEACHER_MASK),
        E2E_SOURCES[1]: (
            "student",
            I.plan_inputs(compact_dir, "student", view, features, labels),
            I.STUDENT_FRAMES,
            I.STUDENT_MASK,
        ),
        E2E_SOURCES[2]: (
            "student",
            I.plan_inputs(full_dir, "student", view, features, labels),
            I.STUDENT_FRAMES,
            I.STUDENT_MASK,
        ),
        E2E_SOURCES[3]: (
            "student",
            dataclasses.replace(teacher_plan, teacher=False, student_view=view, student_from_full=True),
            I.STUDENT_FRAMES,
            I.STUDENT_MASK,
        ),
    }
    sizes = {
        name: sum(os.path.getsize(p) for p in glob.glob(os.path.join(d, "tfrecord", "*")))
        for name, d in (("full", full_dir), ("compact", compact_dir))
    }

    # Each dataset is built once (tf.data traces its parse function then) and iterated
    # once untimed, so the timed passes measure reading, parsing and the model only.
    datasets = {
        name: I.batches(plan, "tfrecord", args.batch_size) for name, (_, plan, _, _) in sources.items()
    }

    def run(name, model=None, warm_up=False) -> float:
        _, plan, frames_key, mask_key = sources[name]
        for path in glob.glob(os.path.join(plan.dataset_dir, "tfrecord", "*")):
            with open(path, "rb") as f:  # page cache warm: measure parsing, not the disk
                while f.read(16 << 20):
                    pass
        videos = 0
        start = time.perf_counter()
        for x, _ in datasets[name].take(1) if warm_up else datasets[name]:
            if model is None:
                x[frames_key].numpy()
            else:
                model(x[frames_key], x[mask_key]).numpy()
            videos += int(x[frames_key].shape[0])
        return videos / (time.perf_counter() - start)

    results = {"sizes": sizes, "videos": args.videos, "pairs": {}}
    for name in sources:
        run(name)  # untimed: the first pass of a tf.data pipeline starts its threads
    input_rates = {name: [] for name in sources}
    for _ in range(args.reps):
        for name in sources:
            input_rates[name].append(run(name))
    results["input_only"] = {name: max(r) for name, r in input_rates.items()}
    print("input only (videos/s):", json.dumps(results["input_only"]), flush=True)
    for key, label, teacher_preset, student_preset in _pairs(args.pairs):
        models = {
            "teacher": _classifier(teacher_preset, F.MAX_FRAMES),
            "student": _classifier(student_preset, view.max_selected),
        }
        functions = {
            role: tf.function(lambda f, m, model=model: model({"frames": f, "mask": m})["predictions"])
            for role, model in models.items()
        }
        for name, (role, _, _, _) in sources.items():
            run(name, functions[role], warm_up=True)  # trace on the real batch shapes and dtypes
        rates = {name: [] for name in sources}
        for _ in range(args.reps):
            for name, (role, _, _, _) in sources.items():
                rates[name].append(run(name, functions[role]))
        best = {name: max(r) for name, r in rates.items()}
        results["pairs"][key] = {"label": label, "teacher": teacher_preset, "student": student_preset,
                                 "videos_per_second": best, "all": rates}  # fmt: skip
        print(label, json.dumps(best), flush=True)
        del models, functions
    _write_json(os.path.join(root, "results.json"), results)
    print()
    print(e2e_report(args, results))


def e2e_report(args, r: dict) -> str:
    names = list(E2E_SOURCES)  # not the JSON's order: it is written with sorted keys
    short = ["teacher, full", "student, compact", "student, full (stored view)", "student, full (cut)"]
    lines = [
        f"Videos/s, best of {args.reps}, {r['videos']} synthetic {args.frames}-frame videos, batch "
        f"{args.batch_size}, TFRecord through `trainer.inputs` (tf.data, parse, decode float16, pad, "
        f"view) + the model; page cache warm. Dataset bytes: full view {r['sizes']['full'] / 1e6:.0f} MB, "
        f"compact {args.view} {r['sizes']['compact'] / 1e6:.0f} MB "
        f"({r['sizes']['compact'] / r['sizes']['full']:.3f}×).",
        "",
        "| model | " + " | ".join(short) + " | **student compact / teacher full** "
        "| student compact / student full (cut) |",
        "| --- | " + " | ".join("---" for _ in short) + " | --- | --- |",
        "| input only (read + parse) | "
        + " | ".join(f"{r['input_only'][n]:.0f}" for n in names)
        + f" | {r['input_only'][names[1]] / r['input_only'][names[0]]:.1f} "
        f"| {r['input_only'][names[1]] / r['input_only'][names[3]]:.1f} |",
    ]
    for p in r["pairs"].values():
        v = p["videos_per_second"]
        pair = p["teacher"] if p["teacher"] == p["student"] else f"{p['teacher']} → {p['student']}"
        lines.append(
            f"| {p['label']} (`{pair}`) | "
            + " | ".join(f"{v[n]:.1f}" for n in names)
            + f" | **{v[names[1]] / v[names[0]]:.1f}** | {v[names[1]] / v[names[3]]:.1f} |"
        )
    return "\n".join(lines)


# ===== real: video-level models on the sample shards ========================================
def real(args) -> None:
    import numpy as np

    from trainer import inputs as I
    from trainer import task
    from trainer.config import TrainConfig
    from trainer.labels import LabelSpace
    from trainer.metrics import MetricsAccumulator

    data = os.path.abspath(args.data)
    root = os.path.join(args.workdir, "real")
    split = {
        "train": [os.path.join(data, f"validate{i:04d}.tfrecord") for i in range(0, 16)],
        "eval": [os.path.join(data, f"validate{i:04d}.tfrecord") for i in range(16, 20)],
    }
    datasets = {}
    for name, files in split.items():
        missing = [f for f in files if not os.path.exists(f)]
        if missing:
            raise SystemExit(f"missing shards: {', '.join(missing)}")
        output = os.path.join(root, name)
        stamp = {"files": files, "sizes": [os.path.getsize(f) for f in files]}
        stamp_path = os.path.join(root, f"{name}.stamp.json")
        if not (_stamp_matches(stamp_path, stamp) and os.path.exists(os.path.join(output, "manifest.json"))):
            _preprocess(",".join(files), output, NUM_CLASSES, "tfrecord", ["--partition", name])
            _write_json(stamp_path, stamp)
        datasets[name] = output
    labels = LabelSpace.build("entities", NUM_CLASSES, None)
    from schemas import features as F
    from schemas.views import View
    from trainer.data import load_layout

    counts = {name: load_layout(d)[1]["videos"] for name, d in datasets.items()}
    eval_plan = I.plan_inputs(datasets["eval"], "teacher", View.parse("all"), F.FRAME_FEATURES, labels)
    stages = [int(e) for e in args.epochs.split(",")]
    results = {"videos": counts, "models": {}}
    for preset in [p.strip() for p in args.models.split(",") if p.strip()]:
        job_dir = os.path.join(root, "jobs", preset)
        shutil.rmtree(job_dir, ignore_errors=True)  # each stage continues the previous one
        rows = []
        for epochs in stages:
            argv = [
                "--train", datasets["train"], "--eval", datasets["eval"], "--job-dir", job_dir,
                "--mode", "teacher", "--teacher", preset, "--epochs", str(epochs),
                "--batch-size", str(args.batch_size), "--learning-rate", str(args.learning_rate),
                "--seed", str(args.seed),
            ]  # fmt: skip
            summary = _train_job_resumable(argv)
            with open(os.path.join(job_dir, "config.json")) as f:
                config = TrainConfig.from_json(f.read())
            model = task.load_trained(job_dir, config, "teacher", None, 1)
            acc = MetricsAccumulator(NUM_CLASSES)
            for x, y in I.batches(eval_plan, "tfrecord", 512):
                out = model({"frames": x[I.TEACHER_FRAMES], "mask": x[I.TEACHER_MASK]})
                acc.add_batch(np.asarray(out["predictions"], np.float32), np.asarray(y))
            metrics = acc.result()
            numbers = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
            row = {"epochs": epochs, "steps": summary["global_step"], **numbers}
            row["in_training_gap"] = summary["metrics"].get("val_teacher_gap")
            rows.append(row)
            print(f"{preset} after {epochs} epochs: GAP {row['gap']:.4f}, Hit@1 {row['hit_at_1']:.4f}, "
                  f"mAP {row['map_all_classes']:.4f}", flush=True)  # fmt: skip
        results["models"][preset] = rows
    _write_json(os.path.join(root, "results.json"), results)
    print()
    print(real_report(args, results))


def _train_job_resumable(argv: list[str]) -> dict:
    """Train (or continue, when the job dir holds fewer epochs of the same run) to --epochs."""
    import keras

    from trainer import task

    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
        summary = task.train_from_argv(argv, verbose=0)
    keras.backend.clear_session()
    return summary


def real_report(args, r: dict) -> str:
    lines = [
        f"Real YouTube-8M v2 video-level sample: train validate0000-0015 ({r['videos']['train']} videos), "
        f"evaluate validate0016-0019 ({r['videos']['eval']} videos), {NUM_CLASSES} classes; batch "
        f"{args.batch_size}, Adam {args.learning_rate}, seed {args.seed}; top-20 metrics as the starter.",
        "",
        "| model | epochs | GAP | Hit@1 | PERR | mAP (all classes) | mAP (classes with positives) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for preset, rows in r["models"].items():
        for row in rows:
            lines.append(
                f"| `{preset}` | {row['epochs']} | {row['gap']:.4f} | {row['hit_at_1']:.4f} "
                f"| {row['perr']:.4f} | {row['map_all_classes']:.4f} | {row['map_nonempty_classes']:.4f} |"
            )
    return "\n".join(lines)


# ===== throughput: training examples/s on this backend =======================================
THROUGHPUT_VIEW = "every_n:10"


class GpuSampler:
    """nvidia-smi's GPU utilisation and memory, sampled every `interval_ms` in the background."""

    def __init__(self, interval_ms: int = 200):
        self.samples = []  # (time.time(), utilisation %, memory used MiB)
        self._process = None
        if shutil.which("nvidia-smi") is None:
            return
        import threading

        self._process = subprocess.Popen(
            ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits",
             "-lms", str(interval_ms)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self._process.stdout:
            try:
                utilisation, memory = (float(x) for x in line.split(",")[:2])
            except ValueError:
                continue
            self.samples.append((time.time(), utilisation, memory))

    def between(self, start: float, end: float) -> dict | None:
        window = [(u, m) for t, u, m in self.samples if start <= t <= end]
        if not window:
            return None
        utilisation = [u for u, _ in window]
        return {
            "samples": len(window),
            "mean_utilisation": statistics.fmean(utilisation),
            "median_utilisation": statistics.median(utilisation),
            "peak_memory_mib": max(m for _, m in window),
        }

    def stop(self):
        if self._process is not None:
            self._process.terminate()
            self._process.wait()


def _device_description() -> dict:
    import keras

    backend = keras.backend.backend()
    out = {"backend": backend, "keras": keras.__version__}
    if backend == "jax":
        import jax

        out["devices"] = [str(d) for d in jax.devices()]
        out["jax"] = jax.__version__
    elif backend == "torch":
        import torch

        out["devices"] = [torch.cuda.get_device_name(0)] if torch.cuda.is_available() else ["cpu"]
        out["torch"] = torch.__version__
    elif backend == "tensorflow":
        import tensorflow as tf

        out["devices"] = [d.name for d in tf.config.list_logical_devices()]
        out["tensorflow"] = tf.__version__
    if shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
        out["nvidia_smi"] = subprocess.run(query, capture_output=True, text=True).stdout.strip()
    return out


def _repeated_dataset(dataset: str, repeat: int, root: str) -> str:
    """A dataset dir that lists each of `dataset`'s Parquet files `repeat` times (symlinks)."""
    from trainer.data import SHARD_PREFIX, dataset_files

    if repeat == 1:
        return dataset
    output = os.path.join(root, f"repeated-x{repeat}")
    shutil.rmtree(output, ignore_errors=True)
    os.makedirs(os.path.join(output, "parquet"))
    files = dataset_files(dataset, "parquet")
    total = len(files) * repeat
    for copy in range(repeat):
        for i, path in enumerate(files):
            index = copy * len(files) + i
            name = f"{SHARD_PREFIX}-{index:05d}-of-{total:05d}.parquet"
            os.symlink(os.path.abspath(path), os.path.join(output, "parquet", name))
    with open(os.path.join(dataset, "manifest.json")) as f:
        manifest = json.load(f)
    for key in ("videos", "records_read", "records_written", "videos_with_labels"):
        if key in manifest:
            manifest[key] *= repeat
    manifest["formats"] = ["parquet"]
    manifest["repeated"] = {"source": os.path.abspath(dataset), "times": repeat}
    _write_json(os.path.join(output, "manifest.json"), manifest)
    return output


def _input_rate(dataset: str, mode: str, batch_size: int, workers: int) -> dict:
    """One epoch of the Parquet -> numpy input alone, as a `mode` job reads it."""
    from schemas.views import View
    from trainer import inputs as I
    from trainer.labels import LabelSpace

    _, manifest = I.load_layout(dataset)
    label_space = LabelSpace.build("entities", manifest["num_classes"], None)
    plan = I.plan_inputs(dataset, mode, View.parse(THROUGHPUT_VIEW), ("rgb", "audio"), label_space)
    started = time.perf_counter()
    videos = 0
    for x, _ in I.numpy_batches(plan, batch_size, shuffle=True, drop_remainder=True, workers=workers):
        videos += len(next(iter(x.values())))
    seconds = time.perf_counter() - started
    return {
        "mode": mode,
        "workers": workers,
        "videos": videos,
        "seconds": seconds,
        "videos_per_second": videos / seconds,
    }


def throughput(args) -> None:
    root = os.path.join(args.workdir, "throughput")
    os.makedirs(root, exist_ok=True)
    if args.data:
        source = args.data
    else:
        source = _synthetic_dataset(
            root, "data",
            {"kind": "frame", "classes": NUM_CLASSES, "min_frames": 300, "max_frames": 300,
             "videos": args.videos, "shards": 4, "seed": 0, "partition": "train"},
            ["--view", THROUGHPUT_VIEW, "--teacher-view", "--frame-dtype", "uint8"], "parquet",
        )  # fmt: skip
    dataset = _repeated_dataset(source, args.repeat, root)
    results = {
        "device": _device_description(),
        "dataset": dataset,
        "repeat": args.repeat,
        "jobs": [],
        "input": [],
    }
    print(json.dumps(results["device"]), flush=True)
    worker_settings = [int(w) for w in args.input_workers.split(",")]
    for mode in ("teacher", "student"):
        for workers in worker_settings:
            rate = _input_rate(dataset, mode, args.batch_size, workers)
            results["input"].append(rate)
            print(
                f"input alone ({mode} view, {workers} workers): {rate['videos_per_second']:.0f} videos/s",
                flush=True,
            )
    sampler = GpuSampler()
    try:
        for pair, _, teacher, student in _pairs(args.pairs):
            for mode, workers in itertools.product(args.modes.split(","), worker_settings):
                row = _throughput_job(args, dataset, root, (pair, teacher, student), mode, workers, sampler)
                results["jobs"].append(row)
                _write_json(os.path.join(root, "results.json"), results)
                gpu = row["gpu"]
                shown = (
                    f"; GPU {gpu['mean_utilisation']:.0f}% mean, {gpu['peak_memory_mib']:.0f} MiB"
                    if gpu
                    else ""
                )
                print(
                    f"{pair:<6} {mode:<9} {workers:2d} workers "
                    f"{row['step_examples_per_second']:8.0f} examples/s in steps, "
                    f"{row['steady_examples_per_second']:8.0f} per epoch "
                    f"(first epoch {row['first_epoch_seconds']:.1f} s){shown}",
                    flush=True,
                )
    finally:
        sampler.stop()
    _write_json(os.path.join(root, "results.json"), results)
    print()
    print(throughput_report(args, results))


def _step_times():
    """A Keras callback noting the wall-clock end of every training batch, per epoch."""
    import keras

    class StepTimes(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epochs = []  # per epoch: [epoch start, end of batch 0, end of batch 1, ...]

        def on_epoch_begin(self, epoch, logs=None):
            self.epochs.append([time.perf_counter()])

        def on_train_batch_end(self, batch, logs=None):
            self.epochs[-1].append(time.perf_counter())

    return StepTimes()


def _steady_steps(epochs: list[list[float]]) -> tuple[list[float], float, float]:
    """(step durations, start, end) over the steady batches: every batch after the first
    of each epoch (the first compiles or waits for the input to start), and no epoch-end
    work (checkpoints); epoch 1 is left out when there are later ones."""
    kept = epochs[1:] or epochs
    durations = [b - a for times in kept for a, b in itertools.pairwise(times[1:])]
    return durations, kept[0][1], kept[-1][-1]


def _throughput_job(
    args, dataset: str, root: str, pair, mode: str, workers: int, sampler: GpuSampler
) -> dict:
    """One `mode` job of the pair through `trainer.task.train`; its steady rate and GPU use."""
    import keras

    from trainer import task

    name, teacher, student = pair
    job_dir = os.path.join(root, "jobs", f"{name.replace('/', '-')}-{mode}-w{workers}")
    shutil.rmtree(job_dir, ignore_errors=True)
    argv = [
        "--train", dataset, "--job-dir", job_dir, "--mode", mode, "--epochs", str(args.epochs),
        "--batch-size", str(args.batch_size), "--checkpoint-every", "100000", "--verbose", "0",
    ]  # fmt: skip
    if mode != "student":
        argv += ["--teacher", teacher]
    if mode != "teacher":
        argv += ["--student", student, "--view", THROUGHPUT_VIEW]
    config, checkpoint_dir = task.config_from_args(task.build_parser().parse_args(argv), {})
    timer = _step_times()
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
        summary = task.train(
            config, checkpoint_dir, verbose=0, export=False, input_workers=workers, callbacks=[timer]
        )
    keras.backend.clear_session()
    epochs = summary["epoch_times"]
    steady = epochs[1:] or epochs  # the first epoch compiles
    steady_seconds = sum(e["seconds"] for e in steady)
    durations, start, end = _steady_steps(timer.epochs)
    clock_offset = time.time() - time.perf_counter()  # the sampler stamps with time.time()
    return {
        "steady_steps": len(durations),
        "step_examples_per_second": len(durations) * args.batch_size / sum(durations),
        "median_step_ms": 1000 * statistics.median(durations),
        "pair": name,
        "mode": mode,
        "input_workers": workers,
        "teacher": teacher if mode != "student" else None,
        "student": student if mode != "teacher" else None,
        "outcome": summary["outcome"],
        "first_epoch_seconds": epochs[0]["seconds"],
        "steady_examples_per_second": sum(e["steps"] for e in steady) * args.batch_size / steady_seconds,
        "epoch_times": epochs,
        "gpu": sampler.between(start + clock_offset, end + clock_offset),
    }


def throughput_report(args, r: dict) -> str:
    device = r["device"]
    steps = r["jobs"][0]["epoch_times"][0]["steps"]
    lines = [
        f"Backend {device['backend']} on {', '.join(device.get('devices', []))}"
        + (f" ({device['nvidia_smi']})" if device.get("nvidia_smi") else "")
        + f"; batch {args.batch_size}, {args.epochs} epochs of {steps} steps "
        f"over 300-frame videos (Parquet, uint8), student view {THROUGHPUT_VIEW}.",
        "",
        "| pair | job | input workers | examples/s, steps | median step | examples/s, whole epochs "
        "(with checkpoint) | first epoch (compiles) | GPU utilisation in steps (mean / median) "
        "| GPU memory peak |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in r["jobs"]:
        gpu = row["gpu"]
        utilisation = f"{gpu['mean_utilisation']:.0f}% / {gpu['median_utilisation']:.0f}%" if gpu else "—"
        memory = f"{gpu['peak_memory_mib'] / 1024:.1f} GiB" if gpu else "—"
        lines.append(
            f"| {row['pair']} | {row['mode']} | {row['input_workers']} | "
            f"{row['step_examples_per_second']:,.0f} | {row['median_step_ms']:.0f} ms | "
            f"{row['steady_examples_per_second']:,.0f} | {row['first_epoch_seconds']:.1f} s | "
            f"{utilisation} | {memory} |"
        )
    lines += ["", "Input alone (Parquet -> numpy batches, one epoch, no model):", ""]
    for rate in r["input"]:
        lines.append(
            f"- {rate['mode']} view, {rate['workers']} workers: {rate['videos_per_second']:,.0f} videos/s"
        )
    return "\n".join(lines)


# ===== command line =========================================================================
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    q = sub.add_parser("quality", help="GAP of teacher / student / parallel / serial over views and seeds")
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

    s = sub.add_parser("speed", help="analytic FLOPs and model time, teacher vs student, side by side")
    s.add_argument("--pairs", default="hlstm,dbof,netvlad,nextvlad,mean")
    s.add_argument("--view", default="every_n:10")
    s.add_argument("--frames", type=int, default=300)
    s.add_argument("--batch-size", type=int, default=64)
    s.add_argument("--reps", type=int, default=5)
    s.add_argument("--warmup", type=int, default=1)
    s.add_argument(
        "--params",
        default="{}",
        help="JSON overrides for teacher and student of every pair, as --teacher-params: "
        '{"aggregator": {...}, "head": {...}}',
    )

    e = sub.add_parser("e2e", help="read + parse + model: compact vs full dataset")
    e.add_argument("--pairs", default="hlstm,dbof,mean")
    e.add_argument("--view", default="every_n:10")
    e.add_argument("--videos", type=int, default=320)
    e.add_argument("--frames", type=int, default=300)
    e.add_argument("--batch-size", type=int, default=64)
    e.add_argument("--reps", type=int, default=3)

    r = sub.add_parser("real", help="video-level logistic and MoE on the real sample shards")
    r.add_argument("--data", default=os.path.join(REPO, "..", "shared", "data", "yt8m-v2-video-sample"))
    r.add_argument("--models", default="video-logistic,video-moe")
    r.add_argument("--epochs", default="5,10,20,40", help="report after each of these epoch counts")
    r.add_argument("--batch-size", type=int, default=64)
    r.add_argument("--learning-rate", type=float, default=1e-3)
    r.add_argument("--seed", type=int, default=0)

    t = sub.add_parser("throughput", help="training examples/s (and GPU utilisation) on this backend")
    t.add_argument(
        "--data", help="a Parquet dataset of 300-frame videos with the full view (default: generate)"
    )
    t.add_argument("--videos", type=int, default=512, help="videos to generate when --data is not given")
    t.add_argument("--repeat", type=int, default=1, help="list each Parquet file this many times")
    t.add_argument("--pairs", default="hlstm,dbof")
    t.add_argument("--epochs", type=int, default=3)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument(
        "--input-workers", default="0,4", help="comma-separated --input-workers settings to compare"
    )
    t.add_argument("--modes", default="teacher,student,parallel", help="the jobs to run for each pair")

    sub.add_parser("all", help="quality, speed, e2e and real with their defaults")
    for p in (q, s, e, r, t):
        p.add_argument("--workdir", default=DEFAULT_WORKDIR)
    return parser


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "all":
        for part in ("quality", "speed", "e2e", "real"):
            subprocess.run([sys.executable, os.path.abspath(__file__), part], check=True)
        return
    if args.command == "quality":
        if args.child_seed is not None:
            quality_seed(args, args.child_seed)
        else:
            quality(args, argv[1:])
    elif args.command == "speed":
        speed(args)
    elif args.command == "e2e":
        e2e(args)
    elif args.command == "throughput":
        throughput(args)
    else:
        real(args)


if __name__ == "__main__":
    main()
