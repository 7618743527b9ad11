"""Training and evaluation batches from preprocessed datasets.

A batch is `(x, y)`: `x` holds `teacher_frames` `[B, 300, D]` / `teacher_mask` (the
full view) and/or `student_frames` `[B, K, D]` / `student_mask` (the student's view,
K = the view's most frames), `y` the multi-hot labels `[B, C]`. Read from a
teacher-targets dataset (`serial` with `--targets`), `x` holds the teacher's stored
outputs instead of its frames: `teacher_predictions` `[B, C]` and
`teacher_representation` `[B, R]`. Frames are the
dataset's dequantized values with the selected features concatenated (rgb, then
audio); the rest of the normalization chain runs inside the model
(`trainer.models.normalization`). Video-level datasets give one "frame" per video.

Two readers build the same batches: tf.data over TFRecord and pyarrow -> numpy over
Parquet (no TensorFlow). Distillation and teacher modes read the full view and cut the
student's view here with `schemas.views.View`, the type the preprocessing used.

Order is a pure function of (seed, epoch): shard order and the shuffle buffer are
seeded per epoch, so a resumed run can skip the batches an epoch already trained on
and continue with exactly the data it would have seen.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from schemas import features as F
from schemas.preprocessed import (
    FRAMES,
    INT,
    MANIFEST_NAME,
    PARQUET,
    SHARD_PREFIX,
    STRING,
    TFRECORD,
    VECTOR,
    DatasetLayout,
)
from schemas.quantization import dequantize, dequantize_tf
from schemas.views import ALL, View
from trainer.config import PARALLEL, SERIAL, STUDENT, TEACHER
from trainer.labels import LabelSpace


def _read(storage, path: str, what: str) -> bytes:
    from schemas.zscore import ZScoreError

    try:
        return storage.read_bytes(path)
    except ValueError:  # RemoteStorageUnavailable says what to do
        raise
    except Exception as error:  # OSError locally, tf.errors.NotFoundError on gs://
        raise ZScoreError(f"cannot read {what} {path}: {error}") from None


def zscore_parameters(dataset_dir: str, manifest: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """(mean, scale) of the dataset's z-score, or None when it has none.

    Read as data: the float32 arrays of `normalization.parameters` (checked against the
    manifest's sha256), or for a dataset written before those existed, the constants of
    its TFT SavedModel's GraphDef. Nothing from the dataset is executed. Paths in the
    manifest are relative to the dataset and may not leave it. A problem: `ZScoreError`.
    """
    from schemas import zscore as Z
    from trainer import storage

    normalization = manifest.get("normalization") or {}
    if normalization.get("zscore", "none") == "none":
        return None
    if "parameters" in normalization:
        path = Z.dataset_path(dataset_dir, normalization["parameters"], "normalization.parameters")
        data = _read(storage, path, "its z-score parameters")
        expected = normalization.get("parameters_sha256")
        if Z.sha256(data) != expected:
            raise Z.ZScoreError(
                f"{path} does not match the sha256 its manifest records ({expected}): the dataset's "
                "z-score parameters were changed or damaged"
            )
        return Z.decode(data, path)
    transform_dir = Z.dataset_path(
        dataset_dir, normalization.get("transform_dir"), "normalization.transform_dir"
    )
    path = storage.join(transform_dir, "transform_fn", "saved_model.pb")
    try:
        return Z.parameters_from_saved_model(_read(storage, path, "its z-score analysis"), path)
    except Z.ZScoreError as error:
        raise Z.ZScoreError(
            f"{error}; preprocess the dataset again (with --zscore, or --transform-from its training "
            f"dataset) to store the parameters as {Z.PARAMETERS_NAME}"
        ) from None


LENGTH_SUFFIX = "_length"


def tfrecord_dataset(dataset_dir: str, batch_size: int, pad_to: int | None = None):
    """A tf.data pipeline over a dataset's TFRecord files: parsed, decoded, padded batches."""
    import tensorflow as tf

    layout, _ = load_layout(dataset_dir)
    files = dataset_files(dataset_dir, TFRECORD)
    compression = "GZIP" if files[0].endswith(".gz") else None

    def parse(serialized):
        parsed = layout.parse_tf_examples(serialized)
        for column in layout.frame_columns():
            frames = parsed[column.name]
            parsed[column.name + LENGTH_SUFFIX] = tf.cast(frames.row_lengths(), tf.int32)
            shape = None if pad_to is None else [None, pad_to, column.dim]
            parsed[column.name] = frames.to_tensor(shape=shape)
        return parsed

    dataset = tf.data.TFRecordDataset(files, compression_type=compression)
    return (
        dataset.batch(batch_size).map(parse, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    )


def parquet_batches(dataset_dir: str, batch_size: int, columns=None, pad_to: int | None = None):
    """Yield batches (dicts of numpy arrays) of a dataset's Parquet files, in file order.

    Variable-length integer/float lists (labels, frame_index, segments) stay a list of
    arrays per batch; scalars and vectors are stacked; frames are padded.
    """
    layout, _ = load_layout(dataset_dir)
    wanted = layout.column_names if columns is None else list(columns)
    unknown = sorted(set(wanted) - set(layout.column_names))
    if unknown:
        raise ValueError(
            f"dataset has no column(s) {', '.join(unknown)}; it has {', '.join(layout.column_names)}"
        )
    selected = [c for c in layout.columns() if c.name in wanted]
    for path in dataset_files(dataset_dir, PARQUET):
        for record_batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size, columns=wanted):
            rows = layout.rows_from_table(pa.Table.from_batches([record_batch]), wanted)
            batch = {}
            for column in selected:
                values = [row[column.name] for row in rows]
                if column.role == FRAMES:
                    batch[column.name], batch[column.name + LENGTH_SUFFIX] = pad_frames(
                        values, column.dim, np.dtype(layout.frame_dtype), pad_to
                    )
                elif column.role in (STRING, INT, VECTOR):
                    batch[column.name] = np.asarray(values)
                else:
                    batch[column.name] = values
            yield batch


def pad_frames(videos: list[np.ndarray], dim: int, dtype, pad_to: int | None = None):
    """Stack variable-length videos into `[B, T, D]` zeros-padded, with their lengths."""
    lengths = np.array([len(v) for v in videos], dtype=np.int32)
    width = pad_to if pad_to is not None else int(lengths.max(initial=0))
    out = np.zeros((len(videos), width, dim), dtype=dtype)
    for i, frames in enumerate(videos):
        out[i, : min(len(frames), width)] = frames[:width]
    return out, np.minimum(lengths, width)


def dataset_files(dataset_dir: str, fmt: str) -> list[str]:
    from trainer import storage

    pattern = storage.join(dataset_dir, fmt, SHARD_PREFIX + "-*")
    if storage.is_remote(pattern):
        import tensorflow as tf

        files = sorted(tf.io.gfile.glob(pattern))
    else:
        files = sorted(glob.glob(pattern))
    if not files:
        raise ValueError(f"{dataset_dir} has no {fmt} files (looked for {pattern})")
    return files


def load_layout(dataset_dir: str) -> tuple[DatasetLayout, dict]:
    """The dataset's layout and manifest; a clear error when it is not a dataset."""
    from trainer import storage

    path = storage.join(dataset_dir, MANIFEST_NAME)
    if not storage.exists(path):
        raise ValueError(f"{dataset_dir} is not a fewframes dataset (no {MANIFEST_NAME})")
    manifest = json.loads(storage.read_text(path))
    return DatasetLayout.from_dict(manifest["schema"]), manifest


TEACHER_FRAMES, TEACHER_MASK = "teacher_frames", "teacher_mask"
STUDENT_FRAMES, STUDENT_MASK = "student_frames", "student_mask"
TARGET_PREDICTIONS, TARGET_REPRESENTATION = F.TEACHER_PREDICTIONS, F.TEACHER_REPRESENTATION
FULL_VIEW = View(ALL)


class InputMismatch(ValueError):
    """A dataset cannot feed the requested training (missing view, other classes, ...)."""


class UnreadableInput(ValueError):
    """A dataset file that cannot be read (truncated, damaged, not Parquet), by path."""


@dataclasses.dataclass(frozen=True)
class InputPlan:
    """What a reader must produce from one dataset, checked against its layout."""

    dataset_dir: str
    layout: DatasetLayout
    manifest: dict
    features: tuple[str, ...]
    label_space: LabelSpace
    teacher: bool  # produce the full view
    student_view: View | None  # produce this view
    student_from_full: bool  # cut it from the full view (else: the stored view)
    targets: bool = False  # produce the stored teacher outputs (a teacher-targets dataset)

    @property
    def num_videos(self) -> int:
        return self.manifest["videos"]

    @property
    def video_level(self) -> bool:
        return self.layout.kind == F.VIDEO_LEVEL

    def frame_sources(self, full: bool) -> list[str]:
        if self.video_level:
            return [F.MEAN_FEATURE_OF[f] for f in self.features]
        return [F.full_view_column(f) if full else f for f in self.features]

    def columns(self) -> list[str]:
        columns = [F.ID, F.LABELS]
        if self.video_level:
            return columns + self.frame_sources(full=False)
        if self.teacher or self.student_from_full:
            columns += self.frame_sources(full=True)
        if self.student_view is not None and not self.student_from_full:
            columns += self.frame_sources(full=False)
        if self.targets:
            columns += self.target_columns()
        return columns

    def target_columns(self) -> list[str]:
        return [*self.layout.targets_encoding.prediction_columns(), TARGET_REPRESENTATION]


def plan_inputs(
    dataset_dir: str,
    mode: str,
    view: View,
    features: tuple[str, ...],
    label_space: LabelSpace,
    role: str = "train",
    targets: bool = False,
) -> InputPlan:
    """Check that a dataset can feed `mode` and say how; `InputMismatch` names what is wrong.

    `targets`: the dataset is a teacher-targets dataset feeding `serial` without the teacher.
    """
    layout, manifest = load_layout(dataset_dir)
    where = f"{role} dataset {dataset_dir}"
    if manifest.get("num_classes") != label_space.num_entities:
        raise InputMismatch(
            f"{where} has {manifest.get('num_classes')} classes; this run expects {label_space.num_entities}"
        )
    if targets:
        return _plan_targets(dataset_dir, layout, manifest, view, features, label_space, where)
    teacher = mode in (TEACHER, PARALLEL, SERIAL)
    student = mode != TEACHER
    if layout.kind == F.VIDEO_LEVEL:
        if mode not in (TEACHER, STUDENT):
            raise InputMismatch(f"{where} is video level: only --mode teacher or student apply (no frames)")
        return InputPlan(
            dataset_dir,
            layout,
            manifest,
            features,
            label_space,
            teacher=teacher,
            student_view=FULL_VIEW if student else None,
            student_from_full=False,
        )
    stored_view = View.parse(layout.view) if layout.view else None
    if teacher and not layout.teacher_view:
        raise InputMismatch(
            f"{where} has no full view (preprocess with --teacher-view): --mode {mode} needs every frame "
            "for the teacher"
        )
    student_view, from_full = None, False
    if student:
        student_view = view
        # Cut from the full view when it is read anyway (for the teacher), when the stored
        # view is another one, and for random views (new frames every epoch).
        if teacher or view != stored_view or not view.is_deterministic:
            if not layout.teacher_view:
                raise InputMismatch(
                    f"{where} stores view {stored_view} and no full view; --view {view} needs a dataset "
                    f"preprocessed with --view {view} or with --teacher-view"
                )
            from_full = True
    return InputPlan(
        dataset_dir,
        layout,
        manifest,
        tuple(features),
        label_space,
        teacher=teacher,
        student_view=student_view,
        student_from_full=from_full,
    )


def _plan_targets(dataset_dir, layout, manifest, view, features, label_space, where) -> InputPlan:
    """A teacher-targets dataset: the stored student view and the teacher's stored outputs."""
    if not layout.teacher_targets:
        raise InputMismatch(
            f"{where} holds no teacher targets: --targets needs a dataset written by "
            "`fewframes teacher-targets` (or drop --targets to run the teacher online)"
        )
    if not view.is_deterministic:
        raise InputMismatch(
            f"--view {view} draws new frames every epoch; {where} stores one view ({layout.view}): "
            f"use --view {layout.view}, or drop --targets to cut random views from the full view"
        )
    if layout.view != str(view):
        raise InputMismatch(
            f"{where} stores view {layout.view}; this run asks for --view {view} "
            f"(compute targets with --view {view}, or use --view {layout.view})"
        )
    teacher = manifest.get("teacher", {})
    if layout.num_classes != label_space.num_classes or teacher.get("label_space") != label_space.kind:
        raise InputMismatch(
            f"{where} holds a teacher's predictions over {layout.num_classes} "
            f"{teacher.get('label_space')} classes; this run trains on {label_space.num_classes} "
            f"{label_space.kind} classes"
        )
    vocabulary = teacher.get("vocabulary_sha256")
    if vocabulary and label_space.vocabulary_sha256 and vocabulary != label_space.vocabulary_sha256:
        raise InputMismatch(f"the teacher of {where} used another vocabulary than --vocabulary")
    if tuple(teacher.get("features", ())) != tuple(features):
        raise InputMismatch(
            f"the teacher of {where} read features {','.join(teacher.get('features', ()))}; "
            f"this run asks for --features {','.join(features)}"
        )
    return InputPlan(
        dataset_dir,
        layout,
        manifest,
        tuple(features),
        label_space,
        teacher=False,
        student_view=view,
        student_from_full=False,
        targets=True,
    )


def steps_per_epoch(plan: InputPlan, batch_size: int) -> int:
    """Whole batches in an epoch (training drops the last partial one): 0 when the dataset
    holds fewer videos than one batch."""
    return plan.num_videos // batch_size


def resolve_format(plan: InputPlan, requested: str, backend: str) -> str:
    """auto: TFRecord under TensorFlow when present, else Parquet."""
    dataset_dir, available = plan.dataset_dir, plan.manifest.get("formats", [])
    if requested != "auto":
        if requested not in available:
            raise InputMismatch(f"{dataset_dir} has no {requested} files (it has {', '.join(available)})")
        return requested
    if backend == "tensorflow" and TFRECORD in available:
        return TFRECORD
    if PARQUET in available:
        return PARQUET
    if TFRECORD in available:
        raise InputMismatch(f"{dataset_dir} has only TFRecord files, which need the TensorFlow backend")
    raise InputMismatch(f"{dataset_dir} has no dataset files")


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7_919) % (2**31 - 1)


