"""Training on several workers and devices: shares of the data, two real worker processes
on localhost, a lost worker, logical CPU devices, JAX DataParallel."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from schemas import features as F
from schemas.views import View
from tests.conftest import REPO_ROOT, make_dataset
from trainer import inputs, task
from trainer import inputs as I
from trainer.labels import LabelSpace
from trainer.training import distribution as D
from trainer.training.checkpoints import STATE_NAME

DEADLINE = 240  # seconds any one training process may take before the test fails it
# The two-worker run reads other batches in another order than the one-worker run (each
# worker shuffles its own share), so its loss is close, not equal: within 2 %.
LOSS_TOLERANCE = 0.02


@pytest.fixture(scope="module")
def grouped_dataset(tmp_path_factory):
    """40 videos in Parquet row groups of a video or two (so there are more row groups
    than files), and TFRecord."""
    return make_dataset(tmp_path_factory.mktemp("grouped"), extra=["--parquet-row-group-mb", "0.05"])


def _plan(dataset):
    label_space = LabelSpace.build("entities", 8, None)
    return I.plan_inputs(str(dataset), "student", View.parse("every_n:4"), ("rgb", "audio"), label_space)


def _ids_of(plan, fmt, share):
    ids = []
    if fmt == "parquet":
        batches = I.numpy_batches(plan, 4, with_ids=True, share=share)
    else:
        batches = I.tf_dataset(plan, 4, with_ids=True, share=share).as_numpy_iterator()
    for x, _ in batches:
        ids += [i.decode() if isinstance(i, bytes) else str(i) for i in x[F.ID]]
    return ids


@pytest.mark.parametrize(
    "fmt, workers, by",
    [("parquet", 2, D.BY_ROW_GROUPS), ("parquet", 3, D.BY_ROW_GROUPS), ("tfrecord", 3, D.BY_RECORDS)],
)
def test_worker_shares_are_disjoint_and_cover_the_dataset(grouped_dataset, fmt, workers, by):
    plan = _plan(grouped_dataset)
    everything = _ids_of(plan, fmt, None)
    assert len(everything) == len(set(everything)) == 40
    shares = D.shares(str(grouped_dataset), fmt, workers)
    assert [s.worker for s in shares] == list(range(workers)) and {s.by for s in shares} == {by}
    read = [_ids_of(plan, fmt, share) for share in shares]
    for share, ids in zip(shares, read, strict=True):
        assert len(ids) == len(set(ids)) == share.examples > 0
    assert sum(len(ids) for ids in read) == 40
    assert set().union(*map(set, read)) == set(everything)
    # balanced: the shares differ by at most a row group (here two videos at most)
    assert max(s.examples for s in shares) - min(s.examples for s in shares) <= 2


def test_tfrecord_files_are_dealt_whole_when_each_worker_gets_its_part(grouped_dataset):
    plan = _plan(grouped_dataset)
    counts = [D._count_records(f) for f in inputs.dataset_files(str(grouped_dataset), "tfrecord")]
    shares = D.shares(str(grouped_dataset), "tfrecord", 2)
    if min(counts) * 4 >= sum(counts):  # the writer balanced its two files
        assert [s.by for s in shares] == [D.BY_FILES] * 2
        assert sorted(s.examples for s in shares) == sorted(counts)
    else:  # a lopsided writer: records are dealt instead
        assert [s.by for s in shares] == [D.BY_RECORDS] * 2
    read = [set(_ids_of(plan, "tfrecord", s)) for s in shares]
    assert not read[0] & read[1] and len(read[0] | read[1]) == 40


def test_every_worker_takes_the_steps_its_smallest_share_fills():
    shares = [D.Share(0, 2, D.BY_FILES, ("a",), examples=23), D.Share(1, 2, D.BY_FILES, ("b",), examples=17)]
    assert D.steps_per_epoch(shares, 4) == 4  # 17 // 4, though the first share fills 5
    with pytest.raises(ValueError, match="fewer than a worker's batch"):
        D.steps_per_epoch(shares, 18)


def test_the_global_batch_must_split_evenly_over_the_replicas():
    two = D.Distribution(D.MULTI_WORKER, D.Cluster(True, 2, 0), replicas=4)
    assert two.worker_batch(8) == 4  # each worker reads half the global batch
    with pytest.raises(ValueError, match="multiple of the 4 replicas"):
        two.worker_batch(6)


def test_workers_are_numbered_chief_first():
    cluster = {"chief": ["a:1"], "worker": ["b:1", "c:1"]}
    numbers = [
        D.cluster_from_environ({"TF_CONFIG": json.dumps({"cluster": cluster, "task": task_})}).worker
        for task_ in (
            {"type": "chief", "index": 0},
            {"type": "worker", "index": 0},
            {"type": "worker", "index": 1},
        )
    ]
    assert numbers == [0, 1, 2]


# ----- real processes -------------------------------------------------------------------
def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _argv(dataset, job_dir, *extra):
    """The job every test here runs; the training set is its own eval set (GAP each epoch)."""
    return ["--train", str(dataset), "--eval", str(dataset), "--job-dir", str(job_dir), "--mode", "student",
            "--student", "dbof-small", "--view", "every_n:4", "--batch-size", "8", "--epochs", "3",
            "--seed", "3", "--verbose", "0", *extra]  # fmt: skip


def _start(argv, log_path, **env):
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO_ROOT), **env}
    with open(log_path, "w") as log:
        return subprocess.Popen([sys.executable, "-m", "trainer.task", *argv], cwd=REPO_ROOT,
                                env=environment, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip


def _start_workers(dataset, tmp_path, run):
    """Two workers on localhost: the chief's job dir `chief`, the other's `worker`; the
    checkpoints they both read in `checkpoints` (AIP_CHECKPOINT_DIR)."""
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    processes = []
    for index, name in enumerate(("chief", "worker")):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        argv = _argv(dataset, tmp_path / name, "--checkpoint-every", "1", "--collective-timeout", "60")
        processes.append(_start(argv, tmp_path / f"{name}-{run}.log", TF_CONFIG=tf_config,
                                AIP_CHECKPOINT_DIR=str(tmp_path / "checkpoints")))  # fmt: skip
    return processes


def _finish(process, log_path):
    try:
        code = process.wait(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError(f"a worker ran past its deadline:\n{log_path.read_text()[-3000:]}") from None
    return code


def _wait_for_step(state_path, step, processes):
    deadline = time.time() + DEADLINE
    while time.time() < deadline:
        if state_path.exists() and json.loads(state_path.read_text())["global_step"] >= step:
            return
        assert all(p.poll() is None for p in processes), "training ended before a worker could be killed"
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared")


def _resumed_at(state):
    """What `fewframes train` prints when it resumes from `state`."""
    epoch = f"epoch {state['epoch'] + 1}/3"
    return f"{epoch} (resuming at batch {state['step']})" if state["step"] else epoch


@pytest.fixture(scope="module")
def one_worker_summary(grouped_dataset, tmp_path_factory):
    """The same job on one worker (one device, Keras's fit), with the same global batch."""
    return task.train_from_argv(_argv(grouped_dataset, tmp_path_factory.mktemp("one-worker")), verbose=0)


def test_two_workers_train_one_model_and_a_killed_worker_fails_the_run_which_the_same_commands_resume(
    tmp_path, grouped_dataset, one_worker_summary
):
    state_path = tmp_path / "checkpoints" / STATE_NAME
    # SIGTERM (preemption) on one worker stops both after the same step: exit 143, a checkpoint.
    chief, worker = _start_workers(grouped_dataset, tmp_path, "first")
    _wait_for_step(state_path, 1, [chief, worker])
    worker.send_signal(signal.SIGTERM)
    assert _finish(worker, tmp_path / "worker-first.log") == task.EXIT_PREEMPTED
    assert _finish(chief, tmp_path / "chief-first.log") == task.EXIT_PREEMPTED
    preempted = json.loads(state_path.read_text())
    assert 0 < preempted["global_step"] < 15

    # SIGKILL of one worker: the other's next all-reduce fails: one line, exit 4.
    chief, worker = _start_workers(grouped_dataset, tmp_path, "second")
    _wait_for_step(state_path, preempted["global_step"] + 1, [chief, worker])
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=DEADLINE)
    assert _finish(chief, tmp_path / "chief-second.log") == task.EXIT_PEER_LOST
    log = (tmp_path / "chief-second.log").read_text()
    assert _resumed_at(preempted) in log
    errors = [line for line in log.splitlines() if "error" in line]
    lost = "fewframes train: error: worker 0: a collective with the other workers failed"
    assert errors[-1].startswith(lost) and "Traceback" not in log
    interrupted = json.loads(state_path.read_text())
    assert interrupted["global_step"] > preempted["global_step"]
    assert not (tmp_path / "chief" / "summary.json").exists()

    # The same two commands again: both resume from the last checkpoint and finish.
    chief, worker = _start_workers(grouped_dataset, tmp_path, "again")
    assert _finish(chief, tmp_path / "chief-again.log") == 0, (tmp_path / "chief-again.log").read_text()
    assert _finish(worker, tmp_path / "worker-again.log") == 0, (tmp_path / "worker-again.log").read_text()
    for name in ("chief", "worker"):  # each skipped the batches its share had trained on
        log = (tmp_path / f"{name}-again.log").read_text()
        assert _resumed_at(interrupted) in log and (interrupted["epoch"] == 0 or "epoch 1/3" not in log)

    # Only the chief wrote: the other worker's job dir was never created.
    assert not (tmp_path / "worker").exists()
    for output in (
        "config.json",
        "summary.json",
        "weights/student.weights.h5",
        "export/saved_model.pb",
        "logs",
    ):
        assert (tmp_path / "chief" / output).exists(), output
    summary = json.loads((tmp_path / "chief" / "summary.json").read_text())
    shares = D.shares(str(grouped_dataset), "parquet", 2)
    assert summary["distribution"] == {
        "strategy": "MultiWorkerMirroredStrategy",
        "workers": 2,
        "replicas": 2,
        "examples_per_worker": [s.examples for s in shares],
        "global_batch": 8,
        "per_replica_batch": 4,
    }
    assert sum(summary["distribution"]["examples_per_worker"]) == 40
    # 3 epochs of min(20, 20) // 4 steps, as the one-worker run's 40 // 8.
    assert summary["global_step"] == one_worker_summary["global_step"] == 15
    reference = one_worker_summary["metrics"]["loss"]
    assert abs(summary["metrics"]["loss"] - reference) <= LOSS_TOLERANCE * reference
    assert 0 < summary["metrics"]["val_student_gap"] <= 1  # every worker evaluated; the chief reports


