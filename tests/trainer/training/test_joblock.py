"""The job dir's lock: one training per job dir at a time (local disk and gs://)."""

import json
import os
import socket
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT
from tests.e2e.test_gcs import BUCKET, gcs, gcs_server  # noqa: F401 (fixtures)
from trainer import task
from trainer.training import joblock

HOLD = (
    "import sys, time; from trainer.training import joblock; joblock.acquire(sys.argv[1]); "
    "print('held', flush=True); time.sleep(300)"
)


def _holder(job_dir) -> subprocess.Popen:
    """Another process holding the lock of `job_dir`, as a running training does."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(job_dir)], stdout=subprocess.PIPE, text=True,
                               env=env)  # fmt: skip
    assert process.stdout.readline().strip() == "held"
    return process


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_second_training_in_a_job_dir_in_use_refuses_in_one_line_and_takes_over_once_it_died(
    tmp_path, tiny_frame_dataset, capsys
):
    job = tmp_path / "job"
    argv = ["--train", str(tiny_frame_dataset), "--job-dir", str(job), "--student", "mean-moe-small",
            "--view", "every_n:4", "--batch-size", "8", "--epochs", "1", "--max-steps-per-epoch", "2",
            "--checkpoint-every", "1", "--verbose", "0"]  # fmt: skip
    holder = _holder(job)
    try:
        assert task.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1
        assert f"{job} is in use by another training (host {socket.gethostname()}, pid {holder.pid}," in err
        assert sorted(p.name for p in job.iterdir()) == [joblock.LOCK_NAME]  # the refused run wrote nothing
    finally:
        holder.kill()
        holder.wait()
    # The holder was killed without releasing its lock: the next training takes it over.
    assert task.main(argv) == 0
    assert not (job / joblock.LOCK_NAME).exists()  # released at the end
    assert (job / "export" / "saved_model.pb").exists()


def test_the_lock_is_released_when_training_fails(tmp_path, tiny_frame_dataset):
    job = tmp_path / "job"
    with pytest.raises(task.UsageError, match="an epoch would train no step"):
        task.train_from_argv(["--train", str(tiny_frame_dataset), "--job-dir", str(job), "--student",
                              "mean-moe-small", "--batch-size", "41"], verbose=0)  # fmt: skip
    assert not job.exists()  # the lock, and the job dir it was made for, are gone
    holding = joblock.acquire(str(job))
    joblock.release(holding)


def test_a_lock_of_a_live_process_or_another_host_is_not_taken_over(tmp_path):
    for host, pid in ((socket.gethostname(), os.getppid()), ("other-host", _dead_pid())):
        (tmp_path / joblock.LOCK_NAME).write_text(json.dumps({"host": host, "pid": pid, "token": "t"}))
        with pytest.raises(joblock.JobDirLocked, match=f"host {host}, pid {pid},"):
            joblock.acquire(str(tmp_path))
        assert json.loads((tmp_path / joblock.LOCK_NAME).read_text())["token"] == "t"


def test_a_stale_lock_of_a_dead_process_of_this_host_is_taken_over_and_released(tmp_path, caplog):
    stale = {"host": socket.gethostname(), "pid": _dead_pid(), "token": "stale"}
    (tmp_path / joblock.LOCK_NAME).write_text(json.dumps(stale))
    lock = joblock.acquire(str(tmp_path))
    held = json.loads((tmp_path / joblock.LOCK_NAME).read_text())
    assert held["pid"] == os.getpid() and held["token"] == lock.token
    assert f"pid {stale['pid']} on this host) is no longer running" in caplog.text
    joblock.release(lock)
    assert sorted(os.listdir(tmp_path)) == []


def test_other_workers_of_a_multi_worker_run_take_no_lock(tmp_path):
    with joblock.holding(str(tmp_path), chief=True):
        with joblock.holding(str(tmp_path), chief=False) as worker:
            assert worker is None
        with pytest.raises(joblock.JobDirLocked):
            joblock.acquire(str(tmp_path))


def test_a_gs_job_dir_is_locked_by_a_create_if_absent_object(gcs):  # noqa: F811 (fixture)
    # The emulator ignores generation preconditions, so what this covers is the lock's
    # object, its refusal, takeover and release; GCS's if_generation_match=0 settles a race.
    job_dir = f"gs://{BUCKET}/jobs/locked"
    lock = joblock.acquire(job_dir)
    blob = gcs.bucket(BUCKET).blob(f"jobs/locked/{joblock.LOCK_NAME}")
    assert json.loads(blob.download_as_text())["token"] == lock.token
    with pytest.raises(
        joblock.JobDirLocked, match=f"{job_dir} is in use by another training .*pid {os.getpid()},"
    ):
        joblock.acquire(job_dir)
    joblock.release(lock)
    assert not blob.exists()
    # A stale lock of a dead process of this host is taken over.
    blob.upload_from_string(json.dumps({"host": socket.gethostname(), "pid": _dead_pid(), "token": "stale"}))
    lock = joblock.acquire(job_dir)
    assert json.loads(blob.download_as_text())["token"] == lock.token
    joblock.release(lock)
    assert not blob.exists()
