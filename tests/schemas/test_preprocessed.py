import io

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from schemas import features as F
from schemas.preprocessed import DatasetLayout, layout_from_arrow_schema


def _frame_rows(layout: DatasetLayout, rng, count=4):
    dtype = np.dtype(layout.frame_dtype)
    rows = []
    for i in range(count):
        kept, full = i + 1, 3 * i + 2  # one video has a single kept frame
        row = {
            F.ID: f"video-{i}",
            F.LABELS: np.arange(i, dtype=np.int32),  # video 0 has no labels (test partition)
            F.NUM_FRAMES: full,
            F.FRAME_INDEX: np.arange(kept, dtype=np.int16) * 2,
        }
        for name in F.FRAME_FEATURES:
            dim = F.FEATURE_DIMS[name]
            row[name] = (
                rng.integers(0, 256, (kept, dim)) if dtype == np.uint8 else rng.normal(size=(kept, dim))
            ).astype(dtype)
            if layout.teacher_view:
                row[F.full_view_column(name)] = rng.normal(size=(full, dim)).astype(dtype)
        if layout.teacher_targets:
            predictions = rng.random((1, layout.num_classes)).astype(np.float32)
            row.update(layout.targets_encoding.encode(predictions)[0])
            row[F.TEACHER_REPRESENTATION] = rng.normal(size=layout.representation_dim).astype(np.float32)
        if layout.segments:
            row.update(
                {
                    F.SEGMENT_START_TIMES: np.array([0, 5][:i], np.int32),
                    F.SEGMENT_END_TIMES: np.array([5, 10][:i], np.int32),
                    F.SEGMENT_LABELS: np.array([1, 2][:i], np.int32),
                    F.SEGMENT_SCORES: np.array([1.0, 0.0][:i], np.float32),
                }
            )
        rows.append(row)
    return rows


def _assert_rows_equal(layout, got, expected):
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        for name in layout.column_names:
            g_value, e_value = np.asarray(g[name]), np.asarray(e[name])
            assert g_value.shape == e_value.shape, name
            assert np.array_equal(g_value, e_value), name


LAYOUTS = [
    DatasetLayout(F.FRAME_LEVEL, "float16", view="every_n:10"),
    DatasetLayout(F.FRAME_LEVEL, "float32", teacher_view=True, segments=True, view="uniform:5"),
    DatasetLayout(F.FRAME_LEVEL, "uint8", teacher_view=True, view="every_n:3"),
    DatasetLayout(
        F.FRAME_LEVEL,
        "float16",
        view="every_n:10",
        teacher_targets="all",
        num_classes=7,
        representation_dim=5,
    ),
    DatasetLayout(
        F.FRAME_LEVEL,
        "uint8",
        view="uniform:4",
        teacher_targets="top_k:3",
        num_classes=9,
        representation_dim=6,
    ),
]


def _layout_id(layout):
    return layout.frame_dtype + (f"-targets-{layout.teacher_targets}" if layout.teacher_targets else "")


@pytest.mark.parametrize("layout", LAYOUTS, ids=_layout_id)
def test_frame_rows_round_trip_through_parquet(layout):
    rows = _frame_rows(layout, np.random.default_rng(1))
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_batches([layout.to_record_batch(rows)]), buffer)
    table = pq.read_table(io.BytesIO(buffer.getvalue()))
    assert layout_from_arrow_schema(table.schema) == layout
    _assert_rows_equal(layout, layout.rows_from_table(table), rows)


def _video_rows(count=3):
    rng = np.random.default_rng(3)
    return [
        {
            F.ID: f"v{i}",
            F.LABELS: np.array([i], np.int32),
            F.MEAN_RGB: rng.normal(size=1024).astype(np.float32),
            F.MEAN_AUDIO: rng.normal(size=128).astype(np.float32),
        }
        for i in range(count)
    ]


