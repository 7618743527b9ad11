"""The preprocessing job end to end on generated shards with planted damage."""

import json
import pathlib
import shutil
import time

import apache_beam as beam
import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines import preprocess
from pipelines.datasets import ownership
from pipelines.records import parse, tfrecord_io
from pipelines.records.parse import ParseConfig
from pipelines.runner import local_runner
from pipelines.synth import SynthConfig, generate
from schemas import features as F
from schemas import raw
from schemas.preprocessed import DatasetLayout, layout_from_arrow_schema
from schemas.quantization import dequantize
from schemas.views import View
from tests.conftest import random_frames

NUM_CLASSES = 20


def _tf_records(path) -> list[bytes]:
    return [r.numpy() for r in tf.data.TFRecordDataset(str(path))]


def _decode_raw(record: bytes) -> dict:
    """Reference reading of one raw record with plain protobuf + numpy."""
    example = tf.train.SequenceExample.FromString(record)
    frames = {
        name: np.stack(
            [
                np.frombuffer(f.bytes_list.value[0], np.uint8)
                for f in example.feature_lists.feature_list[name].feature
            ]
        )
        for name in F.FRAME_FEATURES
    }
    return {
        F.ID: example.context.feature[F.ID].bytes_list.value[0].decode(),
        F.LABELS: list(example.context.feature[F.LABELS].int64_list.value),
        **frames,
    }


@pytest.fixture(scope="module")
def damaged_input(tmp_path_factory):
    """Two generated shards, one with planted invalid records, one damaged file.

    Returns the input dir and the expectations: good records by id, failures by
    (file name, record index) with the reason's key words.
    """
    root = tmp_path_factory.mktemp("raw")
    generate(
        str(root),
        SynthConfig(
            kind="frame", videos=40, shards=2, seed=3, classes=NUM_CLASSES, min_frames=5, max_frames=320
        ),
        progress=False,
    )
    shards = sorted(root.glob("train*.tfrecord"))
    assert len(shards) == 2
    good = {}
    for shard in shards:
        for record in _tf_records(shard):
            good[_decode_raw(record)[F.ID]] = _decode_raw(record)
    rng = np.random.default_rng(0)
    rgb, audio = random_frames(rng, 3)
    planted = [
        (b"\x00\x01garbage", "parse", "cannot parse record"),
        (
            raw.frame_level_record(b"bad-label", [NUM_CLASSES], rgb, audio),
            "validate",
            f"label {NUM_CLASSES} outside",
        ),
        (raw.frame_level_record(b"no-frames", [1], rgb[:0], audio[:0]), "validate", "zero frames"),
        (raw.frame_level_record(b"short-audio", [1], rgb, audio[:2]), "validate", "'audio' has 2"),
        (
            raw.video_level_record(b"video-level", [1], np.zeros(1024), np.zeros(128)),
            "validate",
            "video level",
        ),
    ]
    failures = {}
    with open(shards[1], "ab") as f:
        base = len(_tf_records(shards[1]))
        for i, (payload, stage, words) in enumerate(planted):
            tfrecord_io.write_records(f, [payload])
            failures[(shards[1].name, base + i)] = (stage, words)

    # A third shard: record 2's data is damaged, and the file is cut inside record 5.
    extra_ids = []
    payloads = []
    for i in range(7):
        rgb, audio = random_frames(rng, 4 + i)
        video_id = f"extra-{i}"
        payloads.append(raw.frame_level_record(video_id.encode(), [i % NUM_CLASSES], rgb, audio))
        extra_ids.append(video_id)
    frames = [tfrecord_io.encode_record(p) for p in payloads]
    frames[2] = frames[2][:20] + bytes([frames[2][20] ^ 0xFF]) + frames[2][21:]
    damaged = shards[0].with_name("train9999.tfrecord")
    damaged.write_bytes(b"".join(frames[:5]) + frames[5][:100])
    failures[(damaged.name, 2)] = ("read", "data checksum")
    failures[(damaged.name, 5)] = ("read", "truncated")
    for i in (0, 1, 3, 4):
        good[extra_ids[i]] = _decode_raw(payloads[i])
    # A repeated id: a valid record reusing the first good id.
    dup_id = sorted(good)[0]
    rgb, audio = random_frames(rng, 6)
    dup_shard = shards[0].with_name("train9998.tfrecord")
    with open(dup_shard, "wb") as f:
        tfrecord_io.write_records(f, [raw.frame_level_record(dup_id.encode(), [1], rgb, audio)])
    return {
        "dir": root,
        "good": good,
        "failures": failures,
        "duplicate": dup_id,
        "duplicate_source": dup_shard.name,
        "reads": len(good) + 1 + len(failures),
    }