def test_mirrored_strategy_over_logical_cpu_devices_trains_like_one_device(
    tmp_path, grouped_dataset, one_worker_summary
):
    argv = _argv(grouped_dataset, tmp_path / "job", "--cpu-devices", "2", "--no-export")
    process = _start(argv, tmp_path / "log")
    assert _finish(process, tmp_path / "log") == 0, (tmp_path / "log").read_text()
    summary = json.loads((tmp_path / "job" / "summary.json").read_text())
    assert summary["distribution"] == {
        "strategy": "MirroredStrategy",
        "workers": 1,
        "replicas": 2,
        "examples_per_worker": [40],
        "global_batch": 8,
        "per_replica_batch": 4,
    }
    assert summary["global_step"] == 15
    # The same batches as on one device, split over two: the same loss and evaluation up
    # to the order of float sums.
    for name in ("loss", "val_student_gap", "val_student_hit_at_1"):
        reference = one_worker_summary["metrics"][name]
        assert abs(summary["metrics"][name] - reference) <= 1e-3 * reference, name


def test_jax_data_parallel_splits_each_batch_over_the_visible_devices_and_trains_like_one_device(
    tmp_path, grouped_dataset
):
    # jax[cpu] is in the test extra: two host devices forced by XLA_FLAGS stand in for GPUs.
    jax_env = {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    two = _start(_argv(grouped_dataset, tmp_path / "two", "--no-export"), tmp_path / "two.log",
                 XLA_FLAGS="--xla_force_host_platform_device_count=2", **jax_env)  # fmt: skip
    one = _start(_argv(grouped_dataset, tmp_path / "one", "--no-export"), tmp_path / "one.log", **jax_env)
    assert _finish(two, tmp_path / "two.log") == 0, (tmp_path / "two.log").read_text()
    assert _finish(one, tmp_path / "one.log") == 0, (tmp_path / "one.log").read_text()
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    reference = json.loads((tmp_path / "one" / "summary.json").read_text())
    assert summary["backend"] == reference["backend"] == "jax"
    assert summary["distribution"] == {
        "strategy": "DataParallel",
        "workers": 1,
        "replicas": 2,
        "examples_per_worker": [40],
        "global_batch": 8,
        "per_replica_batch": 4,
    }
    assert reference["distribution"]["replicas"] == 1
    assert summary["global_step"] == reference["global_step"] == 15
    # The same batches as on one device, each split over two: the same loss and
    # evaluation up to the order of float sums.
    for name in ("loss", "val_student_gap", "val_student_hit_at_1"):
        expected = reference["metrics"][name]
        assert abs(summary["metrics"][name] - expected) <= 1e-3 * expected, name
