"""`fewframes train` / `python -m trainer.task`: teacher-student training of one job.

The job dir holds `config.json` (the resolved configuration), `checkpoints/`,
`logs/` (TensorBoard), `weights/` (final weights of each trained model), `export/`
(the SavedModel the job produced: the student, or the teacher in `teacher` mode;
`parallel` also writes `export_teacher/`), `summary.json`, and while a training runs
`train.lock` (`trainer.training.joblock`: one training per job dir). The same command resumes a
preempted job from its last checkpoint.

The export is a TensorFlow SavedModel, so only a job on the TensorFlow backend writes
it at the end. A job on JAX or PyTorch (or one run with `--no-export`) saves its final
weights and skips the export; `--export-only --job-dir DIR` later builds it from those
weights where TensorFlow is installed.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys

from trainer.config import (
    LABEL_SPACES,
    MODES,
    PREDICTION_LOSSES,
    SERIAL,
    STUDENT,
    LossConfig,
    ModelChoice,
    TrainConfig,
    UsageError,
)
from trainer.job_dir import job_dirs
from trainer.training.distribution import PeerLost
from trainer.training.loop import export_job, train

LOG = logging.getLogger("fewframes.train")
EXIT_PREEMPTED = 143  # 128 + SIGTERM: the job was asked to stop and saved where it was
EXIT_NON_FINITE = 3
EXIT_PEER_LOST = 4  # a collective with another worker failed; rerunning every worker resumes


# ----- command line ---------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fewframes train", description=__doc__.split("\n\n")[0])
    p.add_argument("--train", help="preprocessed training dataset dir")
    p.add_argument("--eval", help="preprocessed evaluation dataset dir (GAP / Hit@1 each epoch)")
    p.add_argument("--job-dir", help="output dir, local or gs:// (default: $AIP_MODEL_DIR)")
    p.add_argument("--mode", choices=MODES, default=STUDENT)
    p.add_argument("--teacher", help="teacher model preset (see --list-models)")
    p.add_argument("--student", help="student model preset")
    p.add_argument(
        "--teacher-params", default="{}", help='JSON overrides: {"aggregator": {...}, "head": {...}}'
    )
    p.add_argument("--student-params", default="{}", help="JSON overrides, as --teacher-params")
    p.add_argument("--teacher-dir", help="a trained teacher's job dir (--mode serial)")
    p.add_argument(
        "--targets",
        help="a teacher-targets dataset (`fewframes teacher-targets`): --mode serial trains from it "
        "without running the teacher; it replaces --train",
    )
    p.add_argument("--view", default="every_n:10", help="student view: every_n:N, uniform:K or random:K")
    p.add_argument("--features", default="rgb,audio", help="rgb, audio or rgb,audio")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--clipnorm", type=float, default=None, help="per-variable gradient norm clip")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=200, help="steps between checkpoints")
    p.add_argument("--label-space", choices=LABEL_SPACES, default="entities")
    p.add_argument("--vocabulary", help="vocabulary CSV (class names; needed by --label-space verticals)")
    p.add_argument("--input-format", choices=("auto", "tfrecord", "parquet"), default="auto")
    p.add_argument(
        "--shuffle-buffer", type=_positive_int, default=1024, help="examples the shuffle draws from (>= 1)"
    )
    p.add_argument(
        "--input-workers",
        type=int,
        default=None,
        help="threads reading Parquet batches ahead of training (0: none; default: min(4, CPUs))",
    )
    p.add_argument("--ce-weight", type=float, default=1.0)
    p.add_argument("--rep-weight", type=float, default=1.0)
    p.add_argument("--pred-weight", type=float, default=1.0)
    p.add_argument("--prediction-loss", choices=PREDICTION_LOSSES, default="bernoulli_kl")
    p.add_argument("--mixed-precision", choices=("auto", "on", "off"), default="auto")
    p.add_argument(
        "--cpu-devices",
        type=int,
        default=None,
        help="split the CPU into N logical devices and train on them with MirroredStrategy "
        "(TensorFlow, no GPU; default: $FEWFRAMES_CPU_DEVICES, else 1)",
    )
    p.add_argument(
        "--collective-timeout",
        type=float,
        default=None,
        help="seconds a collective with the other workers may take before the run fails "
        "(several workers; default: no limit, a dead worker is still detected)",
    )
    p.add_argument("--top-k", type=int, default=20, help="classes the export returns per video")
    p.add_argument("--max-steps-per-epoch", type=_positive_int, default=None)
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), default=None, help="Keras fit verbosity")
    p.add_argument(
        "--no-export",
        action="store_true",
        help="save the final weights but no SavedModel (build it later with --export-only)",
    )
    p.add_argument(
        "--export-only",
        action="store_true",
        help="build the SavedModel export(s) of the finished job in --job-dir from its final weights "
        "(TensorFlow backend), without training",
    )
    p.add_argument("--list-models", action="store_true", help="list the model presets and exit")
    return p


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (a count of steps or examples)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def list_models() -> str:
    """One line per preset: name, aggregator + head, and the fields it sets."""
    from trainer.models import PRESETS, preset_names

    lines = []
    for name in preset_names():
        spec = PRESETS[name]
        fields = {**spec.aggregator_params, **{f"head.{k}": v for k, v in spec.head_params.items()}}
        settings = ", ".join(f"{k}={v}" for k, v in fields.items())
        lines.append(f"{name:<16} {spec.aggregator} + {spec.head}" + (f"  ({settings})" if settings else ""))
    return "\n".join(lines)


def _model_choice(name: str | None, params_json: str, flag: str) -> ModelChoice | None:
    if name is None:
        return None
    try:
        params = json.loads(params_json)
    except json.JSONDecodeError as error:
        raise UsageError(f"{flag} is not valid JSON: {error}") from None
    unknown = set(params) - {"aggregator", "head"}
    if unknown:
        raise UsageError(f"{flag} takes keys 'aggregator' and 'head', not {sorted(unknown)}")
    choice = ModelChoice(name, params.get("aggregator", {}), params.get("head", {}))
    try:
        choice.spec()
    except ValueError as error:
        raise UsageError(str(error)) from None
    return choice


def config_from_args(args, environ) -> tuple[TrainConfig, str]:
    job_dir, checkpoint_dir = job_dirs(args.job_dir, environ)
    if not (args.train or args.targets):
        raise UsageError("--train is required (or --targets with --mode serial)")
    if args.train and args.targets:
        raise UsageError("--targets is the training dataset; drop --train")
    try:
        config = TrainConfig(
            train=args.train or args.targets,
            eval=args.eval,
            job_dir=job_dir,
            mode=args.mode,
            teacher=_model_choice(args.teacher, args.teacher_params, "--teacher-params"),
            student=_model_choice(args.student, args.student_params, "--student-params"),
            teacher_dir=args.teacher_dir,
            targets=args.targets,
            view=args.view,
            features=tuple(f.strip() for f in args.features.split(",") if f.strip()),
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            clipnorm=args.clipnorm,
            seed=args.seed,
            checkpoint_every=args.checkpoint_every,
            label_space=args.label_space,
            vocabulary=args.vocabulary,
            input_format=args.input_format,
            shuffle_buffer=args.shuffle_buffer,
            loss=LossConfig(args.ce_weight, args.rep_weight, args.pred_weight, args.prediction_loss),
            mixed_precision=args.mixed_precision,
            export_top_k=args.top_k,
            max_steps_per_epoch=args.max_steps_per_epoch,
        )
    except ValueError as error:
        raise UsageError(str(error)) from None
    if args.mode == SERIAL and args.teacher:
        raise UsageError("--mode serial rebuilds the teacher from --teacher-dir; drop --teacher")
    return config, checkpoint_dir


def train_from_argv(argv: list[str], environ=None, verbose: int | None = None) -> dict:
    """One training job from `fewframes train` flags, in this process; its summary.

    `environ` supplies AIP_MODEL_DIR / AIP_CHECKPOINT_DIR / TF_CONFIG (none by default, so
    a library caller is not steered by its own environment); `verbose` overrides --verbose.
    """
    return _train_from_args(build_parser().parse_args(argv), environ, verbose)


def _train_from_args(args, environ=None, verbose: int | None = None) -> dict:
    config, checkpoint_dir = config_from_args(args, {} if environ is None else environ)
    verbose = args.verbose if verbose is None else verbose
    return train(
        config,
        checkpoint_dir,
        environ=environ,
        verbose=verbose,
        export=not args.no_export,
        input_workers=args.input_workers,
        cpu_devices=args.cpu_devices,
        collective_timeout=args.collective_timeout,
    )


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.list_models:
        print(list_models())
        return 0
    try:
        if args.export_only:
            job_dir, _ = job_dirs(args.job_dir, os.environ)
            for role, path in export_job(job_dir).items():
                print(f"exported the {role}: {path}")
            return 0
        summary = _train_from_args(args, os.environ)
    except ValueError as error:  # UsageError, InputMismatch and config errors: one line
        print(f"fewframes train: error: {error}", file=sys.stderr)
        return 2
    except PeerLost as error:
        print(f"fewframes train: error: {error}", file=sys.stderr)
        return EXIT_PEER_LOST
    metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted(summary["metrics"].items()) if math.isfinite(v))
    print(
        f"train {summary['outcome']}: mode {summary['mode']}, {summary['global_step']} steps in "
        f"{summary['seconds']} s; {metrics}; job dir {summary['job_dir']}"
    )
    if summary["outcome"] == "preempted":
        return EXIT_PREEMPTED
    if summary["outcome"] != "completed":
        print(
            f"stopped on a non-finite loss; last good checkpoint: {summary['last_checkpoint']}",
            file=sys.stderr,
        )
        return EXIT_NON_FINITE
    return 0


if __name__ == "__main__":
    from trainer.startup import quiet_startup

    sys.exit(main(quiet_startup(sys.argv[1:])))
