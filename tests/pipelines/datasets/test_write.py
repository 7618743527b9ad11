"""pipelines.datasets.write: rows as Parquet and TFRecord shards, and the files a dataset owns."""

import argparse

import apache_beam as beam
import numpy as np
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines import preprocess
from pipelines.datasets import ownership, write
from pipelines.records.coders import VideoRow
from pipelines.runner import UsageError, local_runner
from pipelines.scoring import job as scoring_job
from schemas import features as F
from schemas.preprocessed import DatasetLayout, layout_from_arrow_schema

LAYOUT = DatasetLayout(F.FRAME_LEVEL, "float16", teacher_view=True, view="every_n:2")


def _rows(count: int = 5) -> list[VideoRow]:
    rng = np.random.default_rng(2)
    rows = []
    for i in range(count):
        full, kept = 2 * i + 2, i + 1
        row = VideoRow(
            {
                F.ID: f"video-{i}",
                F.LABELS: np.arange(i % 3, dtype=np.int32),
                F.NUM_FRAMES: full,
                F.FRAME_INDEX: np.arange(kept, dtype=np.int16) * 2,
            }
        )
        for name in F.FRAME_FEATURES:
            dim = F.FEATURE_DIMS[name]
            row[name] = rng.normal(size=(kept, dim)).astype(np.float16)
            row[F.full_view_column(name)] = rng.normal(size=(full, dim)).astype(np.float16)
        rows.append(row)
    return rows


def _assert_same_rows(got: list[dict], expected: list[dict]) -> None:
    got = sorted(got, key=lambda row: row[F.ID])
    assert [row[F.ID] for row in got] == [row[F.ID] for row in expected]
    for g, e in zip(got, expected, strict=True):
        for name in LAYOUT.column_names:
            assert np.array_equal(np.asarray(g[name]), np.asarray(e[name])), (e[F.ID], name)


def _args(*argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--format", type=lambda text: text.split(","), default=["parquet"])
    write.add_output_arguments(parser)
    return parser.parse_args(argv)


def _write(output, rows, args) -> None:
    pipeline = beam.Pipeline(runner=local_runner(PipelineOptions([])), options=PipelineOptions([]))
    created = pipeline | beam.Create(rows).with_output_types(VideoRow)
    write.write_formats(created, str(output), LAYOUT, args)
    pipeline.run().wait_until_finish()


def _names(directory) -> list[str]:
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())


def test_the_claims_recorded_before_a_run_own_every_sinks_temporary_files(tmp_path):
    """A run that crashes mid-write leaves Beam's temp directories behind; the claims written
    before it started must own their files, so that --overwrite can delete them."""
    from apache_beam.coders.coders import ToBytesCoder
    from apache_beam.io.filebasedsink import FileBasedSink

    output = str(tmp_path / "out")
    sinks = {
        write.DATASET_CLAIMS: [
            write.shard_prefix(output, "parquet"),
            write.shard_prefix(output, "tfrecord"),
            f"{output}/errors/{preprocess.FAILURES_NAME}",
            f"{output}/errors/{preprocess.DUPLICATES_NAME}",
        ],
        scoring_job.EVALUATION_CLAIMS: [f"{output}/{name}" for name in ("failed", "predictions", "videos")],
    }
    for claims, prefixes in sinks.items():
        for prefix in prefixes:
            temp = FileBasedSink(prefix, ToBytesCoder())._create_temp_dir(prefix)
            assert claims.owns(f"{temp[len(output) + 1 :]}/0f1e2d3c-4b5a.tmp"), (claims.kind, temp)
        assert not claims.owns("beam-temp-notes/x") and not claims.owns("errors/beam-temp-x-1/y")


def test_a_dataset_owns_every_file_its_jobs_write_and_nothing_else():
    for name in (
        "manifest.json",
        "parquet/part-00000-of-00002.parquet",
        "tfrecord/part-00001-of-00002.tfrecord",
        "tfrecord/part-00001-of-00002.tfrecord.gz",
        "errors/failures-00000-of-00001.jsonl",
        "errors/duplicate_ids-00000-of-00001.jsonl",
        "transform/transform_fn/saved_model.pb",
        "transform/transform_fn/variables/variables.index",
        "transform/transformed_metadata/schema.pbtxt",
        "transform/zscore.npz",  # the z-score parameters the trainer reads (--zscore)
    ):
        assert write.DATASET_CLAIMS.owns(name), name
    for name in (
        "notes.txt",
        "parquet/part.parquet",
        "tfrecord/part-00000-of-00001.parquet",
        "errors/my_notes.jsonl",
        "transform/mine/zscore.npz",
        "transform/zscore.npz.bak",
    ):
        assert not write.DATASET_CLAIMS.owns(name), name


