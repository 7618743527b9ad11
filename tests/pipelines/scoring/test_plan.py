"""Planning a scoring run: the export's metadata checked against its graph, and what the input
fits (kind, class space, views, segments) decided before any work."""

import json
import shutil

import numpy as np
import pytest

from pipelines import teacher_targets
from pipelines.records import tfrecord_io
from pipelines.scoring import job as scoring_job
from pipelines.scoring import plan as scoring_plan
from schemas import features as F
from schemas import raw
from schemas.preprocessed import MANIFEST_NAME, PARQUET
from schemas.views import View
from tests.conftest import random_frames
from trainer.export import METADATA_NAME


@pytest.fixture
def export_copy(student_export, tmp_path):
    """A copy of the student export (every_n:4, 8 classes) that a test may damage."""
    copy = tmp_path / "export"
    shutil.copytree(student_export, copy)
    return copy


def _edit_metadata(export_dir, **changes) -> None:
    path = export_dir / METADATA_NAME
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _evaluate_main(export_dir, dataset, output, capsys) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = scoring_job.main(["--model", str(export_dir), "--input", str(dataset), "--output", str(output)])
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize(
    "changes,field",
    [
        ({"view": "every_n:10", "serving_view": "every_n:10"}, "serving_view, view"),
        ({"num_classes": 5}, "num_classes"),
        ({"kind": "video"}, "kind"),
    ],
)
def test_a_metadata_file_that_disagrees_with_the_graph_is_refused_in_one_line(
    export_copy, tiny_frame_dataset, tmp_path, capsys, changes, field
):
    _edit_metadata(export_copy, **changes)
    code, err = _evaluate_main(export_copy, tiny_frame_dataset, tmp_path / "out", capsys)
    assert code == 2 and len(err) == 1, err
    assert f"disagrees with the export's metadata signature on {field} (" in err[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "damage,message",
    [
        ("broken_json", f"{METADATA_NAME} is not readable JSON"),
        ("no_variables", "incomplete export: its variables is missing"),
        ("no_saved_model", "incomplete export: its saved_model.pb is missing"),
        ("empty_variables", "cannot be loaded as a fewframes export"),
    ],
)
def test_a_damaged_export_is_refused_in_one_line(
    export_copy, tiny_frame_dataset, tmp_path, capsys, damage, message
):
    if damage == "broken_json":
        (export_copy / METADATA_NAME).write_text('{"kind": "frame", ')
    elif damage == "no_variables":
        shutil.rmtree(export_copy / "variables")
    elif damage == "no_saved_model":
        (export_copy / "saved_model.pb").unlink()
    else:
        for path in (export_copy / "variables").iterdir():
            path.unlink()
    code, err = _evaluate_main(export_copy, tiny_frame_dataset, tmp_path / "out", capsys)
    assert code == 2 and len(err) == 1 and "Traceback" not in err[0], err
    assert message in err[0]


def test_a_teacher_whose_metadata_file_claims_a_student_view_is_refused(
    teacher_job, tiny_frame_dataset, tmp_path, capsys
):
    """The issue's case: an edited view on a teacher scored it on a tenth of the frames, rc 0."""
    teacher = tmp_path / "teacher"
    shutil.copytree(teacher_job / "export", teacher)
    _edit_metadata(teacher, view="every_n:10", serving_view="every_n:10")
    argv = ["--teacher", str(teacher), "--input", str(tiny_frame_dataset), "--output", str(tmp_path / "t")]
    capsys.readouterr()
    assert teacher_targets.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--teacher {teacher}: " in err[0], err
    assert "metadata signature on serving_view, view (" in err[0]


# ----- what plan_scoring and plan_dataset decide -------------------------------------------------------
METADATA = {
    "kind": F.FRAME_LEVEL,
    "serving_view": "every_n:4",
    "num_classes": 8,
    "features": list(F.FRAME_FEATURES),
}


def _shard(path, labels_per_video, segments=None, seed=4):
    rng = np.random.default_rng(seed)
    records = [
        raw.frame_level_record(f"v{i}".encode(), labels, *random_frames(rng, 8), segments=segments)
        for i, labels in enumerate(labels_per_video)
    ]
    with open(path, "wb") as f:
        tfrecord_io.write_records(f, records)


def test_a_dataset_plan_reads_the_stored_view_or_the_whole_videos_the_model_cuts(tiny_frame_dataset):
    stored = scoring_plan.plan_dataset("no-export", METADATA, str(tiny_frame_dataset))
    files = sorted((tiny_frame_dataset / PARQUET).glob("part-*"))
    assert (stored.source, stored.kind, stored.dataset_format) == (
        scoring_plan.DATASET,
        F.FRAME_LEVEL,
        PARQUET,
    )
    assert stored.files == tuple(str(f) for f in files) and stored.input_bytes == sum(
        f.stat().st_size for f in files
    )
    assert stored.frames == scoring_plan.VIEW_FRAMES and stored.frame_columns() == {
        F.RGB: F.RGB,
        F.AUDIO: F.AUDIO,
    }
    assert not stored.segments and stored.layout.frame_dtype == "float16"
    # uniform:3 is not stored, but the full view is: the model's graph cuts its own view from it.
    whole = scoring_plan.plan_dataset(
        "no-export", {**METADATA, "serving_view": "uniform:3"}, str(tiny_frame_dataset)
    )
    assert whole.frames == scoring_plan.WHOLE_VIDEOS and whole.view == View.parse("uniform:3")
    assert whole.frame_columns() == {f: F.full_view_column(f) for f in F.FRAME_FEATURES}
    assert whole.identity()["frames"] == "whole" and whole.identity()["files"] == 2


