"""`fewframes teacher-targets` and `train --mode serial --targets`: offline distillation."""

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines import teacher_targets
from schemas import features as F
from schemas.preprocessed import DatasetLayout
from schemas.views import View
from tests.conftest import make_dataset, train_job

VIEW = "every_n:4"


@pytest.fixture(scope="module")
def targets(tmp_path_factory, teacher_job, tiny_frame_dataset):
    out = tmp_path_factory.mktemp("targets") / "all"
    teacher_targets.run(["--teacher", str(teacher_job), "--input", str(tiny_frame_dataset),
                         "--output", str(out), "--batch-size", "16"])  # fmt: skip
    return out


def _manifest(dataset) -> dict:
    return json.loads((dataset / "manifest.json").read_text())


def _plan(dataset, mode, targets=False, view=VIEW, features=F.FRAME_FEATURES):
    from trainer import inputs as I
    from trainer.labels import LabelSpace

    label_space = LabelSpace.build("entities", _manifest(dataset)["num_classes"], None)
    return I.plan_inputs(str(dataset), mode, View.parse(view), features, label_space, targets=targets)


def _all_by_id(plan, fmt):
    """Every video of a dataset as one batch, rows in id order."""
    from trainer import inputs as I

    (x, y), *rest = list(I.batches(plan, fmt, 1000, with_ids=True))
    assert not rest
    x = {k: np.asarray(v) for k, v in x.items()}
    ids = [i.decode() if isinstance(i, bytes) else str(i) for i in x.pop(F.ID)]
    order = np.argsort(ids)
    return [ids[i] for i in order], {k: v[order] for k, v in x.items()}, np.asarray(y)[order]


def test_targets_dataset_holds_the_student_view_and_the_teachers_outputs(
    targets, tiny_frame_dataset, teacher_job
):
    manifest = _manifest(targets)
    source = _manifest(tiny_frame_dataset)
    assert manifest["balanced"] and manifest["records_written"] == source["records_written"] == 40
    assert manifest["records_failed"] == 0 and set(manifest["formats"]) == {"parquet", "tfrecord"}
    layout = DatasetLayout.from_dict(manifest["schema"])
    assert layout.view == VIEW and not layout.teacher_view and layout.teacher_targets == "all"
    assert not any(name.startswith(F.FULL_VIEW_PREFIX) for name in layout.column_names)
    teacher = manifest["teacher"]
    saved = json.loads((teacher_job / "weights" / "teacher.json").read_text())
    assert teacher["weights_sha256"] == saved["weights_sha256"]
    assert teacher["role"] == "teacher" and teacher["preset"] == "hlstm-small"
    assert teacher["config"]["teacher"]["preset"] == "hlstm-small"  # the teacher job's config.json
    assert layout.representation_dim == teacher["representation_dim"] == 64
    # The full view is what the targets replace: the dataset read per epoch is far smaller.
    assert manifest["outputs"]["parquet"]["bytes"] * 3 < source["outputs"]["parquet"]["bytes"]

    # Student-view frames equal the ones the preprocessing stored for the same view.
    ids, offline, _ = _all_by_id(_plan(targets, "serial", targets=True), "parquet")
    stored_ids, stored, _ = _all_by_id(_plan(tiny_frame_dataset, "student"), "parquet")
    assert ids == stored_ids
    assert np.array_equal(offline["student_frames"], stored["student_frames"])
    assert np.array_equal(offline["student_mask"], stored["student_mask"])


def test_targets_equal_the_teacher_run_on_the_full_view(targets, tiny_frame_dataset, teacher_job):
    from trainer.config import TrainConfig
    from trainer.training.loop import load_trained

    ids, offline, _ = _all_by_id(_plan(targets, "serial", targets=True), "parquet")
    online_ids, online, _ = _all_by_id(_plan(tiny_frame_dataset, "teacher"), "parquet")
    assert ids == online_ids
    config = TrainConfig.from_json((teacher_job / "config.json").read_text())
    teacher = load_trained(str(teacher_job), config, "teacher", None, F.MAX_FRAMES)
    out = teacher({"frames": online["teacher_frames"], "mask": online["teacher_mask"]})
    np.testing.assert_allclose(offline["teacher_predictions"], np.asarray(out["predictions"]), atol=2e-6)
    np.testing.assert_allclose(
        offline["teacher_representation"], np.asarray(out["representation"]), atol=2e-6
    )


def test_targets_round_trip_through_both_formats(targets):
    plan = _plan(targets, "serial", targets=True)
    ids, from_parquet, y_parquet = _all_by_id(plan, "parquet")
    tf_ids, from_tfrecord, y_tfrecord = _all_by_id(plan, "tfrecord")
    assert ids == tf_ids and set(from_parquet) == set(from_tfrecord)
    for key, value in from_parquet.items():
        assert np.array_equal(value, from_tfrecord[key]), key
    assert np.array_equal(y_parquet, y_tfrecord)


