"""Offline teacher targets vs online serial distillation: student training throughput and bytes.

    .venv/bin/python benchmarks/teacher_targets.py [--videos 512] [--teacher hlstm] \
        [--students hlstm-student,dbof,netvlad] [--view every_n:10] [--reps 2] [--epochs 4] \
        [--batch-size 128] [--workdir /tmp/fewframes-targets-bench]

One run, side by side: synthetic 300-frame videos over the 3,862 YouTube-8M classes,
preprocessed with the full view and the student view (float16, TFRecord + Parquet);
an H-LSTM teacher (the paper's preset; a few steps of training, as only its cost
matters here); `fewframes teacher-targets` over the dataset (its one-time cost is
timed too); then for each student, `serial` training through the real entry point
(`trainer.task`) online (the frozen teacher run on the full view at every step) and
offline (`--targets`), alternating, `--reps` times each. Throughput is the median of
the steady-state epochs' examples/s (epochs after the first, which traces the
graphs), from the job's own `epoch_times`. Bytes read per epoch: for TFRecord (what
the TensorFlow backend reads) the files' size, since every record is read whole; for
Parquet the compressed column chunks of the columns the run reads.

Prints Markdown tables for RESULTS.md and writes results.json under --workdir.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from trainer import inputs  # noqa: E402

NUM_CLASSES = 3862
GOAL = 5.0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--videos", type=int, default=512)
    p.add_argument("--frames", default="300:300", help="MIN:MAX frames per synthetic video")
    p.add_argument("--teacher", default="hlstm")
    p.add_argument("--students", default="hlstm-student,dbof,netvlad")
    p.add_argument("--view", default="every_n:10")
    p.add_argument("--batch-size", type=int, default=128, help="as docker/trainer-job.yaml")
    p.add_argument("--epochs", type=int, default=4, help="per training job; the first is not timed")
    p.add_argument("--reps", type=int, default=2, help="online/offline jobs per student, alternating")
    p.add_argument("--top-k", type=int, default=100, help="K of the top_k targets whose size is reported")
    p.add_argument("--workdir", default="/tmp/fewframes-targets-bench")
    return p.parse_args(argv)


def build_data(args) -> tuple[str, str]:
    """(dataset dir with full + student view, teacher job dir), made once per workdir."""
    from pipelines import preprocess
    from pipelines.synth import SynthConfig, generate
    from trainer.task import train_from_argv

    dataset = os.path.join(args.workdir, "dataset")
    if not os.path.exists(os.path.join(dataset, "manifest.json")):
        low, high = (int(x) for x in args.frames.split(":"))
        raw = os.path.join(args.workdir, "raw")
        shutil.rmtree(raw, ignore_errors=True)
        generate(
            raw,
            SynthConfig(
                kind="frame",
                videos=args.videos,
                shards=4,
                classes=NUM_CLASSES,
                min_frames=low,
                max_frames=high,
                seed=11,
                partition="train",
            ),
            progress=False,
        )
        preprocess.run(["--input", f"{raw}/train*.tfrecord", "--output", dataset, "--overwrite",
                        "--format", "parquet,tfrecord", "--view", args.view, "--teacher-view",
                        "--num-classes", str(NUM_CLASSES), "--num-shards", "4"])  # fmt: skip
    teacher = os.path.join(args.workdir, f"teacher-{args.teacher}")
    if not os.path.exists(os.path.join(teacher, "export")):
        shutil.rmtree(teacher, ignore_errors=True)
        train_from_argv(["--train", dataset, "--job-dir", teacher, "--mode", "teacher",
                         "--teacher", args.teacher, "--epochs", "1", "--batch-size", str(args.batch_size),
                         "--max-steps-per-epoch", "2"], verbose=0)  # fmt: skip
    return dataset, teacher


def make_targets(args, dataset: str, teacher: str, predictions: str, name: str) -> tuple[str, float]:
    from pipelines import teacher_targets

    out = os.path.join(args.workdir, name)
    start = time.perf_counter()
    teacher_targets.run(["--teacher", teacher, "--input", dataset, "--output", out, "--overwrite",
                         "--predictions", predictions, "--num-shards", "4"])  # fmt: skip
    return out, time.perf_counter() - start


def bytes_read_per_epoch(plan, fmt: str) -> int:
    """What one pass over `plan`'s dataset reads from storage in `fmt`."""
    import pyarrow.parquet as pq

    files = inputs.dataset_files(plan.dataset_dir, fmt)
    if fmt == "tfrecord":
        return sum(os.path.getsize(f) for f in files)
    wanted = set(plan.columns())
    total = 0
    for path in files:
        metadata = pq.ParquetFile(path).metadata
        for group in range(metadata.num_row_groups):
            row_group = metadata.row_group(group)
            for i in range(row_group.num_columns):
                chunk = row_group.column(i)
                if chunk.path_in_schema.split(".")[0] in wanted:
                    total += chunk.total_compressed_size
    return total


def plan_for(dataset: str, offline: bool, view: str):
    from schemas.views import View
    from trainer import inputs as I
    from trainer.labels import LabelSpace

    _, manifest = inputs.load_layout(dataset)
    label_space = LabelSpace.build("entities", manifest["num_classes"], None)
    return I.plan_inputs(dataset, "serial", View.parse(view), ("rgb", "audio"), label_space, targets=offline)