def test_prepare_output_replaces_a_dataset_and_refuses_other_files_as_a_usage_error(tmp_path):
    output = tmp_path / "ds"
    write.prepare_output(str(output), overwrite=False)
    for name in ("manifest.json", "parquet/part-00000-of-00001.parquet", "transform/zscore.npz"):
        (output / name).parent.mkdir(parents=True, exist_ok=True)
        (output / name).write_text("old")
    ownership.commit(str(output), write.DATASET_CLAIMS)
    write.prepare_output(str(output), overwrite=True)  # a --zscore dataset is replaced whole
    assert _names(output) == [ownership.OWNED_NAME]
    (output / "thesis.tex").write_text("precious")
    with pytest.raises(UsageError) as refused:
        write.prepare_output(str(output), overwrite=True)
    assert str(refused.value) == (
        f"{output} holds files that are not part of a fewframes dataset: thesis.tex; "
        "--overwrite only replaces a dataset, so choose another --output"
    )
    assert (output / "thesis.tex").read_text() == "precious"


def test_rows_written_as_parquet_and_tfrecord_read_back_equal(tmp_path):
    rows = _rows()
    _write(tmp_path, rows, _args("--format", "parquet,tfrecord", "--num-shards", "2"))
    assert _names(tmp_path) == [
        "parquet/part-00000-of-00002.parquet",
        "parquet/part-00001-of-00002.parquet",
        "tfrecord/part-00000-of-00002.tfrecord",
        "tfrecord/part-00001-of-00002.tfrecord",
    ]
    table = pq.read_table(sorted((tmp_path / "parquet").glob("*.parquet")))
    assert layout_from_arrow_schema(table.schema) == LAYOUT
    _assert_same_rows(LAYOUT.rows_from_table(table), rows)
    records = [
        r.numpy() for p in sorted((tmp_path / "tfrecord").glob("*")) for r in tf.data.TFRecordDataset(str(p))
    ]
    _assert_same_rows([LAYOUT.row_from_tf_example(record) for record in records], rows)


def test_only_the_formats_asked_for_are_written_and_gzip_tfrecords_say_so(tmp_path):
    rows = _rows(3)
    _write(
        tmp_path, rows, _args("--format", "tfrecord", "--tfrecord-compression", "gzip", "--num-shards", "1")
    )
    assert _names(tmp_path) == ["tfrecord/part-00000-of-00001.tfrecord.gz"]
    shard = str(tmp_path / "tfrecord" / "part-00000-of-00001.tfrecord.gz")
    records = [r.numpy() for r in tf.data.TFRecordDataset(shard, compression_type="GZIP")]
    _assert_same_rows([LAYOUT.row_from_tf_example(record) for record in records], rows)


def test_a_parquet_row_group_holds_about_the_bytes_asked_for(tmp_path):
    rows = _rows(6)
    one_row_each = _args("--num-shards", "1", "--parquet-row-group-mb", str(1 / 2**20))  # 1 byte
    _write(tmp_path / "small", rows, one_row_each)
    _write(tmp_path / "large", rows, _args("--num-shards", "1", "--parquet-compression", "snappy"))
    small = pq.ParquetFile(tmp_path / "small" / "parquet" / "part-00000-of-00001.parquet")
    large = pq.ParquetFile(tmp_path / "large" / "parquet" / "part-00000-of-00001.parquet")
    assert small.metadata.num_row_groups == 6 and large.metadata.num_row_groups == 1
    assert small.metadata.row_group(0).column(0).compression == "ZSTD"  # the default codec
    assert large.metadata.row_group(0).column(0).compression == "SNAPPY"
    _assert_same_rows(LAYOUT.rows_from_table(small.read()), rows)


def test_the_sink_flags_have_their_defaults_and_the_manifest_records_them(capsys):
    assert write.output_options(_args()) == {
        "parquet_compression": "zstd",
        "parquet_row_group_mb": 64.0,
        "tfrecord_compression": "none",
        "num_shards": 0,
    }
    with pytest.raises(SystemExit) as exit_info:
        _args("--parquet-compression", "lz4")
    assert exit_info.value.code == 2 and "invalid choice: 'lz4'" in capsys.readouterr().err
    assert write.shard_prefix("gs://b/ds/", "tfrecord") == "gs://b/ds/tfrecord/part"