def test_offline_serial_gives_the_online_serial_loss(targets, tiny_frame_dataset, teacher_job):
    """Same teacher, same view, same student weights, no dropout: the same loss terms."""
    import keras

    from trainer.config import LossConfig, ModelChoice, TrainConfig
    from trainer.distill import DistillationModel, FramesClassifier
    from trainer.training.loop import load_trained

    config = TrainConfig.from_json((teacher_job / "config.json").read_text())
    teacher = load_trained(str(teacher_job), config, "teacher", None, F.MAX_FRAMES)
    keras.utils.set_random_seed(3)
    student = FramesClassifier(ModelChoice("dbof-small").spec(), 8, 1152).build_on(
        View.parse(VIEW).max_selected
    )
    loss = LossConfig(1.0, 2.0, 0.5)
    projection = (
        teacher.representation_dim if teacher.representation_dim != student.representation_dim else None
    )
    online = DistillationModel("serial", teacher, student, loss, projection)
    online.build_on(View.parse(VIEW).max_selected)
    offline = DistillationModel("serial", None, student, loss, projection, targets_dims=(8, 64))
    offline.build_on(View.parse(VIEW).max_selected)
    if projection is not None:
        offline.projection.set_weights(online.projection.get_weights())

    ids, x_online, y_online = _all_by_id(_plan(tiny_frame_dataset, "serial"), "tfrecord")
    offline_ids, x_offline, y_offline = _all_by_id(_plan(targets, "serial", targets=True), "parquet")
    assert ids == offline_ids and np.array_equal(y_online, y_offline)
    assert "teacher_frames" in x_online and "teacher_frames" not in x_offline
    online_terms = online.loss_terms(y_online, online(x_online, training=False))
    offline_terms = offline.loss_terms(y_offline, offline(x_offline, training=False))
    assert set(online_terms) == set(offline_terms) == {"student_ce", "rep", "pred"}
    for name, value in online_terms.items():
        np.testing.assert_allclose(float(offline_terms[name]), float(value), rtol=1e-5, atol=1e-7)
    # A different teacher output must show: the comparison is not blind.
    x_offline["teacher_predictions"] = np.clip(x_offline["teacher_predictions"] + 0.05, 0, 1)
    moved = offline.loss_terms(y_offline, offline(x_offline, training=False))["pred"]
    assert abs(float(moved) - float(online_terms["pred"])) > 1e-4


def test_top_k_targets_keep_the_teachers_top_classes(targets, tiny_frame_dataset, teacher_job, tmp_path):
    out = tmp_path / "top3"
    manifest = teacher_targets.run(["--teacher", str(teacher_job / "export"),
                                    "--input", str(tiny_frame_dataset), "--output", str(out),
                                    "--predictions", "top_k:3", "--format", "parquet"])  # fmt: skip
    assert manifest["targets"]["bytes_per_video"] == 6 * 3 + 4 + 4 * 64 and manifest["formats"] == ["parquet"]
    _, exact, _ = _all_by_id(_plan(targets, "serial", targets=True), "parquet")
    _, top, _ = _all_by_id(_plan(out, "serial", targets=True), "parquet")
    full, approx = exact["teacher_predictions"], top["teacher_predictions"]
    best = np.argsort(-full, axis=1, kind="stable")[:, :3]
    np.testing.assert_array_equal(np.take_along_axis(approx, best, 1), np.take_along_axis(full, best, 1))
    rest = (full.sum(1) - np.take_along_axis(full, best, 1).sum(1)) / 5
    mask = np.ones_like(full, bool)
    np.put_along_axis(mask, best, False, axis=1)
    np.testing.assert_allclose(approx[mask].reshape(-1, 5), np.repeat(rest[:, None], 5, 1), rtol=1e-5)


def test_bad_rows_are_dead_letters_and_every_record_is_accounted(tmp_path, teacher_job, tiny_frame_dataset):
    source = tmp_path / "damaged"
    shutil.copytree(tiny_frame_dataset, source)
    shutil.rmtree(source / "tfrecord")
    manifest = _manifest(source)
    manifest["formats"] = ["parquet"]
    (source / "manifest.json").write_text(json.dumps(manifest))
    layout = DatasetLayout.from_dict(manifest["schema"])
    path = max((source / "parquet").glob("part-*"), key=lambda p: p.stat().st_size)  # shards may be empty
    rows = layout.rows_from_table(pq.read_table(path))
    bad = {rows[0][F.ID]: "non-finite", rows[1][F.ID]: "num_frames", rows[2][F.ID]: "outside"}
    rows[0][F.full_view_column(F.AUDIO)] = np.full_like(rows[0][F.full_view_column(F.AUDIO)], np.nan)
    rows[1][F.NUM_FRAMES] = len(rows[1][F.full_view_column(F.RGB)]) + 7
    rows[2][F.LABELS] = np.array([99], np.int32)
    pq.write_table(pa.Table.from_batches([layout.to_record_batch(rows)]), path)

    out = tmp_path / "targets"
    result = teacher_targets.run(
        ["--teacher", str(teacher_job), "--input", str(source), "--output", str(out)]
    )
    assert result["records_read"] == 40 and result["records_written"] == 37 and result["records_failed"] == 3
    assert result["balanced"] and result["failures_by_stage"] == {"validate": 3}
    failed = [
        json.loads(line) for f in (out / "errors").glob("failures*") for line in f.read_text().splitlines()
    ]
    assert {record["id"]: record["reason"] for record in failed}.keys() == bad.keys()
    for record in failed:
        assert bad[record["id"]] in record["reason"], record


