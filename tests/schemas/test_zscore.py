"""The z-score parameters a dataset stores are data: the trainer reads arrays, never runs a graph."""

import json
import subprocess
import sys

import numpy as np
import pytest

from pipelines import preprocess
from pipelines.datasets import transform
from schemas import zscore as Z
from schemas.preprocessed import TRANSFORM_DIR
from tests.conftest import REPO_ROOT
from trainer import inputs

CONSTANT_DIMS = (5, 700)  # exactly 0 in every video, so their variance is 0


def _write_video_level_shard(path, videos: int, seed: int) -> None:
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i in range(videos):
            rgb = rng.normal(size=1024).astype(np.float32)
            rgb[list(CONSTANT_DIMS)] = 0.0
            feature = {
                "id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[f"v{seed}-{i}".encode()])),
                "labels": tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 4])),
                "mean_rgb": tf.train.Feature(float_list=tf.train.FloatList(value=rgb)),
                "mean_audio": tf.train.Feature(
                    float_list=tf.train.FloatList(value=rng.normal(size=128).astype(np.float32))
                ),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


def _preprocess(root, name: str, *flags) -> dict:
    argv = ["--input", f"{root}/raw/{name}-*.tfrecord", "--output", str(root / name), "--num-classes", "8"]
    return preprocess.run([*argv, *flags])


def _manifest(dataset) -> dict:
    return json.loads((dataset / "manifest.json").read_text())


def _make_legacy(dataset) -> dict:
    """The dataset as the code before `zscore.npz` wrote it: the same SavedModel, no arrays."""
    (dataset / TRANSFORM_DIR / Z.PARAMETERS_NAME).unlink()
    manifest = _manifest(dataset)
    for key in ("parameters", "parameters_sha256"):
        del manifest["normalization"][key]
    (dataset / "manifest.json").write_text(json.dumps(manifest))
    return manifest


@pytest.fixture(scope="module")
def constant_dim(tmp_path_factory):
    """A z-scored video-level dataset in which two dimensions are constant."""
    root = tmp_path_factory.mktemp("constant-dim")
    (root / "raw").mkdir()
    _write_video_level_shard(root / "raw" / "train-0.tfrecord", 12, seed=1)
    _write_video_level_shard(root / "raw" / "validate-0.tfrecord", 5, seed=2)
    _preprocess(root, "train", "--zscore")
    return root


def test_stored_parameters_reproduce_the_saved_models_output_with_a_constant_dimension(constant_dim):
    dataset = constant_dim / "train"
    manifest = _manifest(dataset)
    assert manifest["normalization"]["parameters"] == f"{TRANSFORM_DIR}/{Z.PARAMETERS_NAME}"
    data = (dataset / TRANSFORM_DIR / Z.PARAMETERS_NAME).read_bytes()
    assert manifest["normalization"]["parameters_sha256"] == Z.sha256(data)

    mean, scale = inputs.zscore_parameters(str(dataset), manifest)
    assert mean.dtype == scale.dtype == np.float32 and mean.shape == scale.shape == (1152,)
    # A zero-variance dimension is divided by 1 (scale_to_z_score returns x - mean there).
    assert scale[list(CONSTANT_DIMS)].tolist() == [1.0, 1.0]
    assert np.all(scale[np.setdiff1d(np.arange(1152), CONSTANT_DIMS)] < 1.0)
    frames = np.random.default_rng(3).normal(size=(40, 1152)).astype(np.float32)
    frames[:, CONSTANT_DIMS[0]] = 0.25  # away from the mean, so a division by 0 would show
    by_saved_model = np.asarray(transform.FrameNormalizer(str(dataset / TRANSFORM_DIR))(frames))
    np.testing.assert_allclose((frames - mean) / scale, by_saved_model, rtol=1e-6, atol=1e-6)
    assert np.all(np.isfinite(by_saved_model))


def test_a_dataset_without_the_arrays_gives_the_same_parameters_from_its_graph_unrun(constant_dim, tmp_path):
    import shutil

    dataset = tmp_path / "legacy"
    shutil.copytree(constant_dim / "train", dataset)
    expected = inputs.zscore_parameters(str(dataset), _manifest(dataset))
    legacy = _make_legacy(dataset)
    mean, scale = inputs.zscore_parameters(str(dataset), legacy)
    assert all(np.array_equal(a, b) for a, b in zip((mean, scale), expected, strict=True))
    frames = np.random.default_rng(4).normal(size=(20, 1152)).astype(np.float32)
    by_saved_model = np.asarray(transform.FrameNormalizer(str(dataset / TRANSFORM_DIR))(frames))
    np.testing.assert_allclose((frames - mean) / scale, by_saved_model, rtol=1e-6, atol=1e-6)


def test_a_saved_model_that_writes_a_file_is_refused_and_never_run(constant_dim, tmp_path):
    """The issue's crafted `transform_fn`: reading it as data neither runs it nor accepts it."""
    import shutil

    dataset = tmp_path / "crafted"
    shutil.copytree(constant_dim / "train", dataset)
    legacy = _make_legacy(dataset)
    victim = tmp_path / "written-by-the-dataset"
    _replace_with_crafted_transform_fn(dataset, victim)
    with pytest.raises(
        Z.ZScoreError, match="not the z-score analysis fewframes writes.*preprocess the dataset"
    ):
        inputs.zscore_parameters(str(dataset), legacy)
    assert not victim.exists()