def _run(input_dir, output, *extra, test_pipeline=None):
    argv = [
        "--input",
        f"{input_dir}/train*.tfrecord",
        "--output",
        str(output),
        "--num-classes",
        str(NUM_CLASSES),
        *extra,
    ]
    return preprocess.run(argv, test_pipeline=test_pipeline)


def _jsonl(directory: pathlib.Path, prefix: str) -> list[dict]:
    return [json.loads(line) for path in sorted(directory.glob(f"{prefix}-*.jsonl")) for line in path.open()]


@pytest.fixture(scope="module")
def full_run(damaged_input, tmp_path_factory):
    output = tmp_path_factory.mktemp("out") / "dataset"
    summary = _run(
        damaged_input["dir"],
        output,
        "--format",
        "parquet,tfrecord",
        "--teacher-view",
        "--view",
        "every_n:10",
        "--num-shards",
        "2",
    )
    return output, summary


def test_counts_balance_and_every_failure_says_what_where_and_why(damaged_input, full_run):
    output, summary = full_run
    manifest = json.loads((output / "manifest.json").read_text())
    expected = damaged_input
    assert manifest["records_read"] == expected["reads"]
    assert manifest["records_failed"] == len(expected["failures"])
    assert manifest["records_written"] == len(expected["good"]) + 1  # the duplicate is kept
    assert manifest["balanced"] is True
    assert manifest["failures_by_stage"] == {"parse": 1, "read": 2, "validate": 4}
    failures = _jsonl(output / "errors", "failures")
    got = {(pathlib.Path(f["source"]).name, f["record_index"]): f for f in failures}
    assert set(got) == set(expected["failures"])
    for key, (stage, words) in expected["failures"].items():
        assert got[key]["stage"] == stage and words in got[key]["reason"], got[key]
    assert summary["counters"]["read/shards"] == 4
    # Batches of well-formed records are read from their bytes; those holding a bad
    # record go through the TF graph, and both kinds occur here.
    assert (
        summary["counters"]["parse/canonical_batches"] > 0 and summary["counters"]["parse/graph_batches"] > 0
    )


def test_duplicate_ids_are_listed_with_their_positions(damaged_input, full_run):
    output, summary = full_run
    (report,) = _jsonl(output / "errors", "duplicate_ids")
    assert report["id"] == damaged_input["duplicate"]
    assert [pathlib.Path(o["source"]).name for o in report["occurrences"]][-1] == damaged_input[
        "duplicate_source"
    ]
    assert summary["duplicate_ids"] == {"count": 1, "dropped": False, "checked": True}


def _expected_row(record: dict, view: View, dtype: str) -> dict:
    indices = view.frame_indices(len(record[F.RGB]))
    capped = min(len(record[F.RGB]), F.MAX_FRAMES)
    return {
        F.FRAME_INDEX: indices,
        F.RGB: dequantize(record[F.RGB][indices], dtype),
        F.AUDIO: dequantize(record[F.AUDIO][indices], dtype),
        F.full_view_column(F.RGB): dequantize(record[F.RGB][:capped], dtype),
        F.full_view_column(F.AUDIO): dequantize(record[F.AUDIO][:capped], dtype),
    }


def test_parquet_rows_equal_the_raw_records_dequantized_and_subsampled(damaged_input, full_run):
    output, _ = full_run
    files = sorted((output / "parquet").glob("*.parquet"))
    assert len(files) == 2
    table = pq.read_table(files)
    layout = layout_from_arrow_schema(pq.read_schema(files[0]))
    assert layout == DatasetLayout(F.FRAME_LEVEL, "float16", teacher_view=True, view="every_n:10")
    rows = [
        r
        for r in layout.rows_from_table(table)
        if r[F.ID] != damaged_input["duplicate"] or r[F.NUM_FRAMES] != 6
    ]
    assert sorted(r[F.ID] for r in rows) == sorted(damaged_input["good"])
    view = View.parse("every_n:10")
    for row in rows:
        record = damaged_input["good"][row[F.ID]]
        assert row[F.NUM_FRAMES] == len(record[F.RGB])
        assert sorted(row[F.LABELS].tolist()) == sorted(record[F.LABELS])
        for name, value in _expected_row(record, view, "float16").items():
            assert np.array_equal(row[name], value), (row[F.ID], name)


