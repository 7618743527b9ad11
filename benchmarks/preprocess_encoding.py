"""Parquet frames encoding: one large_binary per video against the old list of fixed-size binaries.

    .venv/bin/python benchmarks/preprocess_encoding.py [--videos 200] [--dtypes float16,uint8,float32]

Writes and reads the same rows in the Parquet frames encoding of old (a list
of one fixed-size binary per frame) and of now (one large_binary per video), side by
side in one process: write and read time, the decoding into numpy that training and
scoring use, pandas.read_parquet, and file size.

Output is a Markdown table for RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def _legacy_frames_table(layout, rows):
    """The rows as the pre-`large_binary` writer built them: frames as a list of one
    fixed-size binary per frame, from one buffer (the old `_arrow_column`)."""
    import numpy as np
    import pyarrow as pa

    batch = layout.to_record_batch(rows)
    frame_columns = {c.name: c for c in layout.frame_columns()}
    arrays, fields = [], []
    for name in batch.schema.names:
        array = batch.column(name)
        if name in frame_columns:
            column = frame_columns[name]
            frames = [np.asarray(r[name]).reshape(-1, column.dim) for r in rows]
            flat = np.ascontiguousarray(
                np.concatenate(frames), np.dtype(layout.frame_dtype).newbyteorder("<")
            )
            item = pa.binary(column.frame_bytes(layout.frame_dtype))
            inner = pa.FixedSizeBinaryArray.from_buffers(item, len(flat), [None, pa.py_buffer(flat)])
            offsets = np.cumsum([0] + [len(f) for f in frames]).astype(np.int32)
            array = pa.ListArray.from_arrays(pa.array(offsets), inner)
        arrays.append(array)
        fields.append(pa.field(name, array.type, nullable=False))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=batch.schema.metadata))


def _encoding_rows(layout, videos: int, seed: int):
    """Frame-level rows as preprocessing makes them: dequantized uint8 codes, 60-300 frames."""
    import numpy as np

    from schemas import features as F
    from schemas.quantization import dequantize
    from schemas.views import View

    rng = np.random.default_rng(seed)
    view = View.parse(layout.view)
    rows = []
    for i in range(videos):
        length = int(rng.integers(60, 301))
        row = {F.ID: f"video-{i}", F.LABELS: np.array([i % 100], np.int32), F.NUM_FRAMES: length}
        row[F.FRAME_INDEX] = view.frame_indices(length).astype(np.int16)
        for name in F.FRAME_FEATURES:
            codes = rng.integers(0, 256, (length, F.FEATURE_DIMS[name]), dtype=np.uint8)
            full = dequantize(codes, layout.frame_dtype) if layout.frame_dtype != "uint8" else codes
            row[name] = full[row[F.FRAME_INDEX]]
            row[F.full_view_column(name)] = full
        rows.append(row)
    return rows


def encoding(args) -> None:
    """Write, size and read one dataset in both frames encodings, interleaved, in this process."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from schemas.preprocessed import DatasetLayout

    os.makedirs(args.workdir, exist_ok=True)
    results = {}
    for dtype in args.dtypes.split(","):
        layout = DatasetLayout("frame", dtype, teacher_view=True, view="every_n:10")
        rows = _encoding_rows(layout, args.videos, seed=1)
        options = layout.parquet_writer_options()
        builders = {
            "old": lambda rows=rows, layout=layout: _legacy_frames_table(layout, rows),
            "new": lambda rows=rows, layout=layout: pa.Table.from_batches([layout.to_record_batch(rows)]),
        }
        timings = {key: {"write": [], "read": [], "decode": [], "pandas": []} for key in builders}
        sizes = {}
        for _ in range(args.repeats):
            for key, build in builders.items():
                path = os.path.join(args.workdir, f"{key}-{dtype}.parquet")
                start = time.perf_counter()
                pq.write_table(build(), path, compression=args.codec, **options)
                timings[key]["write"].append(time.perf_counter() - start)
                sizes[key] = os.path.getsize(path)
                start = time.perf_counter()
                table = pq.read_table(path, use_threads=False)
                timings[key]["read"].append(time.perf_counter() - start)
                start = time.perf_counter()  # the trainer's and scoring's decoding (numpy arrays per video)
                layout.rows_from_table(table)
                timings[key]["decode"].append(time.perf_counter() - start)
                start = time.perf_counter()
                try:
                    pd.read_parquet(path)
                    timings[key]["pandas"].append(time.perf_counter() - start)
                except pa.ArrowNotImplementedError:
                    timings[key]["pandas"] = None
                del table
        results[dtype] = {
            "sizes": sizes,
            "seconds": {
                key: {step: statistics.median(v) if v else None for step, v in steps.items()}
                for key, steps in timings.items()
            },
        }
    print(encoding_report(results, args))


def encoding_report(results: dict, args) -> str:
    lines = [
        f"{args.videos} frame-level videos (60-300 frames, every_n:10 kept plus the teacher view), "
        f"Parquet {args.codec}, one process; medians of {args.repeats} interleaved repetitions. "
        "old: list<fixed_size_binary> per frame; new: large_binary per video.",
        "",
        "| frame dtype | step | old s | new s | new / old |",
        "| --- | --- | --- | --- | --- |",
    ]
    for dtype, r in results.items():
        old, new = r["seconds"]["old"], r["seconds"]["new"]
        for step, label in (
            ("write", "build + write"),
            ("read", "pq.read_table"),
            ("decode", "rows_from_table (trainer, scoring)"),
            ("pandas", "pandas.read_parquet"),
        ):
            if old[step] is None:
                lines.append(f"| {dtype} | {label} | fails | {new[step]:.3f} | — |")
            else:
                lines.append(
                    f"| {dtype} | {label} | {old[step]:.3f} | {new[step]:.3f} | {new[step] / old[step]:.2f} |"
                )
        sizes = r["sizes"]
        lines.append(
            f"| {dtype} | file MB | {sizes['old'] / 2**20:.1f} | {sizes['new'] / 2**20:.1f} "
            f"| {sizes['new'] / sizes['old']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    enc = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    enc.add_argument("--videos", type=int, default=200)
    enc.add_argument("--dtypes", default="float16,uint8,float32")
    enc.add_argument("--codec", default="zstd")
    enc.add_argument("--repeats", type=int, default=5)
    enc.add_argument("--workdir", default="/tmp/fewframes-bench-encoding")
    encoding(enc.parse_args())


if __name__ == "__main__":
    main()