@pytest.mark.parametrize("layout", LAYOUTS + [DatasetLayout(F.VIDEO_LEVEL)], ids=_layout_id)
def test_parquet_files_load_with_pandas_and_duckdb_and_frames_decode_with_one_frombuffer(layout, tmp_path):
    rows = _video_rows() if layout.kind == F.VIDEO_LEVEL else _frame_rows(layout, np.random.default_rng(4))
    path = tmp_path / "part-0.parquet"
    pq.write_table(
        pa.Table.from_batches([layout.to_record_batch(rows)]), path, **layout.parquet_writer_options()
    )
    frame = pd.read_parquet(path)
    assert frame[F.ID].tolist() == [r[F.ID] for r in rows]
    columns = [c.name for c in layout.columns()]
    duck = duckdb.connect().execute(f"SELECT {', '.join(columns)} FROM read_parquet('{path}')").fetchall()
    assert [r[0] for r in duck] == [r[F.ID] for r in rows]
    for column in layout.frame_columns():  # README: np.frombuffer(cell, dtype).reshape(-1, dim)
        position = columns.index(column.name)
        for i, row in enumerate(rows):
            for cell in (frame[column.name].iloc[i], duck[i][position]):
                decoded = np.frombuffer(cell, np.dtype(layout.frame_dtype)).reshape(-1, column.dim)
                assert np.array_equal(decoded, row[column.name]), (column.name, i)
    for name in (F.MEAN_RGB, F.MEAN_AUDIO) if layout.kind == F.VIDEO_LEVEL else ():
        assert np.array_equal(np.stack(frame[name].to_numpy()), np.stack([r[name] for r in rows]))


def _legacy_record_batch(layout: DatasetLayout, rows) -> pa.RecordBatch:
    """`rows` in the frames encoding datasets had before `large_binary`: a list with one
    fixed-size binary value per frame, built here with pyarrow alone."""
    batch = layout.to_record_batch(rows)
    arrays, fields = [], []
    for column in layout.columns():
        array = batch.column(column.name)
        if column.name in [c.name for c in layout.frame_columns()]:
            frames = [
                np.ascontiguousarray(r[column.name], np.dtype(layout.frame_dtype).newbyteorder("<"))
                for r in rows
            ]
            item = pa.binary(column.frame_bytes(layout.frame_dtype))
            inner = pa.array([f.tobytes() for video in frames for f in video], item)
            offsets = np.cumsum([0] + [len(f) for f in frames]).astype(np.int32)
            array = pa.ListArray.from_arrays(pa.array(offsets), inner)
            assert array.type == column.legacy_arrow_type(layout.frame_dtype)
        arrays.append(array)
        fields.append(pa.field(column.name, array.type, nullable=False))
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields, metadata=batch.schema.metadata))


@pytest.mark.parametrize("layout", LAYOUTS, ids=_layout_id)
def test_parquet_files_in_the_old_frames_encoding_are_still_read(layout):
    rows = _frame_rows(layout, np.random.default_rng(5))
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_batches([_legacy_record_batch(layout, rows)]), buffer)
    table = pq.read_table(io.BytesIO(buffer.getvalue()))
    assert pa.types.is_list(table.schema.field(F.RGB).type)
    assert layout_from_arrow_schema(table.schema) == layout
    _assert_rows_equal(layout, layout.rows_from_table(table), rows)


def test_a_frames_value_that_is_not_whole_frames_is_refused():
    layout = LAYOUTS[0]
    rows = _frame_rows(layout, np.random.default_rng(6), count=2)
    batch = layout.to_record_batch(rows)
    cut = pa.array([b"\x00" * 3, b""], pa.large_binary())
    arrays = [cut if name == F.RGB else batch.column(name) for name in batch.schema.names]
    with pytest.raises(ValueError, match="'rgb' holds a value that is not whole 2048-byte frames"):
        layout.rows_from_table(
            pa.Table.from_batches([pa.RecordBatch.from_arrays(arrays, schema=batch.schema)])
        )


@pytest.mark.parametrize("layout", LAYOUTS, ids=_layout_id)
def test_frame_rows_round_trip_through_tf_examples(layout):
    rows = _frame_rows(layout, np.random.default_rng(2))
    parsed = layout.parse_tf_examples(tf.constant([layout.to_tf_example(r) for r in rows]))
    for i, row in enumerate(rows):
        assert parsed[F.ID][i].numpy().decode() == row[F.ID]
        assert parsed[F.NUM_FRAMES][i].numpy() == row[F.NUM_FRAMES]
        assert parsed[F.LABELS][i].numpy().tolist() == row[F.LABELS].tolist()
        for column in layout.frame_columns():
            frames = parsed[column.name][i].numpy()
            assert frames.dtype == np.dtype(layout.frame_dtype)
            assert np.array_equal(frames, row[column.name]), column.name
    if layout.teacher_targets:
        encoding = layout.targets_encoding
        columns = {name: [row[name] for row in rows] for name in encoding.prediction_columns()}
        expected = encoding.dense_numpy(columns, layout.num_classes)
        assert np.array_equal(encoding.dense_tf(parsed, layout.num_classes).numpy(), expected)
        assert np.array_equal(
            parsed[F.TEACHER_REPRESENTATION].numpy(), np.stack([r[F.TEACHER_REPRESENTATION] for r in rows])
        )


