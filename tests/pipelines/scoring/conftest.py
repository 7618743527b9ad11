"""Fixtures the cascade tests share (scope "package": the cascade is fitted and run once for
test_routing.py and test_cascade_export.py)."""

import dataclasses
import glob

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipelines import cascade
from pipelines.records import tfrecord_io
from pipelines.scoring import cascade as C
from pipelines.scoring import job as scoring_job
from pipelines.scoring import outputs as out
from schemas import raw
from tests.conftest import random_frames
from trainer.export import LoadedExport


def read_records(pattern: str) -> list[bytes]:
    records = []
    for path in sorted(glob.glob(pattern)):
        with open(path, "rb") as f:
            records += [r.data for r in tfrecord_io.iter_frames(f)]
    return records


def tiny_raw_in_two_shards(root, tiny_frame_dataset) -> list[bytes]:
    """The tiny dataset's 40 raw records rewritten as root/train0000 and train0001."""
    good = read_records(f"{tiny_frame_dataset.parent}/raw/train*.tfrecord")
    for i, chunk in enumerate((good[:20], good[20:])):
        with open(root / f"train000{i}.tfrecord", "wb") as f:
            tfrecord_io.write_records(f, chunk)
    return good


def write_three_bad_records(path) -> None:
    """A shard of three records that fail in three ways: a label outside the 8 classes, 12 rgb
    frames but 7 audio frames, bytes that are no protobuf."""
    rgb, audio = random_frames(np.random.default_rng(0), 12)
    bad = [
        raw.frame_level_record(b"badlabel", [3, 99], rgb, audio),
        raw.frame_level_record(b"shortaud", [1], rgb, audio[:7]),
        b"\x0a\x03not a protobuf at all",
    ]
    with open(path, "wb") as f:
        tfrecord_io.write_records(f, bad)


@pytest.fixture(scope="package")
def shards(tmp_path_factory, tiny_frame_dataset):
    """The tiny dataset's 40 raw records in two shards, plus a shard of three bad records."""
    root = tmp_path_factory.mktemp("cascade-raw")
    good = tiny_raw_in_two_shards(root, tiny_frame_dataset)
    write_three_bad_records(root / "bad0000.tfrecord")
    return root, good


@pytest.fixture(scope="package")
def direct_scores(shards, student_export, teacher_job):
    """Each stage's export scored directly on the good records (serving_default, no Beam)."""
    _, good = shards
    results = []
    for export in (student_export, teacher_job / "export"):
        scores = LoadedExport(str(export)).score_examples(good)
        ids = [v.decode() for v in scores["video_id"]]
        results.append(dict(zip(ids, np.asarray(scores["predictions"]), strict=True)))
    return results


@pytest.fixture(scope="package")
def cascade_dir(tmp_path_factory, shards, student_export, teacher_job, direct_scores):
    """A cascade fitted on the good shards, its threshold then set between two middle top-1
    scores of stage 0, so that about half the videos exit there and half go on."""
    root, _ = shards
    directory = tmp_path_factory.mktemp("cascade") / "c"
    cascade.fit(["--stage", str(student_export), "--stage", str(teacher_job), "--input",
                 f"{root}/train*.tfrecord", "--target", "0.9", "--output", str(directory),
                 "--direct_num_workers", "1"])  # fmt: skip
    top1 = np.sort([p.max() for p in direct_scores[0].values()])
    threshold = float((top1[19] + top1[20]) / 2)
    spec = C.read_cascade(str(directory))
    C.write_cascade(str(directory), dataclasses.replace(spec, thresholds=(threshold,)))
    return directory, threshold


@pytest.fixture(scope="package")
def cascade_run(cascade_dir, shards, tmp_path_factory):
    directory, _ = cascade_dir
    root, _ = shards
    output = tmp_path_factory.mktemp("cascade-eval")
    summary = scoring_job.run(["--model", str(directory), "--input", f"{root}/*.tfrecord", "--output",
                               str(output), "--direct_num_workers", "1"])  # fmt: skip
    videos = {row["id"]: row for row in pq.read_table(output / out.VIDEOS_FILE).to_pylist()}
    return output, summary, videos


def num_frames(record: bytes) -> int:
    import tensorflow as tf

    return len(tf.train.SequenceExample.FromString(record).feature_lists.feature_list["rgb"].feature)