def _ordered_files(plan: InputPlan, fmt: str, shuffle: bool, seed: int, epoch: int, share=None) -> list[str]:
    """The files to read, in the epoch's order: all of them, or a worker's `share`'s
    (`trainer.training.distribution.Share`)."""
    files = list(share.files) if share is not None else dataset_files(plan.dataset_dir, fmt)
    if shuffle:
        files = [files[i] for i in np.random.default_rng(_epoch_seed(seed, epoch)).permutation(len(files))]
    return files


# ----- numpy (Parquet) ------------------------------------------------------------------
def assemble_numpy(plan: InputPlan, columns: dict, rng: np.random.Generator | None):
    """Raw columns of a batch (padded frames + lengths) -> `(x, y)` numpy batch."""
    x = {}
    if plan.video_level:
        frames = np.concatenate([np.asarray(columns[c], np.float32) for c in plan.frame_sources(False)], -1)
        frames, mask = frames[:, None, :], np.ones((len(frames), 1), np.float32)
        if plan.teacher:
            x[TEACHER_FRAMES], x[TEACHER_MASK] = frames, mask
        if plan.student_view is not None:
            x[STUDENT_FRAMES], x[STUDENT_MASK] = frames, mask
        return x, plan.label_space.multi_hot(columns[F.LABELS])

    def joined(full: bool):
        names = plan.frame_sources(full)
        frames = np.concatenate(
            [dequantize(columns[n]) if columns[n].dtype == np.uint8 else columns[n] for n in names], axis=-1
        )
        return frames, columns[names[0] + LENGTH_SUFFIX]

    if plan.teacher or plan.student_from_full:
        full, full_lengths = joined(True)
        if plan.teacher:
            x[TEACHER_FRAMES], x[TEACHER_MASK] = full, _mask(full_lengths, full.shape[1])
    if plan.student_view is not None:
        if plan.student_from_full:
            frames, lengths = plan.student_view.gather_padded(full, full_lengths, rng)
        else:
            frames, lengths = joined(False)
        x[STUDENT_FRAMES], x[STUDENT_MASK] = frames, _mask(lengths, frames.shape[1])
    if plan.targets:
        x[TARGET_PREDICTIONS] = plan.layout.targets_encoding.dense_numpy(columns, plan.layout.num_classes)
        x[TARGET_REPRESENTATION] = np.stack(
            [np.asarray(v, np.float32) for v in columns[TARGET_REPRESENTATION]]
        )
    return x, plan.label_space.multi_hot(columns[F.LABELS])


