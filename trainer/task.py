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
import functools
import json
import logging
import math
import os
import sys
import time

from schemas import features
from schemas import features as F
from trainer import inputs, storage
from trainer.config import (
    CONFIG_NAME,
    LABEL_SPACES,
    MODES,
    PARALLEL,
    PREDICTION_LOSSES,
    SERIAL,
    STUDENT,
    TEACHER,
    LossConfig,
    ModelChoice,
    TrainConfig,
    UsageError,
)
from trainer.training import joblock
from trainer.training.distribution import PeerLost

LOG = logging.getLogger("fewframes.train")
EXIT_PREEMPTED = 143  # 128 + SIGTERM: the job was asked to stop and saved where it was
EXIT_NON_FINITE = 3
EXIT_PEER_LOST = 4  # a collective with another worker failed; rerunning every worker resumes
WEIGHTS_DIR = "weights"
EXPORT_DIR = "export"
TEACHER_EXPORT_DIR = "export_teacher"
SUMMARY_NAME = "summary.json"


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


def job_dirs(job_dir: str | None, environ) -> tuple[str, str]:
    """(job dir, checkpoint dir): flags first, then Vertex AI's AIP_* variables."""
    job_dir = job_dir or environ.get("AIP_MODEL_DIR")
    if not job_dir:
        raise UsageError("--job-dir is required (or run where AIP_MODEL_DIR is set)")
    checkpoints = environ.get("AIP_CHECKPOINT_DIR") or storage.join(job_dir, "checkpoints")
    return job_dir, checkpoints


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


# ----- distribution ---------------------------------------------------------------------
# The strategy, the workers' shares of the data and the distributed step: trainer.training.distribution.
def cluster_role(environ) -> tuple[bool, int]:
    """(is chief, number of workers) from TF_CONFIG, as Vertex AI and TF-on-k8s set it."""
    from trainer.training.distribution import cluster_from_environ

    cluster = cluster_from_environ(environ)
    return cluster.chief, cluster.workers


def _gpu_visible() -> bool:
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_logical_devices("GPU"))
    if backend == "jax":
        import jax

        return any(d.platform == "gpu" for d in jax.devices())
    if backend == "torch":
        import torch

        return torch.cuda.is_available()
    return False


# ----- the job --------------------------------------------------------------------------
def _holding_job_lock(train_function):
    """Run `train_function(config, checkpoint_dir, environ, ...)` holding the job dir's lock
    (the chief only; `trainer.training.joblock`), released at its end, also on errors."""

    @functools.wraps(train_function)
    def locked(config: TrainConfig, checkpoint_dir: str, environ=None, *args, **kwargs):
        chief, _ = cluster_role(os.environ if environ is None else environ)
        with joblock.holding(config.job_dir, chief):
            return train_function(config, checkpoint_dir, environ, *args, **kwargs)

    return locked


def _naming_damaged_records(train_function):
    """Turn tf.data's `DataLossError` of a damaged TFRecord file, which names no file, into
    `UnreadableInput` naming it (as the Parquet reader's errors do)."""

    @functools.wraps(train_function)
    def naming(config: TrainConfig, *args, **kwargs):
        try:
            return train_function(config, *args, **kwargs)
        except Exception as error:
            tf = sys.modules.get("tensorflow")
            if tf is None or not isinstance(error, tf.errors.DataLossError):
                raise
            from trainer import inputs as I

            for dataset in (config.train, config.eval):
                if dataset and "tfrecord" in inputs.load_layout(dataset)[1].get("formats", []):
                    damaged = I.damaged_tfrecord(dataset)
                    if damaged is not None:
                        raise damaged from error
            raise

    return naming


