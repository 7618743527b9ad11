"""One training job from a configuration: the strategy first, then inputs, models,
checkpoints, the epochs (Keras `fit`, or a step under `strategy.run` for several
replicas), the final weights, the summary and the export. `trainer.task` is its command
line; `trainer.job_dir` names what it writes.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import time

from schemas import features as F
from trainer import inputs, storage
from trainer.config import (
    PARALLEL,
    SERIAL,
    STUDENT,
    TEACHER,
    TrainConfig,
    UsageError,
)
from trainer.job_dir import (
    CONFIG_NAME,
    EXPORT_DIR,
    LOGS_DIR,
    SUMMARY_NAME,
    TEACHER_EXPORT_DIR,
    WEIGHTS_DIR,
    weights_file,
    weights_info_file,
)
from trainer.training import joblock
from trainer.training.checks import (
    check_epoch_has_steps,
    check_same_zscore,
    check_targets_teacher,
    check_teacher_matches,
    read_teacher_config,
    write_or_check_config,
)

LOG = logging.getLogger("fewframes.train")


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

    from trainer import inputs as I
    from trainer.distill import DistillationModel, FramesClassifier
    from trainer.training import distribution as D
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
    teacher_config = read_teacher_config(config) if config.teacher_dir else None
    features = config.features
    label_space = _label_space(config, train_manifest)
    if teacher_config is not None:
        check_teacher_matches(config, teacher_config)
        if config.targets:
            check_targets_teacher(config, train_manifest)
    view = config.student_view
    offline = config.targets is not None
    plan = _train_plan(config, label_space)
    check_epoch_has_steps(plan, config)
    eval_plan = None
    if config.eval:
        eval_mode = STUDENT if offline else config.mode  # no teacher to evaluate offline
        eval_plan = I.plan_inputs(config.eval, eval_mode, view.serving_view, features, label_space, "eval")
    fmt = I.resolve_format(plan, config.input_format, backend)
    if distribution.workers > 1 and config.input_format == "auto" and "parquet" in plan.manifest["formats"]:
        fmt = "parquet"  # its footers count each worker's share; TFRecord would be read to count
    eval_fmt = I.resolve_format(eval_plan, config.input_format, backend) if eval_plan else None
    zscore = I.zscore_parameters(plan.dataset_dir, plan.manifest)
    if zscore is not None and tuple(features) != F.FRAME_FEATURES:
        raise I.InputMismatch("a z-scored dataset needs --features rgb,audio (the analysis covers both)")
    if eval_plan is not None:
        check_same_zscore(zscore, I.zscore_parameters(eval_plan.dataset_dir, eval_plan.manifest))
    # Each worker's share and the steps every worker takes, refused before any work.
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
    if steps == 0:  # one worker: check_epoch_has_steps refused it already
        raise UsageError(
            f"--batch-size {config.batch_size} is larger than the smallest worker's share "
            f"({min(examples_per_worker)} of {plan.num_videos} videos over {distribution.workers} workers): "
            "an epoch would train no step"
        )

    if config.mixed_precision == "on" or (config.mixed_precision == "auto" and _gpu_visible()):
        keras.mixed_precision.set_global_policy("mixed_float16" if backend != "jax" else "mixed_bfloat16")

    write_or_check_config(config, chief)
    input_dim = F.feature_dim(features)
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
            # Reseeded: the student starts from the weights the student alone gets with this
            # seed, whatever the teacher's build drew first, so that a distilled student and
            # the plain one differ by the distillation only (a paired comparison).
            keras.utils.set_random_seed(config.seed)
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
        tensorboard = tensorboard_callback(storage.join(config.job_dir, LOGS_DIR))
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
        "backend": backend,
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


def load_trained(job_dir: str, job_config: TrainConfig, role: str, zscore, width: int):
    """Rebuild a job's trained `role` model from its config (`config.json`) and final weights."""
    from trainer.distill import FramesClassifier

    saved = json.loads(storage.read_text(weights_info_file(job_dir, role)))
    choice = job_config.teacher if role == "teacher" else job_config.student
    num_classes = len(saved["label_space"]["class_names"])
    model = FramesClassifier(choice.spec(), num_classes, saved["input_dim"], zscore)
    model.build_on(width)
    storage.load_weights(model, weights_file(job_dir, role))
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
        storage.save_weights(classifier, weights_file(config.job_dir, role))
        storage.write_text(
            weights_info_file(config.job_dir, role),
            json.dumps(
                {
                    "label_space": label_space.to_dict(),
                    "input_dim": F.feature_dim(config.features),
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
    weights = {role: weights_file(job_dir, role) for role in roles}
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