@pytest.mark.parametrize("layout", LAYOUTS + [DatasetLayout(F.VIDEO_LEVEL)], ids=_layout_id)
def test_rows_round_trip_through_one_tf_example_without_tf_ops(layout):
    if layout.kind == F.VIDEO_LEVEL:
        rng = np.random.default_rng(5)
        rows = [
            {F.ID: "v", F.LABELS: np.array([3, 1], np.int32),
             F.MEAN_RGB: rng.normal(size=1024).astype(np.float32),
             F.MEAN_AUDIO: rng.normal(size=128).astype(np.float32)}
        ]  # fmt: skip
    else:
        rows = _frame_rows(layout, np.random.default_rng(4))
    _assert_rows_equal(layout, [layout.row_from_tf_example(layout.to_tf_example(r)) for r in rows], rows)


def test_row_from_tf_example_names_what_is_wrong():
    layout = LAYOUTS[0]
    row = _frame_rows(layout, np.random.default_rng(6))[0]  # one float16 frame: half a float32 one
    with pytest.raises(ValueError, match="record has no column"):
        DatasetLayout(F.FRAME_LEVEL, "float16", view="every_n:10").row_from_tf_example(
            DatasetLayout(F.VIDEO_LEVEL).to_tf_example(
                {F.ID: "v", F.LABELS: [1], F.MEAN_RGB: np.zeros(1024), F.MEAN_AUDIO: np.zeros(128)}
            )
        )
    with pytest.raises(ValueError, match="not whole frames"):
        DatasetLayout(F.FRAME_LEVEL, "float32", view="every_n:10").row_from_tf_example(
            layout.to_tf_example(row)
        )


def test_video_level_round_trip_in_both_encodings():
    layout = DatasetLayout(F.VIDEO_LEVEL, "float32")
    rng = np.random.default_rng(3)
    rows = [
        {
            F.ID: f"v{i}",
            F.LABELS: np.array([i], np.int32),
            F.MEAN_RGB: rng.normal(size=1024).astype(np.float32),
            F.MEAN_AUDIO: rng.normal(size=128).astype(np.float32),
        }
        for i in range(3)
    ]
    table = pa.Table.from_batches([layout.to_record_batch(rows)])
    _assert_rows_equal(layout, layout.rows_from_table(table), rows)
    parsed = layout.parse_tf_examples(tf.constant([layout.to_tf_example(r) for r in rows]))
    assert np.array_equal(parsed[F.MEAN_RGB].numpy(), np.stack([r[F.MEAN_RGB] for r in rows]))


def test_arrow_schema_and_tf_spec_come_from_the_same_columns():
    for layout in LAYOUTS + [DatasetLayout(F.VIDEO_LEVEL)]:
        assert layout.arrow_schema().names == layout.column_names == list(layout.tf_feature_spec())
        table = layout.markdown_table()
        assert all(f"`{name}`" in table for name in layout.column_names)


def test_teacher_view_columns_only_when_asked():
    assert F.full_view_column(F.RGB) not in DatasetLayout(F.FRAME_LEVEL).column_names
    assert F.full_view_column(F.RGB) in DatasetLayout(F.FRAME_LEVEL, teacher_view=True).column_names


def test_invalid_layouts_are_refused():
    with pytest.raises(ValueError, match="frame dtype"):
        DatasetLayout(F.FRAME_LEVEL, "int8")
    with pytest.raises(ValueError, match="video-level"):
        DatasetLayout(F.VIDEO_LEVEL, teacher_view=True)
    with pytest.raises(ValueError, match="schema version"):
        DatasetLayout.from_dict({"schema_version": 999, "kind": "frame"})


def test_parquet_without_layout_metadata_is_refused():
    with pytest.raises(ValueError, match="not written by fewframes"):
        layout_from_arrow_schema(pa.schema([("id", pa.string())]))