@_holding_job_lock
@_naming_damaged_records
def train(
    config: TrainConfig,
    checkpoint_dir: str,
    environ=None,
    verbose=None,
    export: bool = True,
    input_workers: int | None = None,
    callbacks=(),
    cpu_devices: int | None = None,
    collective_timeout: float | None = None,
) -> dict:
    """Run (or resume) one training job; returns the summary also written to summary.json.

    `export=False`, or a backend other than TensorFlow, skips the SavedModel export
    (`summary["export_skipped"]` says why); `export_job` builds it later. `input_workers`
    threads read Parquet batches ahead (None: min(4, CPUs)); the batches do not depend
    on it, so it is not part of the job's configuration. `callbacks`: more Keras callbacks
    for each epoch's `fit`, after the job's own. `cpu_devices` and `collective_timeout`:
    see `trainer.training.distribution.create`.
    """
    import keras

    from trainer import distribution as D
    from trainer import inputs as I
    from trainer.distill import DistillationModel, FramesClassifier
    from trainer.models.normalization import feature_dim, zscore_parameters
    from trainer.training.checkpoints import CheckpointCallback, CheckpointManager, StopRequest
    from trainer.training.evaluation import EvalCallback
    from trainer.training.summaries import tensorboard_callback

    environ = os.environ if environ is None else environ
    started = time.time()
    backend = keras.backend.backend()
    # First: a strategy created after TF has set up its devices cannot configure collectives.
    try:
        distribution = D.create(environ, backend, cpu_devices, collective_timeout)
    except ValueError as error:
        raise UsageError(str(error)) from None
    chief = distribution.cluster.chief

    # Inputs and their compatibility with the run, before any model is built.
    train_layout, train_manifest = I.load_layout(config.train)
    teacher_config = _read_teacher_config(config) if config.teacher_dir else None
    features = config.features
    label_space = _label_space(config, train_manifest)
    if teacher_config is not None:
        _check_teacher_matches(config, teacher_config)
        if config.targets:
            _check_targets_teacher(config, train_manifest)
    view = config.student_view
    offline = config.targets is not None
    plan = _train_plan(config, label_space)
    _check_epoch_has_steps(plan, config)
    eval_plan = None
    if config.eval:
        eval_mode = STUDENT if offline else config.mode  # no teacher to evaluate offline
        eval_plan = I.plan_inputs(config.eval, eval_mode, view.serving_view, features, label_space, "eval")
    fmt = I.resolve_format(plan, config.input_format, backend)
    if distribution.workers > 1 and config.input_format == "auto" and "parquet" in plan.manifest["formats"]:
        fmt = "parquet"  # its footers count each worker's share; TFRecord would be read to count
    eval_fmt = I.resolve_format(eval_plan, config.input_format, backend) if eval_plan else None
    zscore = zscore_parameters(plan.dataset_dir, plan.manifest)
    if zscore is not None and tuple(features) != F.FRAME_FEATURES:
        raise I.InputMismatch("a z-scored dataset needs --features rgb,audio (the analysis covers both)")
    if eval_plan is not None:
        _check_same_zscore(zscore, zscore_parameters(eval_plan.dataset_dir, eval_plan.manifest))

    if config.mixed_precision == "on" or (config.mixed_precision == "auto" and _gpu_visible()):
        keras.mixed_precision.set_global_policy("mixed_float16" if backend != "jax" else "mixed_bfloat16")

    _write_or_check_config(config, chief)
    input_dim = feature_dim(features)
    widths = _model_widths(plan, view)
    with distribution.scope():
        keras.utils.set_random_seed(config.seed)
        teacher = student = None
        # The teacher is built first, so in parallel mode it starts from the same weights
        # as a teacher-only run with the same seed.
        if config.mode in (TEACHER, PARALLEL):
            teacher = FramesClassifier(config.teacher.spec(), label_space.num_classes, input_dim, zscore)
            teacher.build_on(widths["teacher"])
        elif config.mode == SERIAL and not offline:
            teacher = load_trained(config.teacher_dir, teacher_config, "teacher", zscore, widths["teacher"])
        if config.mode != TEACHER:
            student = FramesClassifier(config.student.spec(), label_space.num_classes, input_dim, zscore)
            student.build_on(widths["student"])
        projection_dim = targets_dims = None
        if offline:
            targets_dims = (train_layout.num_classes, train_layout.representation_dim)
        if student is not None and (teacher is not None or offline):
            t_dim = teacher.representation_dim if teacher is not None else train_layout.representation_dim
            s_dim = student.representation_dim
            projection_dim = t_dim if t_dim != s_dim else None
        model = DistillationModel(config.mode, teacher, student, config.loss, projection_dim, targets_dims)
        model.build_on(widths["student"])
        model.compile(optimizer=keras.optimizers.Adam(config.learning_rate, clipnorm=config.clipnorm))

    manager = CheckpointManager(checkpoint_dir, writer=chief)
    with distribution.scope():  # optimizer variables built on restore must be the strategy's
        state = manager.restore(model)
    if state.weights:
        LOG.info("resuming from %s: epoch %d, %d batches done", state.weights, state.epoch + 1, state.step)

    try:
        worker_batch = distribution.worker_batch(config.batch_size)
        if distribution.workers > 1:
            all_shares = D.shares(plan.dataset_dir, fmt, distribution.workers)
            share = all_shares[distribution.worker]
            examples_per_worker = [s.examples for s in all_shares]
            steps = D.steps_per_epoch(all_shares, worker_batch)
        else:
            share, examples_per_worker = None, [plan.num_videos]
            steps = I.steps_per_epoch(plan, config.batch_size)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if steps == 0:
        raise UsageError(
            f"--batch-size {config.batch_size} is larger than the smallest worker's share "
            f"({min(examples_per_worker)} of {plan.num_videos} videos over {distribution.workers} workers): "
            "an epoch would train no step"
        )
    trainer = D.DistributedTrainer(distribution, model) if distribution.custom_loop else None
    if config.max_steps_per_epoch:
        steps = min(steps, config.max_steps_per_epoch)
    stop = StopRequest().install()
    # Several replicas stop together: the callbacks see the stop the workers agreed on.
    agreed_stop = StopRequest() if trainer is not None else stop
    callbacks_extra = []
    if eval_plan is not None:
        callbacks_extra.append(EvalCallback(eval_plan, eval_fmt, config.batch_size))
    if chief:
        tensorboard = tensorboard_callback(storage.join(config.job_dir, "logs"))
        callbacks_extra += [tensorboard] if tensorboard is not None else []
    global_step = state.global_step
    outcome = "completed"
    history = {}
    epoch_times = []
    for epoch in range(state.epoch, config.epochs):
        first_step = state.step if epoch == state.epoch else 0
        if first_step >= steps:
            continue
        print(
            f"epoch {epoch + 1}/{config.epochs}"
            + (f" (resuming at batch {first_step})" if first_step else "")
        )
        data = I.batches(
            plan,
            fmt,
            worker_batch,
            shuffle=True,
            seed=config.seed,
            epoch=epoch,
            skip_batches=first_step,
            shuffle_buffer=config.shuffle_buffer,
            drop_remainder=True,
            workers=default_input_workers() if input_workers is None else input_workers,
            share=share,
        )
        checkpointer = CheckpointCallback(
            manager, epoch, first_step, global_step, config.checkpoint_every, agreed_stop, steps
        )
        epoch_start = time.perf_counter()
        epoch_callbacks = [checkpointer, *callbacks_extra, *callbacks]
        if trainer is not None:  # Keras's fit cannot take a tf.distribute strategy's dict batches
            result_history = trainer.fit_epoch(
                data, config.batch_size, steps - first_step, epoch, epoch_callbacks, stop, agreed_stop
            )
        else:
            result_history = model.fit(
                data,
                epochs=epoch + 1,
                initial_epoch=epoch,
                steps_per_epoch=steps - first_step,
                callbacks=epoch_callbacks,
                shuffle=False,  # the input pipeline shuffles, seeded per epoch
                verbose=_verbosity(verbose),
            ).history
        epoch_seconds = time.perf_counter() - epoch_start
        trained_steps = checkpointer.global_step - global_step
        epoch_times.append(
            {
                "epoch": epoch + 1,
                "steps": trained_steps,
                "seconds": round(epoch_seconds, 3),
                "examples_per_second": round(trained_steps * config.batch_size / epoch_seconds, 2),
            }
        )
        global_step = checkpointer.global_step
        history = {k: v[-1] for k, v in result_history.items()}
        if checkpointer.non_finite:
            outcome = "non-finite loss"
            break
        if agreed_stop.requested:
            outcome = "preempted"
            break

    summary = {
        "outcome": outcome,
        "mode": config.mode,
        "job_dir": config.job_dir,
        "global_step": global_step,
        "epochs": config.epochs,
        "seconds": round(time.time() - started, 1),
        "last_checkpoint": manager.state().weights,
        "metrics": {k: float(v) for k, v in history.items()},
        # fit's wall time per epoch (the first includes tracing; with --eval, the evaluation too)
        "epoch_times": epoch_times,
        "distribution": distribution.summary(examples_per_worker, config.batch_size),
    }
    if outcome == "completed" and chief:
        trained = _save_final_weights(config, model, label_space)
        skipped = _export_skipped(export, backend)
        if skipped:
            summary["exports"], summary["export_skipped"] = {}, skipped
            LOG.warning("export skipped: %s", skipped)
        else:
            summary["exports"] = _export(config, trained, plan, label_space)
        storage.write_text(storage.join(config.job_dir, SUMMARY_NAME), json.dumps(summary, indent=2))
    return summary


