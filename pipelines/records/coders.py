"""Coders for the big elements of our pipelines: dataset rows and Arrow tables.

Beam samples the encoded size of the first elements of every output (and sparsely
after). With the default coder a row (a dict of numpy arrays) falls back to pickle,
so sizing a batch of rows or a row group pickled megabytes per sample. These coders
give the same bytes when an element really crosses a boundary, and answer
`estimate_size` from the arrays' `nbytes` without encoding anything. A batch of rows
declared as `list[VideoRow]` gets Beam's list coder over `VideoRowCoder`.
"""

from __future__ import annotations

import pickle

import apache_beam as beam
import pyarrow as pa


class VideoRow(dict):
    """A processed video: column name -> value (numpy arrays for lists and frames)."""


def row_nbytes(row: dict) -> int:
    """Approximate size of a row: its arrays' bytes (frames dominate)."""
    return sum(getattr(value, "nbytes", 8) for value in row.values())


class VideoRowCoder(beam.coders.Coder):
    def encode(self, row: VideoRow) -> bytes:
        return pickle.dumps(dict(row), protocol=pickle.HIGHEST_PROTOCOL)

    def decode(self, encoded: bytes) -> VideoRow:
        return VideoRow(pickle.loads(encoded))

    def is_deterministic(self) -> bool:
        return False

    def estimate_size(self, row: VideoRow) -> int:
        return row_nbytes(row)

    def to_type_hint(self):
        return VideoRow


class ArrowTableCoder(beam.coders.Coder):
    """An Arrow table as an IPC stream."""

    def encode(self, table: pa.Table) -> bytes:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return sink.getvalue().to_pybytes()

    def decode(self, encoded: bytes) -> pa.Table:
        return pa.ipc.open_stream(encoded).read_all()

    def is_deterministic(self) -> bool:
        return False

    def estimate_size(self, table: pa.Table) -> int:
        return table.nbytes

    def to_type_hint(self):
        return pa.Table


beam.coders.registry.register_coder(VideoRow, VideoRowCoder)
beam.coders.registry.register_coder(pa.Table, ArrowTableCoder)
