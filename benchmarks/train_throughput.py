"""Training benchmark, throughput: training examples/s (and GPU utilisation) on this backend.

    .venv/bin/python benchmarks/train_throughput.py [--data DIR] [--repeat K] [--pairs hlstm,dbof] \
        [--epochs 3] [--batch-size 64]

Training examples/s through the real entry point (`trainer.task`) on the
backend KERAS_BACKEND selects, for each pair's teacher, student alone (every_n:10 cut
from the full view) and parallel jobs, from a Parquet dataset of 300-frame videos;
with GPU utilisation sampled by nvidia-smi where there is one. The first epoch (it
compiles) is reported apart. Needs no TensorFlow when --data is given, so it also
runs on a JAX or PyTorch GPU machine; --repeat K lists each Parquet file K times (a
dataset of K x the videos without K x the bytes on disk), for machines that can only
be sent a small dataset. The input alone (Parquet -> numpy batches, no model) is timed
too, for each --input-workers setting, to tell an input-bound job from a model-bound one.

Prints Markdown tables for RESULTS.md and writes JSON under --workdir.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # first: this checkout's code, whatever else is installed
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks import train_common as common  # noqa: E402
from trainer import inputs  # noqa: E402
from trainer.training import loop  # noqa: E402

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
    from trainer.inputs import SHARD_PREFIX

    if repeat == 1:
        return dataset
    output = os.path.join(root, f"repeated-x{repeat}")
    shutil.rmtree(output, ignore_errors=True)
    os.makedirs(os.path.join(output, "parquet"))
    files = inputs.dataset_files(dataset, "parquet")
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
    common._write_json(os.path.join(output, "manifest.json"), manifest)
    return output


def _input_rate(dataset: str, mode: str, batch_size: int, workers: int) -> dict:
    """One epoch of the Parquet -> numpy input alone, as a `mode` job reads it."""
    from schemas.views import View
    from trainer import inputs as I
    from trainer.labels import LabelSpace

    _, manifest = inputs.load_layout(dataset)
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
        source = common._synthetic_dataset(
            root, "data",
            {"kind": "frame", "classes": common.NUM_CLASSES, "min_frames": 300, "max_frames": 300,
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
        for pair, _, teacher, student in common._pairs(args.pairs):
            for mode, workers in itertools.product(args.modes.split(","), worker_settings):
                row = _throughput_job(args, dataset, root, (pair, teacher, student), mode, workers, sampler)
                results["jobs"].append(row)
                common._write_json(os.path.join(root, "results.json"), results)
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
    common._write_json(os.path.join(root, "results.json"), results)
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
    """One `mode` job of the pair through `trainer.loop.train`; its steady rate and GPU use."""
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
        summary = loop.train(
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
    t = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    t.add_argument("--workdir", default=common.DEFAULT_WORKDIR)
    return t


def main(argv=None) -> None:
    throughput(build_parser().parse_args(argv))


if __name__ == "__main__":
    main()
