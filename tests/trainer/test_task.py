"""`fewframes train` end to end on generated data: modes, resume, export, parity."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import REPO_ROOT, assert_refused_before_any_work
from trainer import inputs, task
from trainer.config import TrainConfig
from trainer.job_dir import SUMMARY_NAME
from trainer.training import loop
from trainer.training.checkpoints import STATE_NAME

SMALL = ["--batch-size", "8", "--verbose", "0"]


def _train(argv):
    return task.train_from_argv(argv, verbose=0)


def _weights(path):
    import h5py

    out = {}
    with h5py.File(path) as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if hasattr(obj, "shape") else None)
    return out


def _command(dataset, job_dir, *extra):
    return [
        "--train", str(dataset), "--job-dir", str(job_dir), "--view", "every_n:4", *SMALL, *extra,
    ]  # fmt: skip


# ----- modes ----------------------------------------------------------------------------
def test_parallel_mode_never_updates_the_teacher_from_the_students_losses(tmp_path, tiny_frame_dataset):
    common = ["--teacher", "dbof-small", "--epochs", "1", "--max-steps-per-epoch", "3", "--seed", "4"]
    _train(_command(tiny_frame_dataset, tmp_path / "t", "--mode", "teacher", *common))
    _train(_command(tiny_frame_dataset, tmp_path / "p", "--mode", "parallel", "--student", "mean-moe-small",
                    *common))  # fmt: skip
    alone = _weights(tmp_path / "t" / "weights" / "teacher.weights.h5")
    parallel = _weights(tmp_path / "p" / "weights" / "teacher.weights.h5")
    assert alone.keys() == parallel.keys() and len(alone) > 2
    initial = None
    for name in alone:
        np.testing.assert_allclose(parallel[name], alone[name], rtol=1e-5, atol=1e-6, err_msg=name)
    # ... and the teacher did train: three steps moved it away from its initial weights.
    _train(_command(tiny_frame_dataset, tmp_path / "t0", "--mode", "teacher", *common[:-4],
                    "--max-steps-per-epoch", "1", "--learning-rate", "0", "--seed", "4"))  # fmt: skip
    initial = _weights(tmp_path / "t0" / "weights" / "teacher.weights.h5")
    assert any(not np.allclose(initial[n], alone[n]) for n in alone)


def test_serial_mode_rebuilds_and_freezes_the_teacher(tmp_path, tiny_frame_dataset):
    _train(_command(tiny_frame_dataset, tmp_path / "t", "--mode", "teacher", "--teacher", "dbof-small",
                    "--epochs", "1"))  # fmt: skip
    teacher_dir = str(tmp_path / "t")
    summary = _train(_command(tiny_frame_dataset, tmp_path / "s", "--mode", "serial", "--student",
                              "mean-moe-small", "--teacher-dir", teacher_dir, "--epochs", "1"))  # fmt: skip
    assert summary["outcome"] == "completed"
    assert {"student_ce", "rep", "pred"} <= set(summary["metrics"])
    assert not (tmp_path / "s" / "weights" / "teacher.weights.h5").exists()
    # Frozen: every teacher array is in the serial job's last checkpoint, unchanged.
    state = json.loads((tmp_path / "s" / "checkpoints" / STATE_NAME).read_text())
    checkpoint = list(_weights(tmp_path / "s" / "checkpoints" / state["weights"]).values())
    teacher = _weights(tmp_path / "t" / "weights" / "teacher.weights.h5")
    for name, array in teacher.items():
        assert any(c.shape == array.shape and np.array_equal(c, array) for c in checkpoint), name
    assert (tmp_path / "s" / "export" / "saved_model.pb").exists()


def test_a_serial_student_without_distillation_terms_trains_as_the_student_alone(
    tmp_path, tiny_frame_dataset
):
    # The student is seeded after the teacher's build, so a distilled student and the plain
    # one start from the same weights and read the same batches: they differ by the
    # distillation terms only, and with both at weight 0 not at all.
    _train(_command(tiny_frame_dataset, tmp_path / "t", "--mode", "teacher", "--teacher", "dbof-small",
                    "--epochs", "1", "--max-steps-per-epoch", "2"))  # fmt: skip
    common = ["--student", "dbof-small", "--epochs", "1", "--max-steps-per-epoch", "3", "--seed", "5"]
    _train(_command(tiny_frame_dataset, tmp_path / "alone", "--mode", "student", *common))
    _train(_command(tiny_frame_dataset, tmp_path / "serial", "--mode", "serial", "--teacher-dir",
                    str(tmp_path / "t"), "--rep-weight", "0", "--pred-weight", "0", *common))  # fmt: skip
    alone = _weights(tmp_path / "alone" / "weights" / "student.weights.h5")
    serial = _weights(tmp_path / "serial" / "weights" / "student.weights.h5")
    assert alone.keys() == serial.keys() and len(alone) > 2
    for name in alone:
        np.testing.assert_allclose(serial[name], alone[name], rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--mode", "teacher"], "needs --teacher"),
        (["--mode", "serial", "--student", "mean-moe-small"], "needs --teacher-dir"),
        (["--mode", "student", "--student", "no-such-model"], "no-such-model"),
        (["--mode", "student", "--student", "mean-moe-small", "--features", "rgb,depth"], "--features"),
        (["--mode", "student", "--student", "mean-moe-small", "--label-space", "verticals"], "--vocabulary"),
    ],
)
def test_command_line_mistakes_are_one_line_errors(tmp_path, tiny_frame_dataset, argv, message, capsys):
    code = task.main(["--train", str(tiny_frame_dataset), "--job-dir", str(tmp_path / "j"), *argv])
    assert code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--learning-rate", "nan"], "learning_rate must be a finite number >= 0, not nan"),
        (["--learning-rate", "-0.1"], "learning_rate must be a finite number >= 0, not -0.1"),
        (["--clipnorm", "0"], "clipnorm must be a finite number > 0"),
    ],
)
def test_a_run_that_cannot_train_is_refused_before_any_work(tmp_path, tiny_frame_dataset, argv, message,
                                                             capsys):  # fmt: skip
    command = _command(tiny_frame_dataset, tmp_path / "j", "--student", "mean-moe-small", *argv)
    assert_refused_before_any_work(command, tmp_path / "j", message, capsys)


@pytest.mark.parametrize(
    "flag,value", [("--shuffle-buffer", "0"), ("--max-steps-per-epoch", "-1"), ("--max-steps-per-epoch", "0")]
)
def test_step_and_example_counts_below_one_are_usage_errors(tmp_path, tiny_frame_dataset, flag, value,
                                                            capsys):  # fmt: skip
    with pytest.raises(SystemExit) as exit_:
        task.main(_command(tiny_frame_dataset, tmp_path / "j", "--student", "mean-moe-small", flag, value))
    assert exit_.value.code == 2
    assert f"argument {flag}: {value} must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "j").exists()


@pytest.mark.parametrize("damage", ["corrupted", "truncated"])
def test_a_damaged_tfrecord_file_in_training_is_a_one_line_error_naming_it(
    tmp_path, tiny_frame_dataset, damage, capsys
):
    import shutil

    copy = tmp_path / "ds"
    shutil.copytree(tiny_frame_dataset, copy)
    damaged = copy / "tfrecord" / "part-00001-of-00002.tfrecord"
    data = bytearray(damaged.read_bytes())
    if damage == "corrupted":
        data[len(data) // 2] ^= 0xFF
    else:
        del data[len(data) // 2 :]
    damaged.write_bytes(bytes(data))
    argv = _command(copy, tmp_path / "j", "--student", "mean-moe-small", "--input-format", "tfrecord")
    assert task.main(argv + ["--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"fewframes train: error: cannot read {damaged}: {damage} record at ")
    assert not (tmp_path / "j" / "export").exists()


# ----- export apart from training (JAX / PyTorch jobs) -----------------------------------
def test_a_job_without_export_is_exported_later_from_its_weights(tmp_path, tiny_frame_dataset, capsys):
    from trainer.export import LoadedExport

    job = tmp_path / "j"
    summary = _train(_command(tiny_frame_dataset, job, "--mode", "parallel", "--teacher", "mean-moe-small",
                              "--student", "dbof-small", "--epochs", "1", "--no-export"))  # fmt: skip
    assert summary["exports"] == {} and "--export-only" in summary["export_skipped"]
    assert not (job / "export").exists() and not (job / "export_teacher").exists()

    assert task.main(["--job-dir", str(job), "--export-only"]) == 0
    assert f"exported the student: {job / 'export'}" in capsys.readouterr().out
    saved = json.loads((job / SUMMARY_NAME).read_text())
    assert saved["exports"] == {"student": str(job / "export"), "teacher": str(job / "export_teacher")}
    assert "export_skipped" not in saved
    config = TrainConfig.from_json((job / "config.json").read_text())
    frames = np.random.default_rng(0).normal(size=(3, 12, 1152)).astype(np.float32)
    lengths = np.array([12, 7, 4], np.int32)
    for role, directory, width in (("student", "export", 75), ("teacher", "export_teacher", 300)):
        export = LoadedExport(str(job / directory))
        fingerprint = json.loads((job / "weights" / f"{role}.json").read_text())["weights_sha256"]
        assert export.metadata["role"] == role and export.metadata["weights_sha256"] == fingerprint
        # The export scores as the job's final weights do.
        manifest = json.loads((tiny_frame_dataset / "manifest.json").read_text())
        zscore = inputs.zscore_parameters(str(tiny_frame_dataset), manifest)
        model = loop.load_trained(str(job), config, role, zscore, width)
        mask = (np.arange(12)[None, :] < lengths[:, None]).astype(np.float32)
        expected = np.asarray(model({"frames": frames, "mask": mask}, training=False)["predictions"])
        scored = export.score_view({"rgb": frames[..., :1024], "audio": frames[..., 1024:]}, lengths)
        np.testing.assert_allclose(scored["predictions"], expected, rtol=1e-4, atol=1e-5, err_msg=role)


@pytest.mark.parametrize(
    "setup,message",
    [("empty", "no config.json"), ("unfinished", "no final weights of its student")],
)
def test_export_only_refuses_a_job_dir_without_a_finished_job(
    tmp_path, tiny_frame_dataset, setup, message, capsys
):
    job = tmp_path / "j"
    job.mkdir()
    if setup == "unfinished":
        _train(_command(tiny_frame_dataset, job, "--mode", "student", "--student", "mean-moe-small",
                        "--epochs", "1", "--no-export"))  # fmt: skip
        (job / "weights" / "student.weights.h5").unlink()
    assert task.main(["--job-dir", str(job), "--export-only"]) == 2
    assert message in capsys.readouterr().err


def test_list_models_names_every_preset(capsys):
    from trainer.models import PRESETS

    assert task.main(["--list-models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == sorted(PRESETS)
    assert any(
        line.startswith("hlstm ") and "hlstm + moe" in line and "chunk_size=15" in line for line in lines
    )


def test_tf_config_roles():
    assert loop.cluster_role({}) == (True, 1)
    cluster = {"chief": ["a:1"], "worker": ["b:1", "c:1"]}
    chief = json.dumps({"cluster": cluster, "task": {"type": "chief", "index": 0}})
    worker = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}})
    assert loop.cluster_role({"TF_CONFIG": chief}) == (True, 3)
    assert loop.cluster_role({"TF_CONFIG": worker}) == (False, 3)
    no_chief = json.dumps({"cluster": {"worker": ["b:1", "c:1"]}, "task": {"type": "worker", "index": 0}})
    assert loop.cluster_role({"TF_CONFIG": no_chief}) == (True, 2)


# ----- preemption -----------------------------------------------------------------------
def _spawn(argv, log):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen([sys.executable, "-m", "trainer.task", *argv], cwd=REPO_ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip


def _wait_for_step(state_path, step, process, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if state_path.exists():
            state = json.loads(state_path.read_text())
            if state["global_step"] >= step:
                return state
        assert process.poll() is None, "training ended before it could be interrupted"
        time.sleep(0.02)
    raise AssertionError("no checkpoint appeared")


@pytest.mark.parametrize("kill_signal", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_job_resumes_mid_epoch_and_ends_where_an_uninterrupted_one_does(
    tmp_path, tiny_frame_dataset, kill_signal
):
    argv = _command(tiny_frame_dataset, tmp_path / "job", "--mode", "teacher", "--teacher", "hlstm-small",
                    "--epochs", "2", "--checkpoint-every", "1", "--seed", "9")  # fmt: skip
    with open(tmp_path / "log", "w") as log:
        process = _spawn(argv, log)
        state = _wait_for_step(tmp_path / "job" / "checkpoints" / STATE_NAME, 2, process)
        process.send_signal(kill_signal)
        code = process.wait(timeout=120)
    log_text = (tmp_path / "log").read_text()
    assert code == (-signal.SIGKILL if kill_signal == signal.SIGKILL else task.EXIT_PREEMPTED), log_text
    state = json.loads((tmp_path / "job" / "checkpoints" / STATE_NAME).read_text())
    assert state["epoch"] == 0 and 0 < state["step"] < 5  # stopped inside the first epoch
    assert not (tmp_path / "job" / "summary.json").exists()

    resumed = _train(argv)  # the same command
    assert resumed["outcome"] == "completed" and resumed["global_step"] == 10
    reference = _train(_command(tiny_frame_dataset, tmp_path / "ref", "--mode", "teacher", "--teacher",
                                "hlstm-small", "--epochs", "2", "--seed", "9"))  # fmt: skip
    assert reference["global_step"] == 10
    got = _weights(tmp_path / "job" / "weights" / "teacher.weights.h5")
    expected = _weights(tmp_path / "ref" / "weights" / "teacher.weights.h5")
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-4, atol=1e-5, err_msg=name)


def test_a_truncated_checkpoint_named_by_state_json_resumes_from_the_previous_one(
    tmp_path, tiny_frame_dataset, capsys
):
    argv = _command(tiny_frame_dataset, tmp_path / "j", "--student", "mean-moe-small",
                    "--checkpoint-every", "1", "--max-steps-per-epoch", "3")  # fmt: skip
    assert task.main(argv + ["--epochs", "1"]) == 0
    checkpoints = tmp_path / "j" / "checkpoints"
    newest = checkpoints / json.loads((checkpoints / STATE_NAME).read_text())["weights"]
    assert newest.name == "ckpt-000000003.weights.h5"
    newest.write_bytes(newest.read_bytes()[:2048])
    summary = _train(argv + ["--epochs", "2"])  # from step 2: the rest of epoch 1, then epoch 2
    assert summary["outcome"] == "completed" and summary["global_step"] == 6
    for kept in checkpoints.glob("ckpt-*"):
        kept.write_bytes(b"damaged")
    capsys.readouterr()
    assert task.main(argv + ["--epochs", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no kept checkpoint can be loaded" in err


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, tiny_frame_dataset, capsys):
    argv = _command(tiny_frame_dataset, tmp_path / "j", "--mode", "student", "--student", "mean-moe-small",
                    "--epochs", "3", "--learning-rate", "1e38", "--checkpoint-every", "1")  # fmt: skip
    assert task.main(argv) == task.EXIT_NON_FINITE
    assert "non-finite" in capsys.readouterr().err
    state = (
        json.loads((tmp_path / "j" / "checkpoints" / STATE_NAME).read_text())
        if (tmp_path / "j" / "checkpoints" / STATE_NAME).exists()
        else None
    )
    if state is not None:  # whatever was saved holds finite weights only
        weights = _weights(tmp_path / "j" / "checkpoints" / state["weights"])
        assert all(np.isfinite(v).all() for v in weights.values() if v.dtype.kind == "f")
    assert not (tmp_path / "j" / "export").exists()