def _label_space(config: TrainConfig, train_manifest: dict):
    from trainer.labels import LabelSpace

    return LabelSpace.build(config.label_space, train_manifest.get("num_classes", 0), config.vocabulary)


def _train_plan(config: TrainConfig, label_space):
    """The training data's input plan; the same in training and in `export_job`."""
    from trainer import inputs as I

    targets = config.targets is not None
    return I.plan_inputs(
        config.train, config.mode, config.student_view, config.features, label_space, targets=targets
    )


def _check_epoch_has_steps(plan, config: TrainConfig) -> None:
    """Refuse, before any work, a run whose epochs would train no step (it would export an
    untrained model): training drops the last partial batch."""
    from trainer import inputs as I

    if plan.num_videos == 0:
        raise UsageError(f"{config.train} holds no videos: nothing to train on")
    if I.steps_per_epoch(plan, config.batch_size) == 0:
        raise UsageError(
            f"--batch-size {config.batch_size} is larger than the {plan.num_videos} videos of "
            f"{config.train}: an epoch would train no step (the last partial batch is dropped); "
            f"use --batch-size {plan.num_videos} or less"
        )


def _model_widths(plan, view) -> dict:
    """Frames each role's model is built on: every frame for the teacher, the view's most
    for the student, one for video-level data."""
    return {
        "teacher": 1 if plan.video_level else F.MAX_FRAMES,
        "student": 1 if plan.video_level else view.max_selected,
    }


