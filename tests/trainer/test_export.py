"""The serving export: raw records in, the same scores as the preprocessed-data path."""

import glob
import json
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq

from schemas import features as F
from tests.conftest import REPO_ROOT, make_dataset, train_job
from trainer import inputs
from trainer.export import METADATA_NAME, LoadedExport, read_metadata


def _raw_records(raw_dir):
    import tensorflow as tf

    records = []
    for path in sorted(glob.glob(f"{raw_dir}/*.tfrecord")):
        records += [r.numpy() for r in tf.data.TFRecordDataset(path)]
    return records


def _dataset_rows(dataset):
    layout, _ = inputs.load_layout(str(dataset))
    rows = []
    for path in inputs.dataset_files(str(dataset), "parquet"):
        rows += layout.rows_from_table(pq.read_table(path))
    return rows


def test_export_carries_its_metadata(student_export, tiny_frame_dataset):
    metadata = read_metadata(str(student_export))
    loaded = LoadedExport(str(student_export))
    assert loaded.metadata == metadata
    assert metadata["view"] == "every_n:4" and metadata["features"] == ["rgb", "audio"]
    assert metadata["num_classes"] == 8 and metadata["label_space"] == "entities"
    assert metadata["kind"] == "frame" and metadata["schema_version"] == 1 and metadata["role"] == "student"
    assert metadata["training_data"]["dataset"] == str(tiny_frame_dataset)
    assert metadata["training_data"]["videos"] == 40
    assert "vocabulary_sha256" in metadata and metadata["model"]["aggregator"] == "dbof"


def test_raw_records_score_as_the_preprocessed_view(student_export, tiny_frame_dataset):
    loaded = LoadedExport(str(student_export))
    raw = loaded.score_examples(_raw_records(tiny_frame_dataset.parent / "raw"))
    by_id = {vid.decode(): i for i, vid in enumerate(raw["video_id"])}
    rows = _dataset_rows(tiny_frame_dataset)
    assert len(by_id) == len(rows) == 40

    frames = {f: inputs.pad_frames([r[f].astype(np.float32) for r in rows], F.FEATURE_DIMS[f], np.float32)[0]
              for f in F.FRAME_FEATURES}  # fmt: skip
    lengths = np.array([len(r[F.RGB]) for r in rows])
    view = loaded.score_view(frames, lengths)
    order = [by_id[r[F.ID]] for r in rows]
    # float16 storage rounds each value by <= 2^-11 relative; the scores move by far less.
    np.testing.assert_allclose(view["predictions"], raw["predictions"][order], atol=2e-3)
    assert view["predictions"].std() > 1e-3  # a model whose scores differ between videos
    agree = (view["class_indexes"][:, 0] == raw["class_indexes"][order, 0]).mean()
    assert agree >= 0.95

    # Whole videos through the dense signature: the graph cuts the same view.
    full = {f: inputs.pad_frames([r[F.full_view_column(f)].astype(np.float32) for r in rows],
                                 F.FEATURE_DIMS[f], np.float32)[0] for f in F.FRAME_FEATURES}  # fmt: skip
    whole = loaded.score_frames(full, np.array([r[F.NUM_FRAMES] for r in rows]))
    np.testing.assert_allclose(whole["predictions"], view["predictions"], atol=1e-6)


def test_a_fresh_process_loads_the_export_and_scores_the_same(student_export, tiny_frame_dataset, tmp_path):
    records = _raw_records(tiny_frame_dataset.parent / "raw")[:5]
    expected = LoadedExport(str(student_export)).score_examples(records)
    (tmp_path / "records.json").write_text(json.dumps([r.hex() for r in records]))
    script = (
        "import json, sys; from trainer.export import LoadedExport;"
        "records=[bytes.fromhex(h) for h in json.load(open(sys.argv[2]))];"
        "out=LoadedExport(sys.argv[1]).score_examples(records);"
        "print(json.dumps({'ids':[v.decode() for v in out['video_id']],'scores':out['scores'].tolist()}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(student_export), str(tmp_path / "records.json")],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
        env={"PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    got = json.loads(result.stdout.strip().splitlines()[-1])
    assert got["ids"] == [v.decode() for v in expected["video_id"]]
    np.testing.assert_allclose(got["scores"], expected["scores"], rtol=1e-6)


def test_video_level_export_scores_raw_examples_like_the_dataset(tmp_path):
    dataset = make_dataset(tmp_path / "video", kind="video", videos=30, classes=6)
    train_job(["--train", str(dataset), "--job-dir", str(tmp_path / "job"), "--mode", "student",
            "--student", "video-moe", "--epochs", "1", "--batch-size", "8", "--verbose", "0"])  # fmt: skip
    loaded = LoadedExport(str(tmp_path / "job" / "export"))
    assert loaded.metadata["kind"] == "video" and loaded.metadata["view"] == "all"
    raw = loaded.score_examples(_raw_records(tmp_path / "video" / "raw"))
    rows = _dataset_rows(dataset)
    vectors = {
        F.MEAN_FEATURE_OF[f]: np.stack([r[F.MEAN_FEATURE_OF[f]] for r in rows]) for f in F.FRAME_FEATURES
    }
    view = loaded.score_view(vectors, None)
    order = [[v.decode() for v in raw["video_id"]].index(r[F.ID]) for r in rows]
    np.testing.assert_allclose(view["predictions"], raw["predictions"][order], rtol=1e-5, atol=1e-6)
    assert (tmp_path / "job" / "export" / METADATA_NAME).exists()
