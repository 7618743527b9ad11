"""benchmarks/plan.py: the planning table's counts do the work in the time, and no fewer would."""

from __future__ import annotations

import pytest

from benchmarks import plan
from pipelines.records.tfrecord_io import Record, iter_frames

SECONDS = 30 * 60


@pytest.mark.parametrize("machine", sorted(plan.MACHINES))
@pytest.mark.parametrize("job", plan.JOBS, ids=lambda job: f"{job.name}, {job.partition}")
def test_each_dataflow_job_gets_the_fewest_vms_that_process_and_move_its_videos_in_the_run(job, machine):
    p = plan.plan_dataflow(job, machine, SECONDS)
    vcpus, _ = plan.MACHINES[machine]
    bandwidth = plan.vm_bandwidth_bytes_per_s(machine)
    moved = max(p["in_bytes"], p["out_bytes"])

    def enough(vms):
        cpu = job.rate * plan.CORE_EFFICIENCY * vcpus * vms * SECONDS >= p["videos"]
        return cpu and bandwidth * vms * SECONDS >= moved

    assert enough(p["vms"])
    assert p["vms"] == 1 or not enough(p["vms"] - 1)
    assert p["hours"] * 3600 <= SECONDS * (1 + 1e-9)
    assert p["vcpus"] == p["vms"] * vcpus


@pytest.mark.parametrize("job", sorted(plan.GPU_RATES))
def test_the_gpus_for_a_half_hour_epoch_are_the_fewest_that_read_every_train_video(job):
    videos = plan.VIDEOS["train"]
    gpus = plan.plan_gpu(job, 1, videos, SECONDS)["gpus_for_epoch_in_time"]
    assert gpus * plan.GPU_RATES[job] * SECONDS >= videos > (gpus - 1) * plan.GPU_RATES[job] * SECONDS


def test_the_quoted_size_fits_the_whole_frame_level_set_and_cannot_be_train_alone():
    all_videos = sum(plan.VIDEOS.values())
    assert plan.QUOTED_TOTAL_BYTES / all_videos == pytest.approx(plan.BYTES_PER_VIDEO, rel=0.05)
    # A video holds at most 300 frames of 1,170 bytes (1,152 of features): 1.53 TB over the
    # train videos alone would need more than that in every video.
    assert plan.QUOTED_TOTAL_BYTES / plan.VIDEOS["train"] > 300 * 1_170


def test_bytes_per_video_is_what_the_real_frame_sample_holds(shared_data_dir):
    paths = sorted((shared_data_dir / "yt8m-v2-frame-sample").glob("*.tfrecord"))
    videos = 0
    for path in paths:
        with open(path, "rb") as f:
            videos += sum(isinstance(item, Record) for item in iter_frames(f))
    assert videos == 40
    assert plan.BYTES_PER_VIDEO == sum(p.stat().st_size for p in paths) / videos