def default_input_workers() -> int:
    return min(4, os.cpu_count() or 1)


def _verbosity(verbose):
    if verbose is not None:
        return verbose
    return 1 if sys.stdout.isatty() else 2


def _read_teacher_config(config: TrainConfig) -> TrainConfig:
    path = storage.join(config.teacher_dir, CONFIG_NAME)
    if not storage.exists(path):
        raise UsageError(f"--teacher-dir {config.teacher_dir} has no {CONFIG_NAME}: not a training job dir")
    teacher_config = TrainConfig.from_json(storage.read_text(path))
    if teacher_config.mode not in (TEACHER, PARALLEL):
        raise UsageError(
            f"--teacher-dir {config.teacher_dir} trained no teacher (mode {teacher_config.mode})"
        )
    if not storage.exists(_weights_file(config.teacher_dir, "teacher")):
        raise UsageError(
            f"--teacher-dir {config.teacher_dir} has no finished teacher (weights/teacher.weights.h5)"
        )
    return teacher_config


def _check_teacher_matches(config: TrainConfig, teacher_config: TrainConfig) -> None:
    for field in ("features", "label_space"):
        if getattr(config, field) != getattr(teacher_config, field):
            raise UsageError(
                f"the teacher in {config.teacher_dir} was trained with {field}="
                f"{getattr(teacher_config, field)}, this run asks for {getattr(config, field)}"
            )


