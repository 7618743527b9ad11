"""Robust facts about what training learns, on generated data (the full table is a benchmark).

One shared set of small trained models: a teacher on every frame, a student reading
4 frames per video without distillation, and the same student distilled (serial).
"""

import glob

import numpy as np
import pytest

from tests.conftest import make_dataset
from trainer import inputs, task
from trainer.export import LoadedExport
from trainer.metrics import MetricsAccumulator

CLASSES = 12
VIEW = "uniform:4"
COMMON = ["--epochs", "8", "--batch-size", "32", "--learning-rate", "3e-3", "--verbose", "0", "--seed", "1"]


def _train(argv):
    return task.train_from_argv(argv, verbose=0)


def _records(raw_dir):
    import tensorflow as tf

    return [r.numpy() for p in sorted(glob.glob(f"{raw_dir}/*.tfrecord")) for r in tf.data.TFRecordDataset(p)]


def _labels(records, num_classes):
    import tensorflow as tf

    out = np.zeros((len(records), num_classes), np.float32)
    for i, record in enumerate(records):
        example = tf.train.SequenceExample.FromString(record)
        out[i, list(example.context.feature["labels"].int64_list.value)] = 1.0
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("quality")
    frames = (30, 200)
    # The earlier iid frames, where a 4-frame view loses information by construction. On the
    # shot frames (synth's default since 2026-12-04) four frames of 30 to 200 hold nearly all
    # that this generator puts in a video: measured teacher 0.606 vs student 0.601 GAP with this
    # fixture, inside the 0.01 margin below (the shot-frame tables are in benchmarks/RESULTS.md).
    data = {"classes": CLASSES, "seed": 17, "frames": frames, "view": VIEW, "frame_model": "iid"}
    train = make_dataset(root / "train", videos=480, **data)
    validate = make_dataset(root / "validate", videos=160, partition="validate", **data)
    base = ["--train", str(train), "--view", VIEW, *COMMON]
    teacher_summary = _train([*base, "--job-dir", str(root / "teacher"), "--mode", "teacher", "--teacher",
                              "dbof-small", "--eval", str(validate)])  # fmt: skip
    _train([*base, "--job-dir", str(root / "student"), "--mode", "student", "--student", "dbof-small"])
    _train([*base, "--job-dir", str(root / "serial"), "--mode", "serial", "--student", "dbof-small",
            "--teacher-dir", str(root / "teacher")])  # fmt: skip
    records = _records(root / "validate" / "raw")
    predictions = {
        name: LoadedExport(str(root / name / "export")).score_examples(records)["predictions"]
        for name in ("teacher", "student", "serial")
    }
    _, manifest = inputs.load_layout(str(train))
    return predictions, _labels(records, CLASSES), manifest, teacher_summary


def _gap(predictions, labels):
    return MetricsAccumulator(CLASSES).add_batch(predictions, labels).result()["gap"]


def _kl(teacher, student, eps=1e-7):
    t, s = np.clip(teacher, eps, 1 - eps), np.clip(student, eps, 1 - eps)
    return float((t * np.log(t / s) + (1 - t) * np.log((1 - t) / (1 - s))).sum(axis=1).mean())


def test_the_teacher_beats_a_model_that_sees_no_frames(trained):
    predictions, labels, manifest, _ = trained
    frequency = np.zeros(CLASSES, np.float32)
    for label, count in manifest["label_frequencies"].items():
        frequency[int(label)] = count
    priors = np.tile(frequency / manifest["videos"], (len(labels), 1))  # the best frame-blind scores
    teacher, blind = _gap(predictions["teacher"], labels), _gap(priors, labels)
    assert teacher > blind + 0.1, (teacher, blind)


def test_the_teacher_beats_the_student_that_reads_four_frames(trained):
    predictions, labels, _, _ = trained
    teacher, student = _gap(predictions["teacher"], labels), _gap(predictions["student"], labels)
    assert teacher > student + 0.01, (teacher, student)


def test_distillation_lowers_teacher_student_disagreement(trained):
    predictions, _, _, _ = trained
    distilled = _kl(predictions["teacher"], predictions["serial"])
    alone = _kl(predictions["teacher"], predictions["student"])
    assert distilled < 0.9 * alone, (distilled, alone)


def test_eval_during_training_equals_scoring_the_raw_shards_with_the_export(trained):
    predictions, labels, _, summary = trained
    # Training evaluated the float16 dataset; the export read the raw bytes: same GAP.
    assert summary["metrics"]["val_teacher_gap"] == pytest.approx(
        _gap(predictions["teacher"], labels), abs=2e-3
    )