def _replace_with_crafted_transform_fn(dataset, victim) -> None:
    """The issue's reproduction: a `transform_fn` that writes a file when it runs."""
    import shutil

    import tensorflow as tf

    class Crafted(tf.Module):
        @tf.function(input_signature=[{"frame": tf.TensorSpec([None, 1152], tf.float32)}])
        def transform_fn(self, inputs):
            with tf.control_dependencies([tf.io.write_file(str(victim), "pwned")]):
                return {"frame": tf.identity(inputs["frame"])}

    transform_fn = dataset / TRANSFORM_DIR / transform.TRANSFORM_FN_DIR
    shutil.rmtree(transform_fn)
    tf.saved_model.save(Crafted(), str(transform_fn))


def test_training_on_a_dataset_with_a_crafted_transform_fn_never_runs_it(constant_dim, tmp_path):
    import shutil

    from trainer import task

    dataset = tmp_path / "crafted"
    shutil.copytree(constant_dim / "train", dataset)
    victim = tmp_path / "written-by-the-dataset"
    _replace_with_crafted_transform_fn(dataset, victim)
    summary = task.train_from_argv(
        ["--train", str(dataset), "--job-dir", str(tmp_path / "job"), "--mode", "student",
         "--student", "video-logistic", "--epochs", "1", "--batch-size", "4", "--no-export"],
        verbose=0,
    )  # fmt: skip
    assert summary["outcome"] == "completed"
    assert not victim.exists()


def test_changed_parameters_are_refused_by_their_checksum(constant_dim, tmp_path):
    import shutil

    dataset = tmp_path / "changed"
    shutil.copytree(constant_dim / "train", dataset)
    mean, scale = inputs.zscore_parameters(str(dataset), _manifest(dataset))
    (dataset / TRANSFORM_DIR / Z.PARAMETERS_NAME).write_bytes(Z.encode(mean + 1, scale))
    with pytest.raises(Z.ZScoreError, match="does not match the sha256 its manifest records"):
        inputs.zscore_parameters(str(dataset), _manifest(dataset))


@pytest.mark.parametrize(
    "key,path",
    [
        ("parameters", "../other/transform/zscore.npz"),
        ("parameters", "/tmp/zscore.npz"),
        ("parameters", "transform/../../zscore.npz"),
        ("transform_dir", "/tmp/transform"),
        ("transform_dir", ".."),
    ],
)
def test_a_manifest_path_that_leaves_the_dataset_is_refused(constant_dim, key, path):
    manifest = _manifest(constant_dim / "train")
    if key == "transform_dir":
        manifest["normalization"].pop("parameters")
    manifest["normalization"][key] = path
    with pytest.raises(Z.ZScoreError, match=f"normalization.{key} '{path}' leaves the dataset"):
        inputs.zscore_parameters(str(constant_dim / "train"), manifest)


def test_transform_from_a_dataset_without_the_arrays_writes_them_from_its_graph(constant_dim, tmp_path):
    import shutil

    source = tmp_path / "train"
    shutil.copytree(constant_dim / "train", source)
    expected = inputs.zscore_parameters(str(source), _manifest(source))
    _make_legacy(source)
    summary = _preprocess(constant_dim, "validate", "--transform-from", str(source), "--overwrite")
    normalization = summary["normalization"]
    assert normalization["zscore"] == "reused" and normalization["parameters"] == "transform/zscore.npz"
    validate = constant_dim / "validate"
    data = (validate / TRANSFORM_DIR / Z.PARAMETERS_NAME).read_bytes()
    assert normalization["parameters_sha256"] == Z.sha256(data)
    got = inputs.zscore_parameters(str(validate), _manifest(validate))
    assert all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))


def test_transform_from_refuses_a_source_whose_arrays_do_not_match_its_manifest(constant_dim, tmp_path):
    import shutil

    source = tmp_path / "train"
    shutil.copytree(constant_dim / "train", source)
    mean, scale = inputs.zscore_parameters(str(source), _manifest(source))
    (source / TRANSFORM_DIR / Z.PARAMETERS_NAME).write_bytes(Z.encode(mean, scale * 2))
    with pytest.raises(preprocess.UsageError, match="does not match its manifest's sha256"):
        _preprocess(constant_dim, "validate", "--transform-from", str(source), "--overwrite")


def test_the_trainer_reads_the_parameters_without_importing_pipelines(constant_dim):
    code = (
        "import sys, json; from trainer.inputs import zscore_parameters; "
        f"d = {str(constant_dim / 'train')!r}; "
        "m = json.load(open(d + '/manifest.json')); mean, scale = zscore_parameters(d, m); "
        "print(sorted(n for n in sys.modules if n.split('.')[0] in ('pipelines', 'tensorflow_transform')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"