def _mask(lengths, width: int) -> np.ndarray:
    return (np.arange(width)[None, :] < np.asarray(lengths)[:, None]).astype(np.float32)


def numpy_batches(
    plan: InputPlan,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    epoch: int = 0,
    skip_batches: int = 0,
    shuffle_buffer: int = 1024,
    drop_remainder: bool = False,
    with_ids: bool = False,
    workers: int = 0,
    share=None,
):
    """Yield `(x, y)` numpy batches read from Parquet (pyarrow only, no TensorFlow).

    `share` (a `trainer.training.distribution.Share`): read only that worker's files or row groups.

    `workers` > 0 reads and decompresses the next Parquet row groups, and assembles
    batches, on background threads (pyarrow and numpy work that releases the GIL), up
    to `workers` row groups and batches ahead, so a training step overlaps the input;
    the batches are the same, in the same order, as with `workers=0`. A batch's random
    view depends only on (seed, epoch, batch index), so a run resumed mid-epoch cuts the
    same views as one that was not interrupted.
    """
    files = _ordered_files(plan, PARQUET, shuffle, seed, epoch, share)
    rng = np.random.default_rng(_epoch_seed(seed, epoch) + 1)
    columns = plan.columns()
    mine = share.row_groups if share is not None and share.row_groups else None

    def row_groups():
        """(path, its footer, row group) of every row group, in file order."""
        for path in files:
            with _naming(path):
                metadata = pq.ParquetFile(path).metadata
            indexes = range(metadata.num_row_groups)
            yield from ((path, metadata, i) for i in indexes if mine is None or (path, i) in mine)

    def read(path: str, metadata, index: int) -> pa.Table:
        with _naming(path):  # the footer read once per file, not once per row group
            parquet = pq.ParquetFile(path, metadata=metadata)
            return parquet.read_row_group(index, columns=columns, use_threads=False)

    def rows():
        # With workers, row groups are read and decompressed ahead on threads, in order.
        tables = _ahead(row_groups(), read, workers)
        try:
            for table in tables:
                yield from plan.layout.rows_from_table(table, columns)
        finally:  # ends the read-ahead threads now, not when the garbage collector gets to them
            tables.close()

    def shuffled(source):
        if not shuffle:
            yield from source
            return
        buffer = []
        for row in source:
            if len(buffer) < shuffle_buffer:
                buffer.append(row)
                continue
            j = int(rng.integers(len(buffer)))
            yield buffer[j]
            buffer[j] = row
        for j in rng.permutation(len(buffer)):
            yield buffer[j]

    def batch_rows():
        """(batch index, rows) of each batch to yield, skipped batches left out."""
        batch_index = 0
        pending = []
        for row in shuffled(rows()):
            pending.append(row)
            if len(pending) == batch_size:
                if batch_index >= skip_batches:
                    yield batch_index, pending
                batch_index += 1
                pending = []
        if pending and not drop_remainder and batch_index >= skip_batches:
            yield batch_index, pending

    def assemble(batch_index: int, batch: list[dict]):
        view_rng = np.random.default_rng([_epoch_seed(seed, epoch), 2, batch_index])
        return _numpy_batch(plan, batch, view_rng, with_ids)

    yield from _ahead(batch_rows(), assemble, workers)


