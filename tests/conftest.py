"""Shared fixtures: paths to the real sample data and small raw-record builders."""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data_dir() -> pathlib.Path:
    """`../shared/data` beside the checkout (real YT8M sample shards and vocabulary).

    Both real samples (video level and frame level) are required in CI: a reader change
    that breaks real data must fail there, not skip.
    """
    path = pathlib.Path(os.environ.get("FEWFRAMES_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
    for sample in ("yt8m-v2-video-sample", "yt8m-v2-frame-sample"):
        if not (path / sample).is_dir():
            if os.environ.get("CI"):
                pytest.fail(f"CI must have the shared sample data at {path / sample}")
            pytest.skip(f"shared sample data not found at {path / sample}")
    return path


def random_frames(rng: np.random.Generator, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    return (
        rng.integers(0, 256, (num_frames, 1024), dtype=np.uint8),
        rng.integers(0, 256, (num_frames, 128), dtype=np.uint8),
    )


def bytes_feature(*values: bytes):
    """A `tf.train.Feature` holding these byte strings."""
    import tensorflow as tf

    return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


def frame_list(frames: np.ndarray):
    """A `tf.train.FeatureList` of one byte string per frame, as the release writes frames."""
    import tensorflow as tf

    return tf.train.FeatureList(feature=[bytes_feature(frame.tobytes()) for frame in frames])


def sequence_example(context=None, lists=None) -> bytes:
    """A serialized `tf.train.SequenceExample` of context features and feature lists."""
    import tensorflow as tf

    return tf.train.SequenceExample(
        context=tf.train.Features(feature=context or {}),
        feature_lists=tf.train.FeatureLists(feature_list=lists or {}),
    ).SerializeToString()


def make_dataset(
    root: pathlib.Path,
    *,
    videos=40,
    classes=8,
    seed=5,
    frames=(5, 60),
    view="every_n:4",
    teacher_view=True,
    kind="frame",
    partition="train",
    extra=(),
    frame_model="shots",
) -> pathlib.Path:
    """Synthetic shards -> a preprocessed dataset (Parquet + TFRecord) under `root`."""
    from pipelines import preprocess
    from pipelines.synth import SynthConfig, generate

    generate(
        str(root / "raw"),
        SynthConfig(
            kind=kind,
            videos=videos,
            shards=2,
            classes=classes,
            min_frames=frames[0],
            max_frames=frames[1],
            seed=seed,
            partition=partition,
            frame_model=frame_model,
        ),
        progress=False,
    )
    argv = [
        "--input",
        f"{root}/raw/{partition}*.tfrecord",
        "--output",
        str(root / "ds"),
        "--num-classes",
        str(classes),
        "--format",
        "parquet,tfrecord",
        "--num-shards",
        "2",
        *extra,
    ]
    if kind == "frame":
        argv += ["--view", view] + (["--teacher-view"] if teacher_view else [])
    preprocess.run(argv)
    return root / "ds"


@pytest.fixture(scope="session")
def tiny_frame_dataset(tmp_path_factory) -> pathlib.Path:
    """40 short videos, 8 classes, student view every_n:4 plus the full view."""
    return make_dataset(tmp_path_factory.mktemp("tiny-frame"))


def train_job(argv) -> dict:
    """Train through `trainer.task` in this process (the command line's code path)."""
    from trainer import task

    return task.train_from_argv(argv, verbose=0)


def assert_refused_before_any_work(argv, job_dir: pathlib.Path, message: str, capsys) -> None:
    """`trainer.task` run on `argv` exits 2 with `message` in its one line of stderr, and leaves
    no export and no checkpoints in `job_dir`."""
    from trainer import task

    code = task.main(argv)
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (job_dir / "export").exists() and not (job_dir / "checkpoints").exists()


def assert_a_model_that_is_no_export_is_refused(job, prog: str, tmp_path: pathlib.Path, capsys) -> None:
    """The scoring command `job` (pipelines.evaluate or .predict) answers a --model that is no
    export with code 2 and one line that starts with `prog`, and makes no output directory."""
    code = job.main(["--model", str(tmp_path), "--input", "x", "--output", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert err.startswith(f"{prog}: error: --model {tmp_path} is neither a fewframes export")
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="session")
def student_export(tmp_path_factory, tiny_frame_dataset) -> pathlib.Path:
    """A dbof-small student (every_n:4) trained briefly on the tiny dataset; its export."""
    job = tmp_path_factory.mktemp("export-job")
    train_job(["--train", str(tiny_frame_dataset), "--job-dir", str(job), "--mode", "student",
               "--student", "dbof-small", "--view", "every_n:4", "--epochs", "2", "--batch-size", "8",
               "--verbose", "0"])  # fmt: skip
    return job / "export"


@pytest.fixture(scope="session")
def teacher_job(tmp_path_factory, tiny_frame_dataset) -> pathlib.Path:
    """An H-LSTM teacher (the paper's family, small) trained briefly on the tiny dataset."""
    job = tmp_path_factory.mktemp("teacher-job")
    train_job(["--train", str(tiny_frame_dataset), "--job-dir", str(job), "--mode", "teacher",
               "--teacher", "hlstm-small", "--epochs", "2", "--batch-size", "8"])  # fmt: skip
    return job
