"""pipelines.records.coders: rows and Arrow tables cross Beam boundaries intact and are sized cheaply."""

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that
from apache_beam.typehints import native_type_compatibility

from pipelines.records.coders import ArrowTableCoder, VideoRow, VideoRowCoder, row_nbytes
from pipelines.runner import local_runner
from schemas import features as F


def _row(video_id: str, num_frames: int, seed: int = 0) -> VideoRow:
    rng = np.random.default_rng(seed)
    return VideoRow(
        {
            F.ID: video_id,
            F.LABELS: np.array([1, 4], np.int32),
            F.NUM_FRAMES: num_frames,
            F.RGB: rng.normal(size=(num_frames, 1024)).astype(np.float16),
            F.AUDIO: rng.normal(size=(num_frames, 128)).astype(np.float16),
        }
    )


def _assert_rows_equal(got: dict, expected: dict) -> None:
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        assert np.array_equal(got[name], value), name
        assert getattr(got[name], "dtype", None) == getattr(value, "dtype", None), name


def test_a_row_round_trips_through_its_coder_as_a_video_row_with_the_same_arrays():
    row = _row("abc", 7)
    decoded = VideoRowCoder().decode(VideoRowCoder().encode(row))
    assert type(decoded) is VideoRow
    _assert_rows_equal(decoded, row)


def test_a_rows_estimated_size_is_its_arrays_bytes_without_encoding():
    row = _row("abc", 300)
    frames = 300 * (1024 + 128) * 2  # float16
    # id and num_frames have no nbytes and count 8 bytes each; labels are 2 int32.
    assert row_nbytes(row) == frames + 8 + 8 + 8
    assert VideoRowCoder().estimate_size(row) == row_nbytes(row)


def test_the_registry_gives_rows_tables_and_batches_of_rows_their_coders():
    registry = beam.coders.registry
    assert isinstance(registry.get_coder(VideoRow), VideoRowCoder)
    assert isinstance(registry.get_coder(pa.Table), ArrowTableCoder)
    batch = registry.get_coder(native_type_compatibility.convert_to_beam_type(list[VideoRow]))
    assert isinstance(batch, beam.coders.coders.ListCoder)
    assert isinstance(batch.value_coder(), VideoRowCoder)


def test_an_arrow_table_round_trips_with_its_schema_metadata_and_is_sized_by_its_buffers():
    schema = pa.schema(
        [("id", pa.string()), ("labels", pa.list_(pa.int32())), ("frames", pa.binary())],
        metadata={b"fewframes.layout": b'{"kind": "frame"}'},
    )
    table = pa.table(
        {"id": ["a", "b", "c"], "labels": [[1], [], [2, 3]], "frames": [b"\x00\x01", b"", b"\xff"]},
        schema=schema,
    )
    coder = ArrowTableCoder()
    decoded = coder.decode(coder.encode(table))
    assert decoded.equals(table) and decoded.schema.metadata == schema.metadata
    assert coder.estimate_size(table) == table.nbytes


def test_rows_grouped_by_a_real_pipeline_arrive_as_video_rows_with_their_arrays():
    rows = [_row(f"v{i}", 3 + i, seed=i) for i in range(4)]
    expected = {row[F.ID]: row for row in rows}

    def check(groups):
        groups = list(groups)
        assert sorted(key for key, _ in groups) == sorted(expected)
        for key, grouped in groups:
            (got,) = list(grouped)
            assert type(got) is VideoRow
            _assert_rows_equal(got, expected[key])

    with BeamTestPipeline(runner=local_runner(PipelineOptions([]))) as p:
        grouped = (
            p
            | beam.Create(rows).with_output_types(VideoRow)
            | beam.Map(lambda row: (row[F.ID], row)).with_output_types(tuple[str, VideoRow])
            | beam.GroupByKey()  # elements are encoded and decoded across this boundary
        )
        assert_that(grouped, check)