def _check_targets_teacher(config: TrainConfig, manifest: dict) -> None:
    """--teacher-dir with --targets: the targets must come from that teacher's weights."""
    saved = json.loads(storage.read_text(_weights_info_file(config.teacher_dir, "teacher")))
    mine = saved.get("weights_sha256")
    theirs = manifest.get("teacher", {}).get("weights_sha256")
    if mine != theirs or mine is None:
        raise UsageError(
            f"the targets in {config.targets} were computed by another teacher "
            f"({manifest.get('teacher', {}).get('export')}, weights {str(theirs)[:12]}) than the one in "
            f"--teacher-dir {config.teacher_dir} (weights {str(mine)[:12]})"
        )


def _check_same_zscore(train, evaluation) -> None:
    import numpy as np

    from trainer.inputs import InputMismatch

    if (train is None) != (evaluation is None) or (
        train is not None
        and not all(np.allclose(a, b, rtol=1e-6, atol=1e-6) for a, b in zip(train, evaluation, strict=True))
    ):
        raise InputMismatch(
            "the eval dataset's normalization differs from the training dataset's: preprocess it with "
            "--transform-from <train dataset dir>"
        )


def _write_or_check_config(config: TrainConfig, chief: bool) -> None:
    path = storage.join(config.job_dir, CONFIG_NAME)
    if storage.exists(path):
        previous = TrainConfig.from_json(storage.read_text(path))
        differences = config.differences(previous)
        if differences:
            raise UsageError(
                f"{config.job_dir} holds a run with other settings ({', '.join(differences)}); "
                "use a new --job-dir to start a different run"
            )
    if chief:
        storage.makedirs(config.job_dir)
        storage.write_text(path, config.to_json())


def _weights_file(job_dir: str, role: str) -> str:
    """A finished job's final weights of `role` ("teacher" or "student")."""
    return storage.join(job_dir, WEIGHTS_DIR, f"{role}.weights.h5")


def _weights_info_file(job_dir: str, role: str) -> str:
    """What rebuilding those weights needs: label space, input width, fingerprint."""
    return storage.join(job_dir, WEIGHTS_DIR, f"{role}.json")


def load_trained(job_dir: str, job_config: TrainConfig, role: str, zscore, width: int):
    """Rebuild a job's trained `role` model from its config (`config.json`) and final weights."""
    from trainer.distill import FramesClassifier

    saved = json.loads(storage.read_text(_weights_info_file(job_dir, role)))
    choice = job_config.teacher if role == "teacher" else job_config.student
    num_classes = len(saved["label_space"]["class_names"])
    model = FramesClassifier(choice.spec(), num_classes, saved["input_dim"], zscore)
    model.build_on(width)
    storage.load_weights(model, _weights_file(job_dir, role))
    return model


def _trained_roles(mode: str) -> tuple[str, ...]:
    """The models a job of `mode` trains (serial mode's teacher is frozen, not trained)."""
    return (("teacher",) if mode in (TEACHER, PARALLEL) else ()) + (("student",) if mode != TEACHER else ())


def _export_skipped(export: bool, backend: str) -> str | None:
    """Why the job writes no SavedModel, or None when it does."""
    later = "build it with --export-only --job-dir <this job dir> where TensorFlow is installed"
    if not export:
        return f"--no-export; {later}"
    if backend != "tensorflow":
        return f"the SavedModel export needs the TensorFlow backend (this job ran on {backend}); {later}"
    return None


def _save_final_weights(config: TrainConfig, model, label_space) -> dict:
    """Final weights of each trained model, with what rebuilding it needs; chief only."""
    from trainer.export import weights_fingerprint

    trained = {role: getattr(model, role) for role in _trained_roles(config.mode)}
    for role, classifier in trained.items():
        storage.save_weights(classifier, _weights_file(config.job_dir, role))
        storage.write_text(
            _weights_info_file(config.job_dir, role),
            json.dumps(
                {
                    "label_space": label_space.to_dict(),
                    "input_dim": features.feature_dim(config.features),
                    "weights_sha256": weights_fingerprint(classifier),
                }
            ),
        )
    return trained