def test_every_parquet_file_of_a_run_loads_with_pandas_and_duckdb_as_the_stored_frames(full_run):
    output, _ = full_run
    files = sorted((output / "parquet").glob("*.parquet"))
    layout = layout_from_arrow_schema(pq.read_schema(files[0]))
    frames = [c.name for c in layout.frame_columns()]
    stored = layout.rows_from_table(pq.read_table(files))
    directory = pd.read_parquet(output / "parquet")  # the whole dataset, as the README shows
    assert len(directory) == len(stored)
    duck = duckdb.connect()
    for path in files:
        frame = pd.read_parquet(path)
        rows = layout.rows_from_table(pq.read_table(path))
        queried = duck.execute(f"SELECT {', '.join(frames)} FROM read_parquet('{path}')").fetchall()
        assert len(frame) == len(rows) == len(queried)
        for i, row in enumerate(rows):
            for j, column in enumerate(layout.frame_columns()):
                for cell in (frame[column.name].iloc[i], queried[i][j]):
                    decoded = np.frombuffer(cell, np.float16).reshape(-1, column.dim)
                    assert np.array_equal(decoded, row[column.name]), (path.name, i, column.name)


def test_parquet_columns_get_dictionaries_and_statistics_only_where_they_help(full_run):
    output, _ = full_run
    files = [pq.ParquetFile(path).metadata for path in sorted((output / "parquet").glob("*.parquet"))]
    metadata = next(m for m in files if m.num_row_groups)
    chunks = {}
    for i in range(metadata.row_group(0).num_columns):
        chunk = metadata.row_group(0).column(i)
        chunks[chunk.path_in_schema.split(".")[0]] = chunk
    frame_columns = [F.RGB, F.AUDIO, F.full_view_column(F.RGB), F.full_view_column(F.AUDIO)]
    assert set(frame_columns) <= set(chunks)
    for name in frame_columns:  # 2 KB frames: no dictionary, no min/max
        assert "RLE_DICTIONARY" not in chunks[name].encodings and not chunks[name].is_stats_set, name
    for name in (F.LABELS, F.NUM_FRAMES, F.FRAME_INDEX):
        assert "RLE_DICTIONARY" in chunks[name].encodings and chunks[name].is_stats_set, name
    assert "RLE_DICTIONARY" not in chunks[F.ID].encodings and chunks[F.ID].is_stats_set


def test_tfrecord_output_holds_the_same_rows_as_parquet(full_run):
    output, _ = full_run
    layout = layout_from_arrow_schema(pq.read_schema(next((output / "parquet").glob("*.parquet"))))
    parquet_rows = {
        (r[F.ID], r[F.NUM_FRAMES]): r
        for r in layout.rows_from_table(pq.read_table(sorted((output / "parquet").glob("*.parquet"))))
    }
    dataset = tf.data.TFRecordDataset([str(p) for p in sorted((output / "tfrecord").glob("*.tfrecord"))])
    seen = 0
    for batch in dataset.batch(16):
        parsed = layout.parse_tf_examples(batch)
        for i in range(len(batch)):
            key = (parsed[F.ID][i].numpy().decode(), int(parsed[F.NUM_FRAMES][i]))
            expected = parquet_rows[key]
            for column in layout.frame_columns():
                assert np.array_equal(parsed[column.name][i].numpy(), expected[column.name])
            assert parsed[F.FRAME_INDEX][i].numpy().tolist() == expected[F.FRAME_INDEX].tolist()
            seen += 1
    assert seen == len(parquet_rows)


def test_drop_duplicate_ids_keeps_the_first_in_file_order(damaged_input, tmp_path):
    summary = _run(damaged_input["dir"], tmp_path / "ds", "--drop-duplicate-ids", "--frame-dtype", "uint8")
    assert summary["records_written"] == len(damaged_input["good"])
    assert summary["failures_by_stage"]["duplicate"] == 1 and summary["balanced"]
    (dropped,) = [f for f in _jsonl(tmp_path / "ds" / "errors", "failures") if f["stage"] == "duplicate"]
    assert pathlib.Path(dropped["source"]).name == damaged_input["duplicate_source"]
    table = pq.read_table(sorted((tmp_path / "ds" / "parquet").glob("*.parquet")))
    assert sorted(table.column(F.ID).to_pylist()) == sorted(damaged_input["good"])
    layout = layout_from_arrow_schema(table.schema)
    assert layout.frame_dtype == "uint8"
    rgb = layout.rows_from_table(table, [F.RGB])[0][F.RGB]
    assert rgb.dtype == np.uint8 and rgb.shape[1] == 1024  # one byte per value


