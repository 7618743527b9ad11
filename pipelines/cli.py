"""The `fewframes` console command: one subcommand per job.

Subcommands are imported only when chosen, so `fewframes --help` answers at once
instead of loading TensorFlow and Beam.
"""

from __future__ import annotations

import importlib
import sys

from trainer.startup import quiet_startup

SUBCOMMANDS = {
    "synth": ("pipelines.synth", "write synthetic YouTube-8M-format shards (frame or video level)"),
    "preprocess": ("pipelines.preprocess", "Beam job: raw shards -> compact Parquet/TFRecord dataset"),
    "teacher-targets": (
        "pipelines.teacher_targets",
        "Beam job: a trained teacher's outputs once per video -> a compact dataset to distill from",
    ),
    "train": ("trainer.task", "train a teacher and/or a few-frame student; export a SavedModel"),
    "evaluate": ("pipelines.evaluate", "Beam job: score a partition, GAP/mAP/Hit@1/PERR, report"),
    "predict": ("pipelines.predict", "Beam job: score a partition without labels, Kaggle-format CSV"),
    "cascade": (
        "pipelines.cascade",
        "a coarse-to-fine cascade of models that stops per video: `cascade fit` fits its exits",
    ),
    "demo": ("pipelines.demo", "the whole story on generated data: synth -> ... -> compare"),
    "compare": ("pipelines.compare", "compare evaluations: bootstrap intervals, metrics vs frames read"),
}


def usage() -> str:
    lines = ["usage: fewframes <command> [options]", "", "commands:"]
    lines += [f"  {name:<12} {summary}" for name, (_, summary) in SUBCOMMANDS.items()]
    lines += [
        "",
        "`fewframes <command> --help` lists a command's options; `--verbose` (or FEWFRAMES_VERBOSE=1)",
        "shows TensorFlow's start-up notices, hidden by default.",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    # TensorFlow's start-up notices (oneDNN, missing CUDA, cuInit) are noise to a
    # command-line user: hidden unless --verbose, set before any job imports TensorFlow.
    argv = quiet_startup(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in SUBCOMMANDS:
        print(f"fewframes: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[command][0])
    return module.main(rest)


if __name__ == "__main__":
    sys.exit(main())