def _export(config: TrainConfig, trained: dict, plan, label_space, job_dir: str | None = None) -> dict:
    """The SavedModel export(s) of the trained models into `job_dir` (default: the
    config's): {role: export dir}; chief only."""
    from trainer.export import export_classifier, weights_fingerprint

    exports = {}
    targets = [("student", EXPORT_DIR)] if "student" in trained else [("teacher", EXPORT_DIR)]
    if config.mode == PARALLEL:
        targets.append(("teacher", TEACHER_EXPORT_DIR))
    for role, directory in targets:
        choice = config.student if role == "student" else config.teacher
        view = config.view if role == "student" and not plan.video_level else "all"
        metadata = {
            "role": role,
            "model": choice.spec().to_dict(),
            "preset": choice.preset,
            "kind": plan.layout.kind,
            "view": view,
            "features": list(config.features),
            "label_space": config.label_space,
            "num_classes": label_space.num_classes,
            "num_entities": label_space.num_entities,
            "class_names": list(label_space.class_names),
            "entity_to_class": None
            if label_space.entity_to_class is None
            else list(label_space.entity_to_class),
            "vocabulary_sha256": label_space.vocabulary_sha256,
            "schema_version": plan.layout.to_dict()["schema_version"],
            "frame_dtype": plan.layout.frame_dtype,
            "normalization": plan.manifest.get("normalization"),
            "training_data": {
                "dataset": config.train,
                "input_patterns": plan.manifest.get("input_patterns"),
                "videos": plan.num_videos,
                "created": plan.manifest.get("created"),
            },
            "mode": config.mode,
            "job_dir": config.job_dir,
            "top_k": config.export_top_k,
            "weights_sha256": weights_fingerprint(trained[role]),
            "representation_dim": trained[role].representation_dim,
        }
        if role == "student" and config.mode == SERIAL:
            metadata["teacher"] = {"job_dir": config.teacher_dir, "targets": config.targets}
        path = storage.join(job_dir or config.job_dir, directory)
        export_classifier(trained[role], path, metadata)
        exports[role] = path
    return exports


def export_job(job_dir: str) -> dict:
    """`--export-only`: build the export(s) of the finished job in `job_dir` from its final
    weights, e.g. after training on JAX or PyTorch; returns {role: export dir}.

    The models are rebuilt from the job's `config.json` and `weights/`, and the export's
    metadata from its training dataset's manifest, which must still be readable.
    """
    import keras

    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise UsageError(
            "--export-only writes a TensorFlow SavedModel: run it with KERAS_BACKEND=tensorflow, "
            f"not {backend}"
        )
    config_path = storage.join(job_dir, CONFIG_NAME)
    if not storage.exists(config_path):
        raise UsageError(f"--job-dir {job_dir} has no {CONFIG_NAME}: not a training job dir")
    config = TrainConfig.from_json(storage.read_text(config_path))
    roles = _trained_roles(config.mode)
    weights = {role: _weights_file(job_dir, role) for role in roles}
    unfinished = [role for role, path in weights.items() if not storage.exists(path)]
    if unfinished:
        raise UsageError(
            f"--job-dir {job_dir} has no final weights of its {' and '.join(unfinished)} "
            f"({WEIGHTS_DIR}/<role>.weights.h5): the job has not finished training"
        )
    _, manifest = inputs.load_layout(config.train)
    label_space = _label_space(config, manifest)
    plan = _train_plan(config, label_space)
    zscore = inputs.zscore_parameters(plan.dataset_dir, plan.manifest)
    widths = _model_widths(plan, config.student_view)
    trained = {role: load_trained(job_dir, config, role, zscore, widths[role]) for role in roles}
    exports = _export(config, trained, plan, label_space, job_dir)
    summary_path = storage.join(job_dir, SUMMARY_NAME)
    if storage.exists(summary_path):
        summary = json.loads(storage.read_text(summary_path))
        summary.pop("export_skipped", None)
        storage.write_text(summary_path, json.dumps({**summary, "exports": exports}, indent=2))
    return exports


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
