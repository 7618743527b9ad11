"""Job-dir file operations on local paths (gs:// runs are in tests/e2e/test_gcs.py)."""

import os

import keras
import numpy as np
import pytest

from trainer import storage


@pytest.mark.parametrize(
    "path,remote",
    [("gs://b/j", True), ("s3://b/j", True), ("/tmp/j", False), ("jobs/x", False), ("a:b", False)],
)
def test_a_path_is_remote_when_it_names_a_scheme(path, remote):
    assert storage.is_remote(path) is remote


def test_join_uses_the_local_separator_locally_and_slashes_for_a_bucket():
    assert storage.join("/tmp/j", "weights", "x.h5") == os.path.join("/tmp/j", "weights", "x.h5")
    assert storage.join("gs://b/j/", "weights/", "x.h5") == "gs://b/j/weights/x.h5"


def test_write_text_creates_the_folders_and_replaces_the_file_whole(tmp_path):
    path = str(tmp_path / "a" / "b" / "state.json")
    storage.write_text(path, '{"step": 1}')
    storage.write_text(path, '{"step": 22}')
    assert storage.read_text(path) == '{"step": 22}'
    assert storage.read_bytes(path) == b'{"step": 22}'
    assert storage.exists(path) and not storage.exists(str(tmp_path / "a" / "missing"))
    assert storage.listdir(str(tmp_path / "a" / "b")) == ["state.json"]  # no temporary file left


def test_listdir_and_remove_of_what_is_not_there_do_nothing(tmp_path):
    assert storage.listdir(str(tmp_path / "none")) == []
    (tmp_path / "file").write_text("x")
    assert storage.listdir(str(tmp_path / "file")) == []  # a file is not a folder
    storage.remove(str(tmp_path / "none"))
    storage.makedirs(str(tmp_path / "d" / "e"))
    storage.makedirs(str(tmp_path / "d" / "e"))  # already there: fine
    storage.write_text(str(tmp_path / "d" / "keep"), "k")
    storage.write_text(str(tmp_path / "d" / "drop"), "d")
    storage.remove(str(tmp_path / "d" / "drop"))
    assert sorted(storage.listdir(str(tmp_path / "d"))) == ["e", "keep"]


def test_weights_round_trip_through_a_local_file_with_no_temporary_left(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    path = str(tmp_path / "w" / "student.weights.h5")
    storage.save_weights(model, path)
    assert os.listdir(tmp_path / "w") == ["student.weights.h5"]
    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    storage.load_weights(other, path)
    for mine, theirs in zip(model.get_weights(), other.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
