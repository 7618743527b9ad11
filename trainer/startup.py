"""Quiet start-up for the command-line entry points: TensorFlow's loading notices are hidden
unless `--verbose` (or FEWFRAMES_VERBOSE=1) asks for them.

TensorFlow prints, to a command that never uses a GPU, a page of C++ notices when it
loads and at its first op (oneDNN, missing CUDA drivers, a failed `cuInit`, CPU
features, absl's "before InitializeLog" warning). `TF_CPP_MIN_LOG_LEVEL` hides the
ones TF logs itself, but XLA's and oneDNN's are written through absl before TensorFlow
sets up its logging and ignore it; those few lines are taken out of what the import of
`tensorflow` writes to stderr, every other line of it is passed on. Only the entry
points call `quiet_startup`; importing a module of this project changes nothing.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import logging
import os
import re
import sys
import tempfile

VERBOSE_FLAG = "--verbose"
VERBOSE_ENV = "FEWFRAMES_VERBOSE"
TF_LOG_LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"
QUIET_TF_LOG_LEVEL = "3"  # errors too: the one TF prints on a CPU machine is cuInit's

# Lines TensorFlow's import writes through absl before its logging is set up.
IMPORT_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} [\d:. ]+\d+ (port|cudart_stub|cpu_feature_guard|cuda_\w+)\.cc:\d+\] .*"
    r"|To enable the following instructions: .*in other operations, rebuild TensorFlow.*)$"
)


def verbose_requested(argv) -> bool:
    """A bare `--verbose` (train's `--verbose N` is Keras's fit verbosity) or FEWFRAMES_VERBOSE."""
    return bool(_verbose_positions(argv)) or os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def _verbose_positions(argv) -> list[int]:
    return [
        i
        for i, arg in enumerate(argv)
        if arg == VERBOSE_FLAG and (i + 1 >= len(argv) or argv[i + 1] not in ("0", "1", "2"))
    ]


def quiet_startup(argv) -> list[str]:
    """Set up the start-up logging of a command before TensorFlow is imported; returns the
    arguments without the bare `--verbose` the jobs' own parsers do not know."""
    argv = list(argv)
    verbose = verbose_requested(argv)
    for i in reversed(_verbose_positions(argv)):
        del argv[i]
    if verbose:
        os.environ[VERBOSE_ENV] = "1"  # child processes (Beam workers, the demo's jobs) too
        return argv
    os.environ.setdefault(TF_LOG_LEVEL_ENV, QUIET_TF_LOG_LEVEL)  # a level the user chose stays
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    with contextlib.suppress(ImportError):
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    hooked = any(isinstance(finder, _QuietTensorFlowImport) for finder in sys.meta_path)
    if "tensorflow" not in sys.modules and not hooked:
        sys.meta_path.insert(0, _QuietTensorFlowImport())
    return argv


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` once, as the other finders would, and loads it with stderr
    (the file descriptor, which C++ writes to) caught; then passes on what is not noise."""

    def find_spec(self, name, path, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        import importlib.util

        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        with _stderr_without_noise():
            self._loader.exec_module(module)


@contextlib.contextmanager
def _stderr_without_noise():
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            kept = [
                line
                for line in caught.read().decode(errors="replace").splitlines(keepends=True)
                if not IMPORT_NOISE.match(line.rstrip("\n"))
            ]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
