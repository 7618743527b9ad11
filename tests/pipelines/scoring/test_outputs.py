"""An evaluation's output files, class names, vocabulary checks and prediction lines."""

import csv
import hashlib
import io
import json

import numpy as np
import pyarrow as pa
import pytest

from pipelines.runner import UsageError
from pipelines.scoring import outputs as out
from tests.evaluation_fixture import scored_records
from trainer.labels import Vocabulary
from trainer.metrics import MetricsAccumulator

VOCABULARY = b"Index,Name,Vertical1\n0,Car,Autos\n1,Guitar,Arts\n2,Racing,Autos\n"


# ----- prediction lines --------------------------------------------------------------------------
def test_prediction_line_is_one_csv_row_whatever_the_id_holds():
    for video_id in ["plain", "comma,id", 'quote"id', "line\nbreak", "cr\rid"]:
        line = out.prediction_line({"id": video_id, "top_classes": [4, 0], "top_scores": [0.91234567, 0.5]})
        assert list(csv.reader(io.StringIO(line + "\n"))) == [[video_id, "4 0.912346 0 0.500000"]]
    assert out.prediction_line({"id": "abc", "top_classes": [1], "top_scores": [0.25]}) == "abc,1 0.250000"


def test_prediction_json_names_each_entry_with_its_vertical():
    names = out.ClassNames({"num_classes": 3}, Vocabulary.from_bytes(VOCABULARY))
    line = out.prediction_json({"id": "v", "top_classes": [2, 1], "top_scores": [0.8765432, 0.1]}, names)
    assert json.loads(line) == {
        "id": "v",
        "predictions": [
            {"class": 2, "name": "Racing", "vertical": "Autos", "score": 0.876543},
            {"class": 1, "name": "Guitar", "vertical": "Arts", "score": 0.1},
        ],
    }


def test_passes_filter_keeps_a_video_whose_chosen_class_scores_at_least_the_minimum():
    record = {"top_classes": [3, 1], "top_scores": [0.7, 0.2]}
    assert out.passes_filter(record, None, 0.99)
    assert out.passes_filter(record, {1}, 0.2) and out.passes_filter(record, {5, 3}, 0.7)
    assert not out.passes_filter(record, {1}, 0.21)
    assert not out.passes_filter(record, {5}, 0.0)  # a class outside the video's top entries


# ----- class names and the vocabulary ------------------------------------------------------------
def test_class_names_come_from_the_vocabulary_the_export_or_the_class_index():
    vocabulary = Vocabulary.from_bytes(VOCABULARY)
    by_index = out.ClassNames({"num_classes": 3}, None)
    assert by_index.names == ["0", "1", "2"] and by_index.verticals == ["", "", ""]
    named = out.ClassNames({"num_classes": 3}, vocabulary)
    assert named.names == ["Car", "Guitar", "Racing"] and named.verticals == ["Autos", "Arts", "Autos"]
    assert named.matching("Guitar", None) == {1} and named.matching(None, "Autos") == {0, 2}
    assert named.matching("Car", "Arts") == {0, 1} and named.matching("Boat", None) == set()
    # A model over verticals names its classes by them, whatever the vocabulary.
    metadata = {"num_classes": 2, "label_space": "verticals", "class_names": ["Arts", "Autos"]}
    verticals = out.ClassNames(metadata, vocabulary)
    assert verticals.names == verticals.verticals == ["Arts", "Autos"]
    assert verticals.matching(None, "Autos") == {1}


