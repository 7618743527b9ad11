"""The z-score step: TFT's analysis equals numpy statistics; reuse copies it exactly."""

import json
import tempfile

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipelines import preprocess
from pipelines.datasets import transform
from pipelines.synth import SynthConfig, generate
from schemas import features as F
from schemas import normalization
from schemas.preprocessed import TRANSFORM_DIR, layout_from_arrow_schema


def test_frames_record_batch_holds_one_l2_normalised_frame_per_row():
    rng = np.random.default_rng(0)
    rows = [
        {
            F.RGB: rng.normal(size=(n, 1024)).astype(np.float16),
            F.AUDIO: rng.normal(size=(n, 128)).astype(np.float16),
        }
        for n in (2, 3)
    ]
    batch = transform.frames_record_batch(rows, teacher_view=False)
    frames = batch.column(transform.FRAME).flatten().to_numpy().reshape(-1, transform.FRAME_DIM)
    assert frames.shape == (5, 1152)
    assert np.allclose(np.linalg.norm(frames, axis=1), 1.0, atol=1e-6)
    expected = rows[1][F.RGB][2].astype(np.float32)
    assert np.allclose(frames[4, :1024] / frames[4, :1024].std(), expected / expected.std(), atol=1e-5)


def _preprocess(root, partition: str, output, *flags) -> dict:
    """Run the job on the generated `partition` shards under `root/raw`."""
    argv = ["--input", f"{root}/raw/{partition}*.tfrecord", "--output", str(output), "--num-classes", "8"]
    return preprocess.run([*argv, *flags])


@pytest.fixture(scope="module")
def zscored(tmp_path_factory):
    root = tmp_path_factory.mktemp("zscore")
    for partition, seed in (("train", 21), ("validate", 22)):
        config = SynthConfig(
            videos=16, shards=1, classes=8, min_frames=4, max_frames=40, seed=seed, partition=partition
        )
        generate(str(root / "raw"), config, progress=False)
    with pytest.MonkeyPatch.context() as patch:  # the job's scratch folder goes under root/tmp
        (root / "tmp").mkdir()
        patch.setattr(tempfile, "tempdir", str(root / "tmp"))
        train = _preprocess(
            root, "train", root / "train", "--view", "every_n:3", "--frame-dtype", "float32", "--zscore"
        )
    return root, train


def test_the_tft_scratch_folder_is_removed_when_the_job_ends(zscored):
    root, summary = zscored
    assert summary["normalization"]["zscore"] == "analyzed"
    assert not list((root / "tmp").glob(preprocess.TFT_TEMP_PREFIX + "*"))


def test_the_tft_scratch_folder_is_removed_when_the_job_fails(zscored, tmp_path, monkeypatch):
    root, _ = zscored
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(ValueError, match="NoSuchRunner"):  # fails after the folder is made
        _preprocess(root, "train", tmp_path / "out", "--zscore", "--runner", "NoSuchRunner")
    assert not list(tmp_path.glob(preprocess.TFT_TEMP_PREFIX + "*"))


def test_analysis_equals_numpy_statistics_of_the_stored_frames(zscored):
    root, summary = zscored
    assert summary["normalization"]["zscore"] == "analyzed"
    table = pq.read_table(sorted((root / "train" / "parquet").glob("*.parquet")))
    rows = layout_from_arrow_schema(table.schema).rows_from_table(table)
    frames = normalization.l2_normalize(np.concatenate([transform.model_frames(r, False) for r in rows]))
    mean, std = frames.mean(axis=0), frames.std(axis=0)  # biased, as TFT
    normalizer = transform.FrameNormalizer(str(root / "train" / TRANSFORM_DIR))
    got_mean, got_std = normalizer.zscore_parameters()
    assert np.allclose(got_mean, mean, atol=1e-5) and np.allclose(got_std, std, rtol=1e-3)
    z = np.asarray(normalizer(frames[None]))[0]
    assert np.allclose(z, (frames - mean) / std, atol=2e-3)
    assert np.allclose(z.mean(axis=0), 0, atol=1e-3) and np.allclose(z.std(axis=0), 1, atol=1e-2)


def test_validate_run_reuses_the_training_analysis(zscored):
    root, _ = zscored
    summary = _preprocess(root, "validate", root / "validate", "--transform-from", str(root / "train"))
    assert summary["normalization"] == {
        "chain": "dequantize -> concat rgb||audio -> l2 per frame -> z-score",
        "zscore": "reused",
        "transform_dir": "transform",
        "transform_from": str(root / "train"),
        "parameters": "transform/zscore.npz",
        "parameters_sha256": json.loads((root / "train" / "manifest.json").read_text())["normalization"][
            "parameters_sha256"
        ],
    }
    train_fn = transform.FrameNormalizer(str(root / "train" / "transform")).zscore_parameters()
    validate_fn = transform.FrameNormalizer(str(root / "validate" / "transform")).zscore_parameters()
    assert all(np.array_equal(a, b) for a, b in zip(train_fn, validate_fn, strict=True))
    assert (
        json.loads((root / "validate" / "manifest.json").read_text())["normalization"]["zscore"] == "reused"
    )


def test_transform_from_a_dataset_without_analysis_is_refused(zscored, tmp_path):
    root, _ = zscored
    with pytest.raises(preprocess.UsageError, match="no analysis found"):
        _preprocess(root, "validate", tmp_path / "v", "--transform-from", str(tmp_path))


def test_transform_from_the_output_itself_is_refused_before_deleting_it(zscored):
    root, _ = zscored
    with pytest.raises(preprocess.UsageError, match="cannot name the output"):
        _preprocess(root, "train", root / "train", "--overwrite", "--transform-from", str(root / "train"))
    assert (root / "train" / "transform" / "transform_fn" / "saved_model.pb").exists()