def test_existing_dataset_is_refused_unless_overwrite(damaged_input, tmp_path):
    output = tmp_path / "ds"
    output.mkdir()
    (output / "manifest.json").write_text("{}")
    with pytest.raises(preprocess.UsageError, match="already holds files.*--overwrite"):
        _run(damaged_input["dir"], output)
    assert (
        preprocess.main(
            [
                "--input",
                f"{damaged_input['dir']}/train0000.tfrecord",
                "--output",
                str(output),
                "--num-classes",
                str(NUM_CLASSES),
            ]
        )
        == 2
    )
    stale = output / "parquet" / "part-00007-of-00009.parquet"
    stale.parent.mkdir()
    stale.write_bytes(b"an old shard")
    # A dataset written before ownership records: every file is one a dataset job writes by name
    # (a crashed run's sink temp directory included), so --overwrite replaces it.
    (output / "errors").mkdir()
    (output / "errors" / "failures-00002-of-00003.jsonl").write_text("{}")
    crashed = output / "tfrecord" / "beam-temp-part-0123456789abcdef0123456789abcdef"
    crashed.mkdir(parents=True)
    (crashed / "7e4c1b0a-shard").write_bytes(b"half a shard")
    summary = _run(damaged_input["dir"], output, "--overwrite", "--view", "uniform:3")
    assert summary["view"] == "uniform:3" and json.loads((output / "manifest.json").read_text())["balanced"]
    assert not stale.exists() and not (output / "tfrecord").exists()
    assert [p.name for p in (output / "parquet").iterdir()] == ["part-00000-of-00001.parquet"]
    owned = json.loads((output / ownership.OWNED_NAME).read_text())
    assert owned["kind"] == "dataset" and owned["shards"] == owned["trees"] == []
    assert owned["files"] == sorted(
        p.relative_to(output).as_posix()
        for p in output.rglob("*")
        if p.is_file() and p.name != ownership.OWNED_NAME
    )


def _fake_dataset(directory: pathlib.Path) -> dict:
    """A dataset's files as today's jobs name them; path -> contents."""
    files = {
        directory / "manifest.json": "{}",
        directory / "parquet" / "part-00000-of-00001.parquet": "rows",
        directory / "errors" / "failures-00000-of-00001.jsonl": "",
    }
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return files


def test_overwrite_keeps_a_sibling_dataset_named_by_a_glob(damaged_input, tmp_path):
    sibling = _fake_dataset(tmp_path / "out" / "run1")
    with pytest.raises(preprocess.UsageError, match=r"glob characters \(\*\?\[\)"):
        _run(damaged_input["dir"], tmp_path / "out" / "run?", "--overwrite")
    assert {path: path.read_text() for path in sibling} == sibling
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["run1"]


def test_overwrite_refuses_naming_the_files_no_dataset_job_wrote(damaged_input, tmp_path):
    output = tmp_path / "ds"
    _run(damaged_input["dir"], output)
    mine = {"errors/my_notes.txt": "notes", "parquet/.keep": "", "transform/mine/x": "analysis"}
    for name, text in mine.items():
        (output / name).parent.mkdir(parents=True, exist_ok=True)
        (output / name).write_text(text)
    before = {p: p.read_bytes() for p in output.rglob("*") if p.is_file()}
    with pytest.raises(preprocess.UsageError, match="not part of a fewframes dataset") as refused:
        _run(damaged_input["dir"], output, "--overwrite")
    assert all(name in str(refused.value) for name in mine)
    # Without the record (a dataset from before ownership records) the same files are refused.
    (output / ownership.OWNED_NAME).unlink()
    del before[output / ownership.OWNED_NAME]
    with pytest.raises(preprocess.UsageError, match="errors/my_notes.txt, parquet/.keep, transform/mine/x;"):
        _run(damaged_input["dir"], output, "--overwrite")
    assert {p: p.read_bytes() for p in output.rglob("*") if p.is_file()} == before