def test_read_vocabulary_refuses_one_that_is_not_the_models_in_one_line(tmp_path):
    path = tmp_path / "vocabulary.csv"
    path.write_bytes(VOCABULARY)
    sha = hashlib.sha256(VOCABULARY).hexdigest()
    assert out.read_vocabulary(None, {"num_classes": 3}) is None
    assert out.read_vocabulary(str(path), {"num_classes": 3, "vocabulary_sha256": sha}).names[2] == "Racing"
    # A vertical model's vocabulary is the entities', counted by num_entities.
    assert out.read_vocabulary(str(path), {"num_classes": 2, "num_entities": 3}).sha256 == sha
    refusals = [
        ({"num_classes": 4}, "has 3 classes, the model 4"),
        ({"num_classes": 3, "vocabulary_sha256": "0" * 64}, "not the vocabulary the model was trained with"),
    ]
    for metadata, message in refusals:
        with pytest.raises(UsageError, match=message):
            out.read_vocabulary(str(path), metadata)
    (tmp_path / "notes.csv").write_text("a,b\n1,2\n")
    for bad, message in [("missing.csv", "--vocabulary .*missing.csv: "), ("notes.csv", "not a YouTube-8M")]:
        bad = tmp_path / bad
        with pytest.raises(UsageError, match=message) as error:
            out.read_vocabulary(str(bad), {"num_classes": 3})
        assert "\n" not in str(error.value)


# ----- the files ---------------------------------------------------------------------------------
def test_videos_table_round_trips_and_reproduces_the_metrics_of_its_videos(tmp_path):
    rng = np.random.default_rng(3)
    predictions = np.round(rng.random((50, 9)), 2).astype(np.float32)
    labels = [rng.choice(9, size=rng.integers(0, 3), replace=False) for _ in range(50)]
    expected = MetricsAccumulator(9, 4).add_batch(predictions, labels)
    records = scored_records(predictions, labels, 4)
    out.write_videos(str(tmp_path), out.videos_table(records))
    table = out.read_videos(str(tmp_path))
    assert table.schema.equals(out.VIDEO_SCHEMA, check_metadata=False)
    assert table.to_pylist() == records  # float32 scores and float64 perr exactly
    again = out.accumulator_from_table(table, 9, 4)
    assert again.result() == expected.result() and again.per_class() == expected.per_class()
    assert again.video_ids == [f"v{i}" for i in range(50)]
    # A slice of the table (as a reader may hand over) reads back only its own videos' labels.
    tail = out.scored_from_table(table.slice(45))
    assert [x.tolist() for x in tail.labels()] == [sorted(r["labels"]) for r in records[45:]]


def test_a_videos_table_with_uneven_top_k_entries_is_refused():
    records = scored_records(np.array([[0.1, 0.9, 0.3], [0.6, 0.2, 0.4]], np.float32), [[1], [0]], 2)
    records[1]["top_classes"], records[1]["top_scores"] = [0], [0.6]
    with pytest.raises(ValueError, match="the same number of top-k entries"):
        out.scored_from_table(out.videos_table(records))


def test_metrics_and_per_class_files_read_back_as_written(tmp_path):
    metrics = {"gap": 0.5, "num_videos": 3, "model": {"role": "student"}}
    out.write_metrics(str(tmp_path), metrics)
    assert out.read_metrics(str(tmp_path)) == metrics
    rows = [
        {"class": 0, "name": "Car", "vertical": "Autos", "ap": 0.25, "positives": 4, "extra": "dropped"},
        {"class": 1, "name": 'a, "quoted" name', "vertical": "", "ap": 0.0, "positives": 0},
    ]
    out.write_per_class(str(tmp_path), rows)
    assert (tmp_path / out.PER_CLASS_FILE).read_text().splitlines()[0] == ",".join(out.PER_CLASS_COLUMNS)
    assert out.read_per_class(str(tmp_path)) == [{k: row[k] for k in out.PER_CLASS_COLUMNS} for row in rows]


def test_a_directory_without_an_evaluation_says_so(tmp_path):
    with pytest.raises(ValueError, match=f"is not an evaluation output \\(no {out.METRICS_FILE}\\)"):
        out.read_metrics(str(tmp_path))
    with pytest.raises(ValueError, match=f"has no {out.VIDEOS_FILE}"):
        out.read_videos(str(tmp_path))
    assert isinstance(out.videos_table([]), pa.Table) and out.videos_table([]).num_rows == 0
