"""gs:// input and output through a real local GCS server (gcp-storage-emulator).

Everything the preprocessing job reads or writes goes through Beam's FileSystems
(matching, reading shards, the Parquet/TFRecord/text sinks, the manifest), which the
emulator serves. `tf.io.gfile` is never used by the job (it cannot reach an emulator).
"""

import json
import socket

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.auth.credentials import AnonymousCredentials

from pipelines import preprocess
from pipelines.datasets import ownership
from pipelines.scoring import job as scoring_job
from pipelines.synth import SynthConfig, generate
from schemas import features as F
from schemas.preprocessed import layout_from_arrow_schema

BUCKET = "fewframes-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def gcs_server():
    from gcp_storage_emulator.server import create_server

    port = _free_port()
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket=BUCKET)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def gcs(gcs_server, monkeypatch):
    """A storage client on the emulator; Beam's GCS IO pointed at it too."""
    from apache_beam.internal.gcp import auth
    from google.cloud import storage

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server)
    # Beam looks up Application Default Credentials (with retries, ~30 s) before
    # falling back to an anonymous client; the emulator needs none, so preset the
    # cached outcome of that lookup: no credentials.
    monkeypatch.setattr(auth._Credentials, "_credentials_init", True)
    monkeypatch.setattr(auth._Credentials, "_credentials", None)
    return storage.Client(project="test", credentials=AnonymousCredentials())


def test_preprocess_reads_and_writes_gs_paths(gcs, tmp_path):
    summary_local = generate(
        str(tmp_path / "raw"),
        SynthConfig(videos=12, shards=2, classes=10, min_frames=5, max_frames=40, seed=5),
        progress=False,
    )
    bucket = gcs.bucket(BUCKET)
    for path in summary_local.paths:
        bucket.blob(f"raw/{path.rsplit('/', 1)[1]}").upload_from_filename(path)
    bucket.blob("raw/notes.txt").upload_from_string("not a shard; the glob must not match it")

    summary = preprocess.run(
        [
            "--input",
            f"gs://{BUCKET}/raw/train*.tfrecord",
            "--output",
            f"gs://{BUCKET}/ds",
            "--format",
            "parquet,tfrecord",
            "--num-classes",
            "10",
            "--view",
            "uniform:4",
        ]
    )
    assert summary["records_read"] == summary["records_written"] == 12 and summary["balanced"]

    names = sorted(blob.name for blob in gcs.list_blobs(BUCKET, prefix="ds/"))
    assert "ds/manifest.json" in names
    assert any(n.startswith("ds/parquet/part-") and n.endswith(".parquet") for n in names)
    assert any(n.startswith("ds/tfrecord/part-") and n.endswith(".tfrecord") for n in names)
    assert not any("temp" in n.lower() for n in names), names  # the sinks' temp files were removed
    manifest = json.loads(bucket.blob("ds/manifest.json").download_as_bytes())
    assert (
        manifest["input_patterns"] == [f"gs://{BUCKET}/raw/train*.tfrecord"] and manifest["input_files"] == 2
    )
    assert manifest["bytes_in"] == sum(
        (tmp_path / "raw" / p.rsplit("/", 1)[1]).stat().st_size for p in summary_local.paths
    )

    parquet = [n for n in names if n.endswith(".parquet")]
    tables = [pq.read_table(pa.BufferReader(bucket.blob(n).download_as_bytes())) for n in parquet]
    table = pa.concat_tables(tables)
    layout = layout_from_arrow_schema(tables[0].schema)
    rows = layout.rows_from_table(table)
    assert len(rows) == 12 and all(len(r[F.FRAME_INDEX]) == min(4, r[F.NUM_FRAMES]) for r in rows)
    assert all(np.isfinite(r[F.RGB].astype(np.float32)).all() for r in rows)

    # A second run into the same prefix is refused, then replaced with --overwrite.
    with pytest.raises(preprocess.UsageError, match="already holds files"):
        preprocess.run(
            [
                "--input",
                f"gs://{BUCKET}/raw/train*.tfrecord",
                "--output",
                f"gs://{BUCKET}/ds",
                "--num-classes",
                "10",
            ]
        )
    again = preprocess.run(
        [
            "--input",
            f"gs://{BUCKET}/raw/train0000.tfrecord",
            "--output",
            f"gs://{BUCKET}/ds",
            "--num-classes",
            "10",
            "--overwrite",
        ]
    )
    assert again["input_files"] == 1
    names = sorted(b.name for b in gcs.list_blobs(BUCKET, prefix="ds/"))
    assert not any(name.startswith("ds/tfrecord/") for name in names)
    owned = json.loads(bucket.blob("ds/.fewframes-owned").download_as_bytes())
    assert owned["files"] == [name[len("ds/") :] for name in names if name != "ds/.fewframes-owned"]