def train_student(args, student: str, dataset: str, teacher: str, targets: str | None, tag: str):
    """Steady-state examples/s of each epoch after the first, of one serial job."""
    from trainer.task import train_from_argv

    job = os.path.join(args.workdir, "jobs", tag)
    shutil.rmtree(job, ignore_errors=True)
    source = ["--targets", targets] if targets else ["--train", dataset, "--teacher-dir", teacher]
    summary = train_from_argv([*source, "--job-dir", job, "--mode", "serial", "--student", student,
                               "--view", args.view, "--epochs", str(args.epochs),
                               "--batch-size", str(args.batch_size), "--input-format", "tfrecord",
                               "--checkpoint-every", "100000"], verbose=0)  # fmt: skip
    shutil.rmtree(job, ignore_errors=True)
    import keras

    keras.backend.clear_session()  # one process runs many jobs: free each one's graphs
    return [e["examples_per_second"] for e in summary["epoch_times"][1:]]


def main(argv=None) -> int:
    args = parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    import keras

    dataset, teacher = build_data(args)
    targets, targets_seconds = make_targets(args, dataset, teacher, "all", "targets-all")
    top_k, _ = make_targets(args, dataset, teacher, f"top_k:{args.top_k}", f"targets-top{args.top_k}")

    source_manifest = json.load(open(os.path.join(dataset, "manifest.json")))
    sizes = {
        name: json.load(open(os.path.join(path, "manifest.json")))["outputs"]
        for name, path in (("full", dataset), ("all", targets), (f"top_k:{args.top_k}", top_k))
    }
    online_plan, offline_plan = plan_for(dataset, False, args.view), plan_for(targets, True, args.view)
    read = {
        fmt: {
            "online": bytes_read_per_epoch(online_plan, fmt),
            "offline": bytes_read_per_epoch(offline_plan, fmt),
        }
        for fmt in ("tfrecord", "parquet")
    }

    results = {"students": {}}
    for student in args.students.split(","):
        runs = {"online": [], "offline": []}
        for rep in range(args.reps):
            for mode in ("online", "offline"):
                source = targets if mode == "offline" else None
                rates = train_student(args, student, dataset, teacher, source, f"{student}-{mode}-{rep}")
                runs[mode] += rates
                print(f"{student} {mode} rep {rep}: {rates} examples/s", flush=True)
        online, offline = statistics.median(runs["online"]), statistics.median(runs["offline"])
        results["students"][student] = {"online": runs["online"], "offline": runs["offline"],
                                        "ratio": offline / online}  # fmt: skip

    online_epoch_seconds = {
        s: args.videos / statistics.median(r["online"]) for s, r in results["students"].items()
    }
    results.update(
        {
            "args": vars(args),
            "backend": keras.backend.backend(),
            "cpus": os.cpu_count(),
            "videos": source_manifest["records_written"],
            "sizes": sizes,
            "bytes_read_per_epoch": read,
            "targets_job_seconds": targets_seconds,
        }
    )
    with open(os.path.join(args.workdir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)

    print()
    print(
        f"Serial distillation from a `{args.teacher}` teacher, view {args.view}, "
        f"{results['videos']} synthetic 300-frame videos, {NUM_CLASSES} classes, "
        f"batch {args.batch_size}, float16 frames, TFRecord, "
        f"{keras.backend.backend()} backend on {os.cpu_count()} CPU cores; examples/s = median of "
        f"{args.reps} jobs x {args.epochs - 1} steady-state epochs each."
    )
    print()
    print("| student | online serial (examples/s) | offline `--targets` | **offline / online** | goal |")
    print("| --- | --- | --- | --- | --- |")
    for student, r in results["students"].items():
        online, offline = statistics.median(r["online"]), statistics.median(r["offline"])
        print(
            f"| `{student}` | {online:.1f} ({min(r['online']):.1f}–{max(r['online']):.1f}) | "
            f"{offline:.1f} ({min(r['offline']):.1f}–{max(r['offline']):.1f}) | **{r['ratio']:.1f}×** | "
            f"{'met' if r['ratio'] >= GOAL else 'not met'} (≥ {GOAL:g}×) |"
        )
    print()
    print("| bytes read per epoch | online serial | offline `--targets` | **online / offline** |")
    print("| --- | --- | --- | --- |")
    for fmt, r in read.items():
        what = "whole files" if fmt == "tfrecord" else "the columns read"
        print(
            f"| {fmt} ({what}) | {r['online'] / 1e6:.1f} MB | {r['offline'] / 1e6:.1f} MB | "
            f"**{r['online'] / r['offline']:.1f}×** |"
        )
    print()
    full = sizes["full"]["parquet"]["bytes"]
    print("| dataset (Parquet, zstd) | bytes | per video | vs the full-view dataset |")
    print("| --- | --- | --- | --- |")
    for name, outputs in sizes.items():
        size = outputs["parquet"]["bytes"]
        label = "full + student view (online serial)" if name == "full" else f"targets, predictions {name}"
        per_video = size / results["videos"] / 1e3
        print(f"| {label} | {size / 1e6:.1f} MB | {per_video:.1f} kB | {size / full:.3f}× |")
    print()
    print(
        f"The targets job (teacher over every video once, Beam, DirectRunner) took {targets_seconds:.1f} s, "
        + ", ".join(f"{s} online epoch ≈ {t:.1f} s" for s, t in online_epoch_seconds.items())
        + "."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
