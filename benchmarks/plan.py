"""Planning arithmetic for the whole of YouTube-8M: Dataflow jobs and GPU training.

    .venv/bin/python benchmarks/plan.py [--minutes 30] [--machine n2-standard-4]

Prints the planning table of `benchmarks/RESULTS.md` ("Planning: the whole of YouTube-8M on
Dataflow and GPUs") from the constants below, each with its source: rates measured in
RESULTS.md (per CPU second on one core of the shared 2-core development machine; GPU rates on
an H200), bytes measured on the real sample shards, and dataset sizes, network caps and list
prices as remembered (no internet here to check them).
Change a constant, rerun, and every cell follows. Standard library only.

A Dataflow row: core-hours = videos / rate / 3600. vCPUs for the run = videos / (rate x
efficiency x seconds), rounded up to whole VMs; VMs for the network = the larger of input
and output bytes / (seconds x per-VM bandwidth) (reads and writes are taken as separate
directions of one link). The job gets the larger count; hours = the longer of its CPU time
and its transfer time on those VMs; cost = VMs x hours x the machine's hourly price, plus
shuffle. A GPU row: hours per epoch = videos / examples/s / 3600 on one GPU, divided by N
(linear scaling: assumed, not measured).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

# ----- the dataset: YouTube-8M 2018 ("v2") frame level ------------------------------------------
# Videos per partition, as remembered from the YouTube-8M download page (2018 release); their sum,
# 6.13 M, is the "6.1M videos" of the stored copy of research.google.com/youtube8m/download.html.
VIDEOS = {"train": 3_888_919, "validate": 1_112_356, "test": 1_133_323}
SHARDS_PER_PARTITION = 3_844  # as remembered from the same page (frame level, each partition)
QUOTED_TOTAL_BYTES = 1.53e12  # "1.53 TB" for the whole frame-level set, as remembered
# Measured here: ../shared/data/yt8m-v2-frame-sample, 8 real train shards, 10,261,922 bytes,
# 40 videos, 8,768 frames (219.2 a video); 1,170 bytes a frame (1,152 of features + framing).
BYTES_PER_VIDEO = 10_261_922 / 40

# ----- rates per core (videos/s), RESULTS.md ----------------------------------------------------
# "Planning" section: the real sample shards replicated, one process pinned to one core, the
# marginal rate over CPU seconds (user + sys) between 2,000 and 8,000 videos, mean of 2 runs.
RATE_PREPROCESS_STUDENT = 2_870  # --view every_n:10, float16 (2,970 and 2,765)
RATE_PREPROCESS_TEACHER_UINT8 = 690  # + --teacher-view --frame-dtype uint8 (707 and 673)
RATE_PREPROCESS_TEACHER_FLOAT16 = 360  # + --teacher-view, float16 frames (363 and 354)
# Same section: pipelines.evaluate with 3,862-class H-LSTM exports on the same shards.
RATE_SCORE_STUDENT = 58  # hlstm-student export, every_n:10 (56.5 and 59.2)
RATE_SCORE_TEACHER = 7.1  # hlstm export, all frames (7.22, 7.13 and 6.93)
# "Preprocessing": two workers on two cores read 1.46x one worker (reading span); taken as the
# share of each further core a worker VM gets.
CORE_EFFICIENCY = 1.46 / 2

# Output bytes per input byte, "Planning" section (real shards): Parquet zstd.
OUT_RATIO_STUDENT = 0.119
OUT_RATIO_TEACHER_UINT8 = 0.969
OUT_RATIO_TEACHER_FLOAT16 = 1.640
# `teacher-targets` reads the teacher-view dataset and writes the student view plus the targets:
# 3,862 predictions and the 4,096-wide representation, ~15 kB a video compressed ("Offline teacher
# targets"); its rate is taken to be the teacher's scoring rate (the model dominates both jobs).
TARGETS_BYTES_PER_VIDEO = 15_000
# Scoring writes predictions.csv (top 20 "label score" pairs) and videos.parquet: ~1 kB a video.
OUT_BYTES_SCORING_PER_VIDEO = 1_000
# The duplicate check shuffles (id, (source path, record index)) per video: 56 bytes with Beam's
# FastPrimitivesCoder and a 42-character path (measured here); 64 for gs:// paths of ~50.
SHUFFLE_BYTES_PER_VIDEO = 64

# ----- machines and list prices (us-central1, on demand), as remembered in 2025 -------------------
MACHINES = {"n2-standard-4": (4, 16.0), "n1-standard-4": (4, 15.0), "n2-standard-16": (16, 64.0)}
PRICE_VCPU_HOUR = 0.056  # Dataflow batch worker, per vCPU-hour
PRICE_GB_HOUR = 0.003557  # Dataflow batch worker memory, per GB-hour
PRICE_PD_GB_HOUR = 0.000054  # standard persistent disk, per GB-hour
PD_GB_PER_WORKER = 25  # Dataflow's boot disk with Dataflow Shuffle (batch default)
PRICE_SHUFFLE_GB = 0.011  # Dataflow Shuffle, batch, per GB processed
# Compute Engine per-VM egress: 2 Gbps per vCPU, at most 16 Gbps (N1) or 32 Gbps (N2); ingress
# is taken to be the same (we remember no figure for it).
GBPS_PER_VCPU = 2.0
GBPS_CAP = {"n1": 16.0, "n2": 32.0}

# ----- GPU training, RESULTS.md "GPU: training throughput on an NVIDIA H200" --------------------------
# examples/s in steps, batch 64, 16 input workers, 300-frame videos (frames padded to 300, so real
# shorter videos cost the same).
GPU_RATES = {"teacher (hlstm)": 3_120, "student (hlstm-student)": 8_650, "parallel": 2_400}
# Input read by each job, bytes a video: the teacher and parallel jobs read the full view (uint8
# teacher-view dataset above); the student reads the stored every_n:10 columns only.
GPU_INPUT_BYTES = {
    "teacher (hlstm)": OUT_RATIO_TEACHER_UINT8 * BYTES_PER_VIDEO,
    "student (hlstm-student)": OUT_RATIO_STUDENT * BYTES_PER_VIDEO,
    "parallel": OUT_RATIO_TEACHER_UINT8 * BYTES_PER_VIDEO,
}
# Full-view input alone on the 16-CPU H200 host, 16 workers (same RESULTS section).
GPU_HOST_INPUT_FULL_VIEW = 3_973
PRICE_GPU_HOUR = 11.03  # a3-highgpu-8g (8 x H100 80GB) at $88.25/hour, per GPU with its host share;
# no remembered list price for an H200 machine, so the H100 one stands in for it.


@dataclass(frozen=True)
class DataflowJob:
    name: str
    partition: str
    rate: float  # videos/s per core
    out_bytes_per_video: float
    shuffle_bytes_per_video: float
    in_bytes_per_video: float = BYTES_PER_VIDEO  # raw shards unless the job reads a dataset


JOBS = [
    DataflowJob("preprocess, every_n:10 float16", "train", RATE_PREPROCESS_STUDENT,
                OUT_RATIO_STUDENT * BYTES_PER_VIDEO, SHUFFLE_BYTES_PER_VIDEO),
    DataflowJob("preprocess, + teacher view uint8", "train", RATE_PREPROCESS_TEACHER_UINT8,
                OUT_RATIO_TEACHER_UINT8 * BYTES_PER_VIDEO, SHUFFLE_BYTES_PER_VIDEO),
    DataflowJob("preprocess, + teacher view float16", "train", RATE_PREPROCESS_TEACHER_FLOAT16,
                OUT_RATIO_TEACHER_FLOAT16 * BYTES_PER_VIDEO, SHUFFLE_BYTES_PER_VIDEO),
    DataflowJob("preprocess, every_n:10 float16", "validate", RATE_PREPROCESS_STUDENT,
                OUT_RATIO_STUDENT * BYTES_PER_VIDEO, SHUFFLE_BYTES_PER_VIDEO),
    DataflowJob("score, student every_n:10", "test", RATE_SCORE_STUDENT, OUT_BYTES_SCORING_PER_VIDEO, 0),
    DataflowJob("score, teacher all frames", "test", RATE_SCORE_TEACHER, OUT_BYTES_SCORING_PER_VIDEO, 0),
    DataflowJob("teacher targets, teacher all frames", "train", RATE_SCORE_TEACHER,
                OUT_RATIO_STUDENT * BYTES_PER_VIDEO + TARGETS_BYTES_PER_VIDEO, 0,
                OUT_RATIO_TEACHER_UINT8 * BYTES_PER_VIDEO),
]  # fmt: skip


def vm_bandwidth_bytes_per_s(machine: str) -> float:
    vcpus, _ = MACHINES[machine]
    gbps = min(GBPS_PER_VCPU * vcpus, GBPS_CAP[machine.split("-")[0]])
    return gbps * 1e9 / 8


def vm_price_hour(machine: str) -> float:
    vcpus, memory_gb = MACHINES[machine]
    return vcpus * PRICE_VCPU_HOUR + memory_gb * PRICE_GB_HOUR + PD_GB_PER_WORKER * PRICE_PD_GB_HOUR


def plan_dataflow(job: DataflowJob, machine: str, seconds: float) -> dict:
    vcpus_per_vm, _ = MACHINES[machine]
    videos = VIDEOS[job.partition]
    in_bytes = videos * job.in_bytes_per_video
    out_bytes = videos * job.out_bytes_per_video
    core_hours = videos / job.rate / 3600
    vms_cpu = math.ceil(videos / (job.rate * CORE_EFFICIENCY * seconds * vcpus_per_vm))
    bandwidth = vm_bandwidth_bytes_per_s(machine)
    vms_net = math.ceil(max(in_bytes, out_bytes) / (seconds * bandwidth))
    vms = max(vms_cpu, vms_net, 1)
    cpu_s = videos / (job.rate * CORE_EFFICIENCY * vcpus_per_vm * vms)
    net_s = max(in_bytes, out_bytes) / (bandwidth * vms)
    hours = max(cpu_s, net_s) / 3600
    shuffle_gb = videos * job.shuffle_bytes_per_video / 1e9
    cost = vms * hours * vm_price_hour(machine) + shuffle_gb * PRICE_SHUFFLE_GB
    return {
        "job": job, "videos": videos, "in_bytes": in_bytes, "out_bytes": out_bytes, "core_hours": core_hours,
        "vms": vms, "vcpus": vms * vcpus_per_vm, "vms_cpu": vms_cpu, "vms_net": vms_net,
        "bound": "CPU" if cpu_s >= net_s else "network", "cpu_s": cpu_s, "net_s": net_s, "hours": hours,
        "shuffle_gb": shuffle_gb, "cost": cost,
    }  # fmt: skip


def plan_gpu(job: str, gpus: int, epoch_videos: int, seconds: float = 1800.0) -> dict:
    rate = GPU_RATES[job]
    one_gpu_s = epoch_videos / rate
    return {
        "job": job, "gpus": gpus, "epoch_s": one_gpu_s / gpus, "gpu_hours": one_gpu_s / 3600,
        "cost": one_gpu_s / 3600 * PRICE_GPU_HOUR,
        "input_bytes_per_s": gpus * rate * GPU_INPUT_BYTES[job],
        "gpus_for_epoch_in_time": math.ceil(one_gpu_s / seconds),
    }  # fmt: skip


def _rate(rate: float) -> str:
    return f"{rate:,.0f}" if rate >= 100 else f"{rate:.1f}"


def _tb(b: float) -> str:
    return f"{b / 1e12:.2f} TB" if b >= 1e11 else f"{b / 1e9:.1f} GB"


def report(minutes: float, machine: str) -> str:
    seconds = minutes * 60
    vcpus, memory = MACHINES[machine]
    lines = [
        f"Dataflow, {machine} ({vcpus} vCPUs, {memory:g} GB, ${vm_price_hour(machine):.4f}/hour), "
        f"a {minutes:g}-minute run, {BYTES_PER_VIDEO / 1e3:.1f} kB a raw video:",
        "",
        "| job | partition | videos | input | output | videos/s/core | core-hours | VMs (vCPUs) "
        "| bound (CPU VMs / network VMs) | hours | cost |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for job in JOBS:
        p = plan_dataflow(job, machine, seconds)
        lines.append(
            f"| {job.name} | {job.partition} | {p['videos']:,} "
            f"| {_tb(p['in_bytes'])} | {_tb(p['out_bytes'])} "
            f"| {_rate(job.rate)} | {p['core_hours']:.1f} | {p['vms']} ({p['vcpus']}) "
            f"| {p['bound']} ({p['vms_cpu']} / {p['vms_net']}) | {p['hours']:.2f} | ${p['cost']:.2f} |"
        )
    epoch = VIDEOS["train"]
    lines += [
        "",
        f"GPU training, one epoch of {epoch:,} train videos, ${PRICE_GPU_HOUR:.2f} per GPU-hour:",
        "",
        f"| job | examples/s per GPU | epoch on 1 GPU | on 8 GPUs | GPUs for a {minutes:g}-minute epoch "
        "| GPU-hours per epoch | cost per epoch | input on 8 GPUs |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for job in GPU_RATES:
        one, eight = plan_gpu(job, 1, epoch, seconds), plan_gpu(job, 8, epoch, seconds)
        lines.append(
            f"| {job} | {GPU_RATES[job]:,} | {one['epoch_s'] / 60:.1f} min | {eight['epoch_s'] / 60:.1f} min "
            f"| {one['gpus_for_epoch_in_time']} | {one['gpu_hours']:.2f} | ${one['cost']:.2f} "
            f"| {eight['input_bytes_per_s'] / 1e9:.1f} GB/s |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=30.0, help="wall time of each Dataflow run")
    parser.add_argument("--machine", default="n2-standard-4", choices=sorted(MACHINES))
    args = parser.parse_args()
    if args.minutes <= 0:
        parser.error("--minutes must be positive")
    print(report(args.minutes, args.machine))


if __name__ == "__main__":
    main()