@contextlib.contextmanager
def _naming(path: str):
    """Arrow's errors for a damaged file do not say which file: `UnreadableInput` does."""
    try:
        yield
    except (pa.ArrowException, OSError) as error:
        raise UnreadableInput(f"cannot read {path}: {error}") from error


def _ahead(jobs, assemble, workers: int):
    """`assemble(*job)` for each job of the iterator `jobs`, in order, computed on `workers`
    threads while the consumer works; a reader thread feeds them. At most `workers`
    batches wait ahead, so memory stays bounded; an error is raised at its batch.
    With `workers` <= 0, each job is assembled in the consumer's thread when asked for."""
    import concurrent.futures
    import queue
    import threading

    if workers <= 0:
        try:
            for job in jobs:
                yield assemble(*job)
        finally:
            _close(jobs)
        return

    pending = queue.Queue(maxsize=workers)
    stop = threading.Event()
    done = object()
    pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="fewframes-input")

    def put(item) -> bool:
        """Queue `item` once there is room; False when the consumer has gone."""
        while not stop.is_set():
            try:
                pending.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def feed():
        try:
            for job in jobs:
                if not put(pool.submit(assemble, *job)):
                    return
            put(done)
        except BaseException as error:  # a reading error reaches the consumer at its place
            failed = concurrent.futures.Future()
            failed.set_exception(error)
            put(failed)
        finally:  # a generator of jobs may hold threads of its own (nested read-ahead)
            _close(jobs)

    reader = threading.Thread(target=feed, name="fewframes-input-reader", daemon=True)
    reader.start()
    try:
        while True:
            item = pending.get()
            if item is done:
                return
            yield item.result()
    finally:  # also when the consumer stops early (fit's steps_per_epoch, an error)
        stop.set()
        while True:
            try:
                pending.get_nowait()
            except queue.Empty:
                break
        pool.shutdown(wait=False, cancel_futures=True)


