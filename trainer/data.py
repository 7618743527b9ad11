"""Reading preprocessed datasets for training and scoring.

Two readers of the same rows, both driven by the dataset's `DatasetLayout`:
`parquet_batches` (pyarrow -> numpy, no TensorFlow needed, for the JAX / PyTorch
backends) and `tfrecord_dataset` (tf.data). Both give a frame column as a dense
`[B, T, D]` array padded with zeros plus `<column>_length` `[B]`, T being the longest
video of the batch or `pad_to`.
"""

from __future__ import annotations

import glob
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

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

LENGTH_SUFFIX = "_length"


def load_layout(dataset_dir: str) -> tuple[DatasetLayout, dict]:
    """The dataset's layout and manifest; a clear error when it is not a dataset."""
    from trainer import storage

    path = storage.join(dataset_dir, MANIFEST_NAME)
    if not storage.exists(path):
        raise ValueError(f"{dataset_dir} is not a fewframes dataset (no {MANIFEST_NAME})")
    manifest = json.loads(storage.read_text(path))
    return DatasetLayout.from_dict(manifest["schema"]), manifest


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


def pad_frames(videos: list[np.ndarray], dim: int, dtype, pad_to: int | None = None):
    """Stack variable-length videos into `[B, T, D]` zeros-padded, with their lengths."""
    lengths = np.array([len(v) for v in videos], dtype=np.int32)
    width = pad_to if pad_to is not None else int(lengths.max(initial=0))
    out = np.zeros((len(videos), width, dim), dtype=dtype)
    for i, frames in enumerate(videos):
        out[i, : min(len(frames), width)] = frames[:width]
    return out, np.minimum(lengths, width)


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
