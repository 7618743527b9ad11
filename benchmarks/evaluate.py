"""Scoring throughput of the Beam evaluation job against the bare model, and metrics time.

    .venv/bin/python benchmarks/evaluate.py [--videos 4000] [--shards 8] [--preset dbof] \
        [--workdir /tmp/fewframes-bench-eval]

Set-up (once, cached in --workdir): synthetic frame-level shards (30-300 frames a
video, 100 classes) and an export of a student of `--preset` at every_n:10, trained
for a few steps (its weights do not change its speed).

Methods, each in its own child process pinned to one core (`taskset -c 0`), on 1/4 of
the shards and on all of them; the marginal rate (extra videos / extra seconds)
removes start-up (TF import, model load, pipeline construction):
  (a) bare: the export's `serving_default` on the raw records in batches of 256
      (records read into memory first, untimed; parse, view, dequantize and model
      in the graph), the top-k read back;
  (b) beam: `pipelines.evaluate` on the same shards, one worker: read, validate,
      RunInference, metrics combiner, videos.parquet, predictions CSV, metrics.json
      (report off).
Goal: (b) / (a) >= 0.8.

Metrics: `MetricsAccumulator` over 100,000 videos x 3,862 classes (batches of 1,000,
1-7 labels a video): the full-prediction path (`add_batch`) and the job's path
(`score_videos` per batch, records through `MetricsCombineFn`), then `result()`.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pipelines.scoring import job as scoring_job  # noqa: E402

NUM_CLASSES = 100
VIEW = "every_n:10"


# ----- set-up --------------------------------------------------------------------------------
def prepare(workdir: str, videos: int, shards: int, preset: str) -> tuple[list[str], str]:
    from pipelines import preprocess
    from pipelines.synth import SynthConfig, generate
    from trainer import task

    raw = os.path.join(workdir, "raw")
    if not glob.glob(os.path.join(raw, "train*.tfrecord")):
        generate(raw, SynthConfig(kind="frame", videos=videos, shards=shards, classes=NUM_CLASSES, seed=1,
                                  min_frames=30, max_frames=300), progress=False)  # fmt: skip
    job = os.path.join(workdir, f"job-{preset}")
    if not os.path.exists(os.path.join(job, "export", "fewframes_export.json")):
        dataset = os.path.join(workdir, "dataset")
        if not os.path.exists(os.path.join(dataset, "manifest.json")):
            first = sorted(glob.glob(os.path.join(raw, "train*.tfrecord")))[:1]
            preprocess.run(["--input", first[0], "--output", dataset, "--view", VIEW,
                            "--num-classes", str(NUM_CLASSES), "--overwrite"])  # fmt: skip
        task.train_from_argv(
            ["--train", dataset, "--job-dir", job, "--mode", "student", "--student", preset, "--view", VIEW,
             "--epochs", "1", "--batch-size", "32", "--max-steps-per-epoch", "3"], verbose=0
        )  # fmt: skip
    return sorted(glob.glob(os.path.join(raw, "train*.tfrecord"))), os.path.join(job, "export")


# ----- children ----------------------------------------------------------------------------------
def _bare(files: list[str], export: str) -> tuple[int, float]:
    from pipelines.records.tfrecord_io import iter_frames
    from trainer.export import LoadedExport

    records = []
    for path in files:
        with open(path, "rb") as f:
            records += [r.data for r in iter_frames(f)]
    model = LoadedExport(export)
    model.score_examples(records[:8])  # trace once: start-up, not work
    start = time.perf_counter()
    for i in range(0, len(records), 256):
        out = model.score_examples(records[i : i + 256])
        out["class_indexes"].sum()
    return len(records), time.perf_counter() - start


def _beam(files: list[str], export: str, output: str) -> tuple[int, float]:

    start = time.perf_counter()
    summary = scoring_job.run(["--model", export, "--input", ",".join(files), "--output", output,
                               "--overwrite", "--no-report", "--direct_num_workers", "1"])  # fmt: skip
    assert summary["balanced"] and summary["num_failed"] == 0, summary
    return summary["num_videos"], time.perf_counter() - start


def child(args) -> None:
    import apache_beam  # noqa: F401  (imports are start-up, not work)
    import tensorflow  # noqa: F401

    files = args.files.split(",")
    if args.method == "bare":
        videos, seconds = _bare(files, args.export)
    else:
        videos, seconds = _beam(files, args.export, args.output)
    print(json.dumps({"videos": videos, "seconds": seconds}))


def _measure(method: str, files: list[str], export: str, output: str) -> dict:
    command = ["taskset", "-c", "0", sys.executable, __file__, "child", "--method", method,
               "--files", ",".join(files), "--export", export, "--output", output]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{method} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# ----- metrics ---------------------------------------------------------------------------------
def metrics_time(videos: int = 100_000, classes: int = 3862, batch: int = 1000) -> dict:
    import numpy as np

    from pipelines.scoring.combiners import MetricsCombineFn
    from trainer.metrics import MetricsAccumulator, score_videos

    rng = np.random.default_rng(0)
    batches = []
    for _ in range(videos // batch):
        predictions = rng.random((batch, classes), dtype=np.float32)
        labels = [rng.choice(classes, size=rng.integers(1, 8), replace=False) for _ in range(batch)]
        batches.append((predictions, labels))
    start = time.perf_counter()
    acc = MetricsAccumulator(classes)
    for predictions, labels in batches:
        acc.add_batch(predictions, labels)
    added = time.perf_counter() - start
    direct = acc.result()
    total_direct = time.perf_counter() - start

    start = time.perf_counter()
    combine = MetricsCombineFn(classes)
    partial = combine.create_accumulator()
    for predictions, labels in batches:
        scored = score_videos(predictions, labels)
        for i in range(batch):
            combine.add_input(partial, {
                "id": "", "labels": labels[i], "top_classes": scored.classes[i],
                "top_scores": scored.scores[i], "perr": float(scored.perr[i]),
            })  # fmt: skip
    via_job = combine.extract_output(partial)["metrics"]
    total_job = time.perf_counter() - start
    assert abs(via_job["gap"] - direct["gap"]) < 1e-9, (via_job["gap"], direct["gap"])
    return {"add_batch_s": added, "result_s": total_direct - added, "direct_total_s": total_direct,
            "job_path_total_s": total_job, "gap": direct["gap"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command")
    kid = sub.add_parser("child")
    kid.add_argument("--method", choices=("bare", "beam"))
    kid.add_argument("--files")
    kid.add_argument("--export")
    kid.add_argument("--output")
    parser.add_argument("--videos", type=int, default=4000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--preset", default="dbof")
    parser.add_argument("--workdir", default="/tmp/fewframes-bench-eval")
    parser.add_argument("--skip-metrics", action="store_true")
    args = parser.parse_args()
    if args.command == "child":
        child(args)
        return
    files, export = prepare(args.workdir, args.videos, args.shards, args.preset)
    quarter = files[: max(1, len(files) // 4)]
    rows = {}
    for method in ("bare", "beam"):
        runs = {}
        for name, chosen in (("1x", quarter), ("4x", files)):
            output = os.path.join(args.workdir, "out")
            runs[name] = min(
                (_measure(method, chosen, export, output) for _ in range(2)), key=lambda r: r["seconds"]
            )
        marginal = (runs["4x"]["videos"] - runs["1x"]["videos"]) / (
            runs["4x"]["seconds"] - runs["1x"]["seconds"]
        )
        rows[method] = {"runs": runs, "marginal": marginal}
    print(
        f"\nmodel: student {args.preset} at {VIEW}, {NUM_CLASSES} classes; "
        f"{args.videos} videos, 30-300 frames\n"
    )
    print("| method | videos/s (marginal) | seconds 1x / 4x |")
    print("| --- | --- | --- |")
    for method, row in rows.items():
        runs = row["runs"]
        print(
            f"| {method} | {row['marginal']:.0f} | "
            f"{runs['1x']['seconds']:.2f} / {runs['4x']['seconds']:.2f} |"
        )
    print(
        f"\n(b) beam / (a) bare: **{rows['beam']['marginal'] / rows['bare']['marginal']:.2f}** (goal >= 0.8)"
    )
    if not args.skip_metrics:
        timing = metrics_time()
        print("\nmetrics over 100,000 videos x 3,862 classes (batches of 1,000):")
        print(json.dumps({k: round(v, 3) for k, v in timing.items()}))


if __name__ == "__main__":
    main()