def _close(iterator) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        close()


def _numpy_batch(plan: InputPlan, rows: list[dict], rng, with_ids: bool):
    """Rows as `rows_from_table` gives them (one array per video) -> a padded `(x, y)` batch."""
    columns = {F.ID: [r[F.ID] for r in rows], F.LABELS: [r[F.LABELS] for r in rows]}
    dims = {c.name: c.dim for c in plan.layout.columns()}
    targets = set(plan.target_columns()) if plan.targets else set()
    for name in plan.columns()[2:]:
        if name in targets:
            columns[name] = [r[name] for r in rows]
            continue
        if plan.video_level:
            columns[name] = np.stack([r[name] for r in rows])
            continue
        width = F.MAX_FRAMES if name.startswith(F.FULL_VIEW_PREFIX) else plan.student_view.max_selected
        videos = [r[name] for r in rows]
        columns[name], columns[name + LENGTH_SUFFIX] = pad_frames(
            videos, dims[name], np.dtype(plan.layout.frame_dtype), width
        )
    x, y = assemble_numpy(plan, columns, rng)
    if with_ids:
        x[F.ID] = np.asarray(columns[F.ID])
    return x, y


# ----- tf.data (TFRecord) ---------------------------------------------------------------
def tf_dataset(
    plan: InputPlan,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    epoch: int = 0,
    skip_batches: int = 0,
    shuffle_buffer: int = 1024,
    drop_remainder: bool = False,
    with_ids: bool = False,
    share=None,
):
    """The same batches as `numpy_batches` (up to random views), as a tf.data pipeline;
    `share`: only that worker's files, or its records (every `workers`-th)."""
    import tensorflow as tf

    by_records = share is not None and share.by == "records"
    # Records are dealt by their place in the files' fixed order, so that files are not shuffled.
    files = _ordered_files(plan, TFRECORD, shuffle and not by_records, seed, epoch, share)
    compression = "GZIP" if files[0].endswith(".gz") else None
    dataset = tf.data.TFRecordDataset(files, compression_type=compression)
    if by_records:
        dataset = dataset.shard(share.workers, share.worker)
    if shuffle:
        dataset = dataset.shuffle(
            shuffle_buffer, seed=_epoch_seed(seed, epoch), reshuffle_each_iteration=False
        )
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder).enumerate()
    if skip_batches:
        dataset = dataset.skip(skip_batches)  # before parsing: skipped batches cost a read only
    columns = plan.columns()
    view_seed = _epoch_seed(seed, epoch)

    def build(index, serialized):
        parsed = plan.layout.parse_tf_examples(serialized, columns)
        x = assemble_tf(plan, parsed, tf.stack([tf.constant(view_seed, tf.int64), index]))
        if with_ids:
            x[0][F.ID] = parsed[F.ID]
        return x

    options = tf.data.Options()
    options.deterministic = True
    return (
        dataset.map(build, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
        .with_options(options)
    )


def damaged_tfrecord(dataset_dir: str) -> UnreadableInput | None:
    """The first TFRecord file of a dataset that cannot be read to its end, as an error
    naming it (tf.data's `DataLossError` says "corrupted record at <offset>", not which
    file); None when every file reads. Reads the whole dataset: for after such an error."""
    import tensorflow as tf

    for path in dataset_files(dataset_dir, TFRECORD):
        records = tf.data.TFRecordDataset(path, compression_type="GZIP" if path.endswith(".gz") else None)
        try:
            for _ in records:
                pass
        except tf.errors.DataLossError as error:
            what = re.search(r"\w+ record at \d+", error.message)  # without the op's name around it
            return UnreadableInput(f"cannot read {path}: {what.group() if what else error.message.strip()}")
    return None


def assemble_tf(plan: InputPlan, parsed: dict, view_seed):
    """TensorFlow twin of `assemble_numpy` over `parse_tf_examples` output."""
    import tensorflow as tf

    x = {}
    labels = plan.label_space.multi_hot_tf(parsed[F.LABELS])
    if plan.video_level:
        frames = tf.concat([parsed[c] for c in plan.frame_sources(False)], axis=-1)[:, None, :]
        mask = tf.ones(tf.shape(frames)[:2], tf.float32)
        if plan.teacher:
            x[TEACHER_FRAMES], x[TEACHER_MASK] = frames, mask
        if plan.student_view is not None:
            x[STUDENT_FRAMES], x[STUDENT_MASK] = frames, mask
        return x, labels

    def joined(full: bool, width: int):
        ragged = [parsed[n] for n in plan.frame_sources(full)]
        lengths = tf.cast(ragged[0].row_lengths(), tf.int32)
        dense = [r.to_tensor(shape=[None, width, r.shape[-1]]) for r in ragged]
        if dense[0].dtype == tf.uint8:
            dense = [dequantize_tf(d) for d in dense]
        return tf.concat(dense, axis=-1), lengths

    if plan.teacher or plan.student_from_full:
        full, full_lengths = joined(True, F.MAX_FRAMES)
        if plan.teacher:
            x[TEACHER_FRAMES], x[TEACHER_MASK] = full, _mask_tf(full_lengths, F.MAX_FRAMES)
    if plan.student_view is not None:
        view = plan.student_view
        if plan.student_from_full:
            frames, lengths = view.gather_padded_tf(full, full_lengths, seed=view_seed)
        else:
            frames, lengths = joined(False, view.max_selected)
        x[STUDENT_FRAMES], x[STUDENT_MASK] = frames, _mask_tf(lengths, view.max_selected)
    if plan.targets:
        x[TARGET_PREDICTIONS] = plan.layout.targets_encoding.dense_tf(parsed, plan.layout.num_classes)
        x[TARGET_REPRESENTATION] = parsed[TARGET_REPRESENTATION]
    return x, labels


def _mask_tf(lengths, width: int):
    import tensorflow as tf

    return tf.sequence_mask(lengths, width, dtype=tf.float32)


def batches(plan: InputPlan, fmt: str, batch_size: int, workers: int = 0, **kwargs):
    """`tf_dataset` or `numpy_batches` (on `workers` threads) by format."""
    if fmt == TFRECORD:
        return tf_dataset(plan, batch_size, **kwargs)
    return numpy_batches(plan, batch_size, workers=workers, **kwargs)