def test_overwrite_on_gs_deletes_a_crashed_runs_files_and_refuses_anyone_elses(gcs):

    bucket = gcs.bucket(BUCKET)
    output = f"gs://{BUCKET}/owned"
    claims = ownership.Claims("dataset", files=("manifest.json",), shards=(("parquet/part", ".parquet"),),
                              trees=("parquet/beam-temp-part-",))  # fmt: skip
    ownership.claim(output, False, claims, "are not ours", "choose another --output")
    # What a run that crashed mid-write leaves: a shard, its sink's temp files, no manifest.
    crashed = ["owned/parquet/part-00000-of-00002.parquet", "owned/parquet/beam-temp-part-0a1b/3c4d.parquet"]
    for name in crashed:
        bucket.blob(name).upload_from_string("rows")
    bucket.blob("owned2/manifest.json").upload_from_string("a sibling whose name extends ours")
    bucket.blob("owned/parquet/my_notes.txt").upload_from_string("mine")
    with pytest.raises(ValueError, match="are not ours: parquet/my_notes.txt; choose another"):
        ownership.claim(output, True, claims, "are not ours", "choose another --output")
    assert all(bucket.blob(name).exists() for name in crashed)
    bucket.blob("owned/parquet/my_notes.txt").delete()
    ownership.claim(output, True, claims, "are not ours", "choose another --output")
    assert [b.name for b in gcs.list_blobs(BUCKET, prefix="owned")] == [
        "owned/.fewframes-owned",
        "owned2/manifest.json",
    ]
    with pytest.raises(ValueError, match="glob characters"):
        ownership.claim(f"gs://{BUCKET}/owned?", True, claims, "are not ours", "choose another --output")
    assert bucket.blob("owned2/manifest.json").download_as_text() == "a sibling whose name extends ours"


def test_missing_gs_input_is_a_clear_error(gcs):
    with pytest.raises(preprocess.UsageError, match="no input files match"):
        preprocess.run(["--input", f"gs://{BUCKET}/nothing/*.tfrecord", "--output", f"gs://{BUCKET}/x"])


def test_evaluate_reads_raw_shards_and_writes_its_outputs_on_gs(gcs, student_export, tiny_frame_dataset):
    """The model is local (TF's SavedModel loader cannot reach an emulator); shards and
    every output are gs:// through Beam's FileSystems."""

    bucket = gcs.bucket(BUCKET)
    for path in sorted((tiny_frame_dataset.parent / "raw").glob("train*.tfrecord")):
        bucket.blob(f"eval-raw/{path.name}").upload_from_filename(str(path))
    summary = scoring_job.run(["--model", str(student_export), "--input", f"gs://{BUCKET}/eval-raw/train*.tfrecord",
                            "--output", f"gs://{BUCKET}/eval-out", "--jsonl"])  # fmt: skip
    assert summary["num_videos"] == 40 and summary["balanced"]
    names = {blob.name for blob in bucket.list_blobs(prefix="eval-out/")}
    for name in ("metrics.json", "per_class.csv", "videos.parquet", "predictions.csv", "predictions.jsonl",
                 "report.html"):  # fmt: skip
        assert f"eval-out/{name}" in names, name
    written = json.loads(bucket.blob("eval-out/metrics.json").download_as_bytes())
    assert written["gap"] == summary["gap"] and written["timing"]["wall_seconds"] > 0
    lines = bucket.blob("eval-out/predictions.csv").download_as_text().splitlines()
    assert lines[0] == "VideoId,LabelConfidencePairs" and len(lines) == 41


def test_teacher_targets_reads_and_writes_a_dataset_on_gs(gcs, teacher_job, tiny_frame_dataset):
    """The teacher is local (TF's SavedModel loader cannot reach an emulator); the input
    dataset and every output are gs:// through Beam's FileSystems."""
    from pipelines import teacher_targets

    bucket = gcs.bucket(BUCKET)
    for path in sorted(tiny_frame_dataset.rglob("*")):
        relative = path.relative_to(tiny_frame_dataset).as_posix()
        if path.is_file() and relative.split("/")[0] in ("manifest.json", "parquet", "tfrecord"):
            bucket.blob(f"full-ds/{relative}").upload_from_filename(str(path))
    summary = teacher_targets.run(["--teacher", str(teacher_job), "--input", f"gs://{BUCKET}/full-ds",
                                   "--output", f"gs://{BUCKET}/targets", "--format", "parquet"])  # fmt: skip
    assert summary["balanced"] and summary["records_written"] == 40 and summary["records_failed"] == 0
    written = json.loads(bucket.blob("targets/manifest.json").download_as_bytes())
    assert written["teacher"]["weights_sha256"] == summary["teacher"]["weights_sha256"]
    tables = [
        pq.read_table(pa.BufferReader(blob.download_as_bytes()))
        for blob in bucket.list_blobs(prefix="targets/parquet/")
    ]
    assert sum(t.num_rows for t in tables) == 40
    assert all(F.TEACHER_PREDICTIONS in t.column_names for t in tables)