def test_a_link_inside_the_output_is_refused_and_its_target_untouched(damaged_input, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "part-00000-of-00001.parquet").write_text("precious")
    output = tmp_path / "out"
    output.mkdir()
    (output / "parquet").symlink_to(elsewhere, target_is_directory=True)
    for extra in ((), ("--overwrite",)):
        with pytest.raises(preprocess.UsageError, match=r"holds a link, parquet -> .*elsewhere"):
            _run(damaged_input["dir"], output, *extra)
    assert [p.name for p in elsewhere.iterdir()] == ["part-00000-of-00001.parquet"]
    assert (elsewhere / "part-00000-of-00001.parquet").read_text() == "precious"


def test_overwrite_never_deletes_files_that_are_not_a_dataset(damaged_input, tmp_path):
    output = tmp_path / "home"
    output.mkdir()
    (output / "thesis.tex").write_text("precious")
    with pytest.raises(preprocess.UsageError, match="not part of a fewframes dataset"):
        _run(damaged_input["dir"], output, "--overwrite")
    assert (output / "thesis.tex").read_text() == "precious"


def test_missing_input_fails_before_any_work(tmp_path, capsys):
    code = preprocess.main(["--input", str(tmp_path / "nothing*.tfrecord"), "--output", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fewframes preprocess: error: no input files match") and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_bad_flags_are_argparse_errors(tmp_path):
    for bad in (
        ["--format", "csv"],
        ["--view", "random:3"],
        ["--view", "every_n:0"],
        ["--frame-dtype", "int8"],
    ):
        with pytest.raises(SystemExit) as exit_info:
            preprocess.run(["--input", "x", "--output", str(tmp_path), *bad])
        assert exit_info.value.code == 2


def test_two_worker_processes_write_the_same_dataset_as_one(damaged_input, tmp_path):
    start = time.time()
    one = _run(damaged_input["dir"], tmp_path / "one", "--format", "tfrecord")
    two = _run(
        damaged_input["dir"],
        tmp_path / "two",
        "--format",
        "tfrecord",
        "--direct_num_workers",
        "2",
        "--direct_running_mode",
        "multi_processing",
    )

    def records(path):
        return sorted(r for p in sorted((path / "tfrecord").glob("*.tfrecord")) for r in _tf_records(p))

    assert records(tmp_path / "one") == records(tmp_path / "two")
    for key in (
        "records_read",
        "records_written",
        "records_failed",
        "failures_by_stage",
        "label_frequencies",
        "frames_per_video_histogram",
    ):
        assert one[key] == two[key], key
    # The reading span is merged over both workers' metrics and lies inside the runs.
    for summary in (one, two):
        assert summary["reading"]["shards"] == summary["counters"]["read/shards"] == 4
        assert 0 <= summary["reading"]["seconds"] < time.time() - start
        assert f"reading: 4 shards in {summary['reading']['seconds']:.1f}s" in preprocess.format_summary(
            summary, 1.0
        )


def test_parse_and_validate_transform_splits_rows_and_failures():
    rgb, audio = random_frames(np.random.default_rng(0), 4)
    records = [
        ("f", 0, 0, raw.frame_level_record(b"a", [1], rgb, audio)),
        ("f", 1, 9, b"\xff\xfe not a protobuf"),
    ]
    config = ParseConfig(F.FRAME_LEVEL, NUM_CLASSES, View.parse("every_n:2"), "float32")
    with BeamTestPipeline(runner=local_runner(beam.options.pipeline_options.PipelineOptions())) as p:
        result = p | beam.Create(records) | parse.ParseAndValidate(config)
        assert_that(
            result.rows | "Ids" >> beam.Map(lambda r: (r[F.ID], r[F.FRAME_INDEX].tolist())),
            equal_to([("a", [0, 2])]),
            label="rows",
        )
        assert_that(
            result.failed | "Where" >> beam.Map(lambda f: (f["record_index"], f["stage"])),
            equal_to([(1, "parse")]),
            label="failed",
        )


def test_detect_duplicate_ids_lists_positions_in_file_order():
    rows = [
        {F.ID: "x", "_source": "b", "_index": 0},
        {F.ID: "x", "_source": "a", "_index": 5},
        {F.ID: "y", "_source": "a", "_index": 1},
    ]
    with BeamTestPipeline(runner=local_runner(beam.options.pipeline_options.PipelineOptions())) as p:
        duplicates = p | beam.Create(rows) | preprocess.DetectDuplicateIds()
        assert_that(duplicates, equal_to([("x", [("a", 5), ("b", 0)])]))


def test_video_level_real_shards_match_plain_tensorflow_parsing(shared_data_dir, tmp_path):
    sample = shared_data_dir / "yt8m-v2-video-sample"
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("validate0000.tfrecord", "validate0001.tfrecord"):
        shutil.copy(sample / name, inputs / name)
    summary = preprocess.run(
        [
            "--input",
            f"{inputs}/validate*.tfrecord",
            "--output",
            str(tmp_path / "ds"),
            "--format",
            "parquet,tfrecord",
            "--partition",
            "validate",
        ]
    )
    expected = {}
    spec = {
        F.ID: tf.io.FixedLenFeature([], tf.string),
        F.LABELS: tf.io.VarLenFeature(tf.int64),
        F.MEAN_RGB: tf.io.FixedLenFeature([1024], tf.float32),
        F.MEAN_AUDIO: tf.io.FixedLenFeature([128], tf.float32),
    }
    for record in tf.data.TFRecordDataset(sorted(str(p) for p in inputs.iterdir())):
        parsed = tf.io.parse_single_example(record, spec)
        expected[parsed[F.ID].numpy().decode()] = parsed
    assert summary["kind"] == F.VIDEO_LEVEL
    assert summary["records_read"] == summary["records_written"] == len(expected) > 500
    assert summary["records_failed"] == 0
    layout = DatasetLayout(F.VIDEO_LEVEL, "float16")
    rows = layout.rows_from_table(pq.read_table(sorted((tmp_path / "ds" / "parquet").glob("*.parquet"))))
    assert len(rows) == len(expected)
    for row in rows:
        ref = expected[row[F.ID]]
        assert np.array_equal(row[F.MEAN_RGB], ref[F.MEAN_RGB].numpy())
        assert np.array_equal(row[F.MEAN_AUDIO], ref[F.MEAN_AUDIO].numpy())
        assert row[F.LABELS].tolist() == ref[F.LABELS].values.numpy().tolist()
    label_total = sum(len(r[F.LABELS]) for r in rows)
    assert sum(summary["label_frequencies"].values()) == label_total


def test_no_duplicate_check_says_so_and_still_balances(damaged_input, tmp_path):
    summary = _run(damaged_input["dir"], tmp_path / "ds", "--no-duplicate-check")
    assert summary["duplicate_ids"] == {"count": 0, "dropped": False, "checked": False}
    assert summary["balanced"] and summary["records_written"] == len(damaged_input["good"]) + 1
    assert "duplicate ids: not checked" in preprocess.format_summary(summary, 1.0)
    with pytest.raises(SystemExit):
        _run(damaged_input["dir"], tmp_path / "other", "--no-duplicate-check", "--drop-duplicate-ids")


def test_a_job_that_fails_more_than_the_max_failed_fraction_exits_3_and_keeps_the_dataset(tmp_path, capsys):
    rng = np.random.default_rng(6)
    (tmp_path / "raw").mkdir()
    labels = [[1], [NUM_CLASSES + 1], [2], [NUM_CLASSES + 2], [NUM_CLASSES + 3]]  # 3 of 5 out of range
    with open(tmp_path / "raw" / "train0000.tfrecord", "wb") as f:
        tfrecord_io.write_records(
            f,
            [
                raw.frame_level_record(f"v{i}".encode(), video_labels, *random_frames(rng, 6))
                for i, video_labels in enumerate(labels)
            ],
        )
    argv = ["--input", f"{tmp_path}/raw/train*.tfrecord", "--num-classes", str(NUM_CLASSES)]
    assert preprocess.main([*argv, "--output", str(tmp_path / "ds")]) == 3
    assert "3 of 5 records failed" in capsys.readouterr().err
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert manifest["balanced"] and manifest["records_written"] == 2 and manifest["records_failed"] == 3
    assert manifest["failed_fraction"] == 0.6 and manifest["max_failed_fraction"] == 0.1
    assert manifest["too_many_failed"]
    assert "more than --max-failed-fraction 0.1" in manifest["too_many_failed_reason"]
    assert pq.read_table(sorted((tmp_path / "ds" / "parquet").glob("*.parquet"))).num_rows == 2
    assert preprocess.main([*argv, "--output", str(tmp_path / "all"), "--max-failed-fraction", "1"]) == 0
    with pytest.raises(SystemExit) as usage:
        preprocess.main([*argv, "--output", str(tmp_path / "x"), "--max-failed-fraction", "1.5"])
    assert usage.value.code == 2 and "must lie in [0, 1]" in capsys.readouterr().err