def test_a_dataset_that_does_not_fit_the_model_is_refused_saying_why(tiny_frame_dataset, tmp_path):
    dataset = str(tiny_frame_dataset)
    refusals = [
        ({**METADATA, "num_classes": 5}, dataset, "has 8 classes but the model was trained on 5"),
        (
            {**METADATA, "kind": F.VIDEO_LEVEL},
            dataset,
            "the model is video-level but dataset .* is frame-level",
        ),
    ]
    # The same dataset without its full view cannot serve a model reading another view.
    manifest = json.loads((tiny_frame_dataset / MANIFEST_NAME).read_text())
    manifest["schema"]["teacher_view"] = False
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(manifest))
    refusals.append(
        ({**METADATA, "serving_view": "every_n:3"}, str(tmp_path), "stores view every_n:4 without")
    )
    # A manifest whose shards are gone.
    manifest["schema"]["teacher_view"] = True
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / MANIFEST_NAME).write_text(json.dumps(manifest))
    refusals.append((METADATA, str(tmp_path / "empty"), "has no parquet files"))
    for metadata, path, message in refusals:
        with pytest.raises(scoring_plan.ScoringError, match=message):
            scoring_plan.plan_dataset("no-export", metadata, path)


def test_raw_input_is_planned_as_the_models_view_with_segments_when_a_shard_is_rated(
    student_export, tmp_path
):
    _shard(tmp_path / "train0000.tfrecord", [[1], [2, 3]])
    plan = scoring_plan.plan_scoring(str(student_export.parent), [f"{tmp_path}/train*.tfrecord"])
    assert plan.export_dir == str(student_export)  # a job dir names its export/
    assert (plan.source, plan.kind, plan.frames) == (
        scoring_plan.RAW,
        F.FRAME_LEVEL,
        scoring_plan.VIEW_FRAMES,
    )
    assert plan.files == (str(tmp_path / "train0000.tfrecord"),) and not plan.segments
    config = plan.parse_config
    assert str(config.view) == "every_n:4" and config.num_classes == 8 and not config.teacher_view
    rated = {
        F.SEGMENT_START_TIMES: [0],
        F.SEGMENT_END_TIMES: [5],
        F.SEGMENT_LABELS: [1],
        F.SEGMENT_SCORES: [1.0],
    }
    _shard(tmp_path / "train0001.tfrecord", [[1]], segments=rated)
    plan = scoring_plan.plan_scoring(str(student_export), [f"{tmp_path}/train*.tfrecord"])
    # Segments are scored on their own frames, which every_n:4 would drop: the full view is kept.
    assert plan.segments and plan.parse_config.segments and plan.parse_config.teacher_view
    with pytest.raises(scoring_plan.ScoringError, match="neither a fewframes export nor a training job dir"):
        scoring_plan.plan_scoring(str(tmp_path), [f"{tmp_path}/train*.tfrecord"])


@pytest.mark.parametrize(
    "labels_per_video,refused",
    [
        ([[1], [2], [3], [4], [5], [50], [60], [70], [80], [90]], False),  # 5 of 10 outside: dead letters
        ([[1], [2], [3], [4], [40], [50], [60], [70], [80], [90]], True),  # 6 of 10: another class space
        ([[], [], [], [], [1], [2, 30]], False),  # unlabelled videos do not count: 1 of 2
        ([[], [], [], [], [1], [2, 30], [40]], True),  # 2 of 3
    ],
)
def test_raw_input_mostly_outside_the_models_classes_is_refused(tmp_path, labels_per_video, refused):
    _shard(tmp_path / "train0000.tfrecord", labels_per_video)
    pattern = f"{tmp_path}/train*.tfrecord"
    if not refused:
        assert scoring_plan._plan_raw("no-export", METADATA, [pattern]).source == scoring_plan.RAW
        return
    with pytest.raises(scoring_plan.ScoringError, match="not in the model's class space") as error:
        scoring_plan._plan_raw("no-export", METADATA, [pattern])
    labelled = sum(1 for labels in labels_per_video if labels)
    outside = sum(1 for labels in labels_per_video if any(label >= 8 for label in labels))
    assert f"{outside} of the first {labelled} labelled records" in str(error.value)
    assert "outside the model's 8 classes" in str(error.value)


def test_video_level_raw_input_is_refused_for_a_frame_level_model(tmp_path):
    records = [raw.video_level_record(b"v0", [1], np.zeros(1024), np.zeros(128))]
    with open(tmp_path / "train0000.tfrecord", "wb") as f:
        tfrecord_io.write_records(f, records)
    with pytest.raises(
        scoring_plan.ScoringError, match="the model is frame-level but the input is video-level"
    ):
        scoring_plan._plan_raw("no-export", METADATA, [f"{tmp_path}/train*.tfrecord"])
    with pytest.raises(scoring_plan.ScoringError, match="no-such"):
        scoring_plan._plan_raw("no-export", METADATA, [f"{tmp_path}/no-such*.tfrecord"])
