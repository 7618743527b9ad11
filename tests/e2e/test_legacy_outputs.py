"""What users already have keeps working: files written by the code of ee8608b (before the
layout redesign and the format changes of issue 19), kept in tests/fixtures/legacy-ee8608b
(its README has the commands that made them), read and resumed by today's code."""

import json
import shutil

import numpy as np
import pytest

from pipelines import evaluate, preprocess
from schemas import features as F
from schemas import zscore as Z
from tests.conftest import REPO_ROOT
from trainer import inputs, task

LEGACY = REPO_ROOT / "tests" / "fixtures" / "legacy-ee8608b"


@pytest.fixture
def legacy(tmp_path, monkeypatch):
    """A copy (the job dir is written to), as the folder the commands ran in: the job's
    config names its dataset by a path relative to it."""
    copy = tmp_path / "legacy"
    shutil.copytree(LEGACY, copy)
    monkeypatch.chdir(copy)
    return copy


def test_a_job_dir_written_by_the_old_code_resumes_from_its_checkpoint(legacy):
    before = json.loads((legacy / "job" / "checkpoints" / "state.json").read_text())
    assert before == {"epoch": 1, "step": 0, "global_step": 3, "weights": "ckpt-000000003.weights.h5"}
    argv = "--train dataset --job-dir job --mode student --student dbof-small --view every_n:4 "
    argv += "--epochs 2 --batch-size 4 --verbose 0 --checkpoint-every 1"
    assert task.main(argv.split()) == 0
    summary = json.loads((legacy / "job" / "summary.json").read_text())
    # One more epoch of 3 steps after the old checkpoint: resumed, not restarted.
    assert summary["outcome"] == "completed" and summary["global_step"] == 6 and summary["epochs"] == 2
    assert [t["epoch"] for t in summary["epoch_times"]] == [2]
    state = json.loads((legacy / "job" / "checkpoints" / "state.json").read_text())
    assert state["global_step"] == 6 and state["weights"] == "ckpt-000000006.weights.h5"


def test_an_export_written_by_the_old_code_scores_the_old_raw_shards(legacy, tmp_path):
    summary = evaluate.run(
        ["--model", "job/export", "--input", "raw/validate*.tfrecord", "--output", str(tmp_path / "eval")]
        + ["--vocabulary", "raw/vocabulary.csv", "--no-report", "--direct_num_workers", "1"]
    )
    assert summary["balanced"] and summary["num_videos"] == 6 and summary["num_failed"] == 0
    assert 0.0 < summary["gap"] <= 1.0
    # The student's view (every_n:4 of 6 to 12 frames) is what the old export reads.
    assert 0.1 < summary["frames"]["fraction_read"] < 0.5


def test_an_old_dataset_gives_the_same_batches_in_both_formats_and_its_zscore_from_the_graph(legacy):
    parquet = list(inputs.parquet_batches("dataset", batch_size=4))
    tfrecord = list(inputs.tfrecord_dataset("dataset", batch_size=4))
    assert sum(len(b[F.ID]) for b in parquet) == sum(len(b[F.ID]) for b in tfrecord) == 12
    by_id = {vid: b[F.RGB][i] for b in parquet for i, vid in enumerate(b[F.ID])}
    for batch in tfrecord:
        for i, vid in enumerate(batch[F.ID].numpy()):
            length = int(batch[F.RGB + inputs.LENGTH_SUFFIX][i])
            assert np.array_equal(batch[F.RGB][i].numpy()[:length], by_id[vid.decode()][:length])
    _, manifest = inputs.load_layout("dataset")
    assert "parameters" not in (manifest.get("normalization") or {})  # written before zscore.npz
    mean, scale = inputs.zscore_parameters("dataset", manifest)
    assert mean.shape == scale.shape == (Z.DIM,) and mean.dtype == scale.dtype == np.float32
    assert np.all(np.isfinite(mean)) and np.all(scale > 0) and np.abs(mean).max() > 0


def test_transform_from_an_old_dataset_carries_its_zscore_into_a_new_dataset(legacy):
    summary = preprocess.run(
        ["--input", "raw/validate*.tfrecord", "--output", "new_validate", "--format", "parquet"]
        + ["--view", "every_n:4", "--teacher-view", "--num-classes", "6", "--transform-from", "dataset"]
        + ["--partition", "validate", "--num-shards", "1"]
    )
    assert summary["balanced"] and summary["records_written"] == 6
    _, old_manifest = inputs.load_layout("dataset")
    _, new_manifest = inputs.load_layout("new_validate")
    old = inputs.zscore_parameters("dataset", old_manifest)
    new = inputs.zscore_parameters("new_validate", new_manifest)
    assert np.array_equal(old[0], new[0]) and np.array_equal(old[1], new[1])
    # The old validation dataset (made with --transform-from by the old code) agrees too.
    _, validate_manifest = inputs.load_layout("dataset_validate")
    kept = inputs.zscore_parameters("dataset_validate", validate_manifest)
    assert np.array_equal(kept[0], old[0]) and np.array_equal(kept[1], old[1])
