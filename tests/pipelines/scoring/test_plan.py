"""An export's metadata file is checked against its graph's `metadata` signature, which scores."""

import json
import shutil

import pytest

from pipelines import teacher_targets
from pipelines.scoring import job as scoring_job
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
