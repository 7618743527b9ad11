"""Commands start quietly: TensorFlow's loading notices only with --verbose."""

import importlib.util
import logging
import os
import pathlib
import subprocess
import sys

from absl import logging as absl_logging

from pipelines.cli import SUBCOMMANDS
from tests.conftest import REPO_ROOT
from trainer.startup import VERBOSE_ENV, quiet_startup

NOISE = ("oneDNN custom operations", "absl::InitializeLog", "Could not find cuda drivers")


def _synth(out, *extra):
    """`fewframes synth` in a child (it imports TensorFlow to write its shards)."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", VERBOSE_ENV)}
    env["PYTHONPATH"] = str(REPO_ROOT)
    command = [sys.executable, "-m", "pipelines.cli", "synth", "--out", str(out), "--kind"]
    command += ["video", "--videos", "2", "--shards", "1", "--seed", "0", "--no-progress", *extra]
    return subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO_ROOT, check=True)


def test_a_command_prints_no_tensorflow_startup_notices_by_default_and_does_with_verbose(tmp_path):
    quiet = _synth(tmp_path / "quiet")
    assert "wrote 2 videos" in quiet.stdout
    assert not [line for line in quiet.stderr.splitlines() if any(n in line for n in NOISE)], quiet.stderr
    verbose = _synth(tmp_path / "verbose", "--verbose")
    assert "wrote 2 videos" in verbose.stdout
    assert "oneDNN custom operations" in verbose.stderr


def test_a_bare_verbose_is_taken_out_and_trains_keras_verbosity_stays(monkeypatch):
    # quiet_startup hooks imports and sets loggers for the whole process: this test's only
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    monkeypatch.setattr(logging.getLogger("tensorflow"), "level", logging.getLogger("tensorflow").level)
    monkeypatch.setattr(absl_logging, "set_verbosity", lambda level: None)
    monkeypatch.delenv(VERBOSE_ENV, raising=False)
    assert quiet_startup(["synth", "--verbose", "--seed", "0"]) == ["synth", "--seed", "0"]
    assert os.environ[VERBOSE_ENV] == "1"
    monkeypatch.delenv(VERBOSE_ENV)
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    assert quiet_startup(["train", "--verbose", "2"]) == ["train", "--verbose", "2"]
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3" and VERBOSE_ENV not in os.environ


def test_every_job_module_run_with_python_m_starts_quietly():
    for module, _ in SUBCOMMANDS.values():
        source = pathlib.Path(importlib.util.find_spec(module).origin).read_text()
        main_block = source.rsplit('if __name__ == "__main__":', 1)[1]
        assert "sys.exit(main(quiet_startup(sys.argv[1:])))" in main_block, module