def test_refusals_name_what_is_wrong(tmp_path, teacher_job, tiny_frame_dataset, student_export):
    run = teacher_targets.run
    with pytest.raises(teacher_targets.UsageError, match="student's export"):
        run(
            [
                "--teacher",
                str(student_export),
                "--input",
                str(tiny_frame_dataset),
                "--output",
                str(tmp_path / "a"),
            ]
        )
    with pytest.raises(teacher_targets.UsageError, match="is random"):
        run(["--teacher", str(teacher_job), "--input", str(tiny_frame_dataset),
             "--output", str(tmp_path / "b"), "--view", "random:3"])  # fmt: skip
    with pytest.raises(teacher_targets.UsageError, match="not a preprocessed dataset"):
        run(["--teacher", str(teacher_job), "--input", str(tmp_path), "--output", str(tmp_path / "c")])
    with pytest.raises(teacher_targets.UsageError, match="neither a fewframes export"):
        run(["--teacher", str(tmp_path), "--input", str(tiny_frame_dataset), "--output", str(tmp_path / "d")])
    compact = make_dataset(tmp_path / "compact", videos=6, teacher_view=False)
    with pytest.raises(teacher_targets.UsageError, match="no full view"):
        run(["--teacher", str(teacher_job), "--input", str(compact), "--output", str(tmp_path / "e")])
    with pytest.raises(teacher_targets.UsageError, match="cannot be the --input"):
        run(
            [
                "--teacher",
                str(teacher_job),
                "--input",
                str(tiny_frame_dataset),
                "--output",
                str(tiny_frame_dataset),
            ]
        )


def test_train_from_targets_without_the_teacher_or_the_full_view(
    targets, tiny_frame_dataset, teacher_job, tmp_path
):
    from trainer.export import read_metadata

    summary = train_job(["--targets", str(targets), "--job-dir", str(tmp_path / "job"), "--mode", "serial",
                         "--student", "dbof-small", "--view", VIEW, "--epochs", "1", "--batch-size", "8",
                         "--eval", str(tiny_frame_dataset)])  # fmt: skip
    assert summary["outcome"] == "completed"
    assert {"student_ce", "rep", "pred", "val_student_gap"} <= set(summary["metrics"])
    assert not any(k.startswith("val_teacher") for k in summary["metrics"])
    metadata = read_metadata(str(tmp_path / "job" / "export"))
    assert metadata["role"] == "student" and metadata["teacher"]["targets"] == str(targets)
    # Naming the teacher too: accepted when it is the one that computed the targets.
    train_job(["--targets", str(targets), "--teacher-dir", str(teacher_job),
               "--job-dir", str(tmp_path / "job2"), "--mode", "serial", "--student", "dbof-small",
               "--view", VIEW, "--epochs", "1", "--batch-size", "8",
               "--max-steps-per-epoch", "1"])  # fmt: skip


def test_train_refuses_targets_that_do_not_fit(targets, tiny_frame_dataset, tmp_path):
    from trainer.config import UsageError
    from trainer.inputs import InputMismatch

    base = [
        "--job-dir",
        str(tmp_path / "job"),
        "--mode",
        "serial",
        "--student",
        "dbof-small",
        "--epochs",
        "1",
    ]
    cases = [
        (["--targets", str(targets), "--view", "every_n:2"], InputMismatch, "stores view every_n:4"),
        (["--targets", str(targets), "--view", "random:4"], InputMismatch, "draws new frames"),
        (["--targets", str(targets), "--view", VIEW, "--features", "rgb"], InputMismatch, "read features"),
        (["--targets", str(tiny_frame_dataset), "--view", VIEW], InputMismatch, "holds no teacher targets"),
        (["--targets", str(targets), "--train", str(targets)], UsageError, "drop --train"),
    ]
    for extra, error, message in cases:
        with pytest.raises(error, match=message):
            train_job(base + extra)
    with pytest.raises(ValueError, match="serial only"):
        train_job(["--targets", str(targets), "--job-dir", str(tmp_path / "j"), "--mode", "student",
                   "--student", "dbof-small"])  # fmt: skip


def test_train_refuses_targets_of_another_teacher(targets, tiny_frame_dataset, tmp_path):
    from trainer.config import UsageError

    other = tmp_path / "other-teacher"
    train_job(["--train", str(tiny_frame_dataset), "--job-dir", str(other), "--mode", "teacher",
               "--teacher", "hlstm-small", "--epochs", "1", "--batch-size", "8", "--seed", "7",
               "--max-steps-per-epoch", "1"])  # fmt: skip
    with pytest.raises(UsageError, match="computed by another teacher"):
        train_job(["--targets", str(targets), "--teacher-dir", str(other), "--job-dir", str(tmp_path / "job"),
                   "--mode", "serial", "--student", "dbof-small", "--view", VIEW])  # fmt: skip
