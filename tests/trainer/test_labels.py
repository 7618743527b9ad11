"""Label spaces: the vocabulary CSV, entity classes, and the verticals built from it."""

import hashlib
import json

import numpy as np
import pytest

from trainer.config import ENTITIES, VERTICALS
from trainer.labels import LabelSpace, Vocabulary

HEADER = "Index,TrainVideoCount,KnowledgeGraphId,Name,WikiUrl,Vertical1,Vertical2,Vertical3,WikiDescription\n"


def _csv(rows) -> bytes:
    """A vocabulary CSV of (index, name, vertical1) rows, as the release lays it out."""
    return (
        HEADER + "".join(f'{i},1,/m/x{i},{name},,{vertical},,,"a, b"\n' for i, name, vertical in rows)
    ).encode()


def test_the_real_vocabulary_gives_3862_entities_in_25_verticals(shared_data_dir):
    path = shared_data_dir / "vocabulary.csv"
    vocabulary = Vocabulary.read(str(path))
    assert len(vocabulary.names) == 3862 and vocabulary.names[:2] == ("Game", "Video game")
    assert vocabulary.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    space = LabelSpace.build(VERTICALS, 3862, str(path))
    assert space.num_classes == 25 and "(Unknown)" in space.class_names
    assert space.class_names[space.entity_to_class[0]] == "Games"
    assert space.class_names[space.entity_to_class[2]] == "Autos & Vehicles"  # "Vehicle"


def test_a_vocabulary_is_ordered_by_its_index_and_a_missing_vertical_is_unknown():
    content = _csv([(2, "Car", "Autos"), (0, "Game", "Games"), (1, "Tree", "")])
    vocabulary = Vocabulary.from_bytes(content)
    assert vocabulary.names == ("Game", "Tree", "Car")
    assert vocabulary.verticals == ("Games", "(Unknown)", "Autos")
    assert vocabulary.sha256 == hashlib.sha256(content).hexdigest()


@pytest.mark.parametrize(
    "content,message",
    [
        (b"", "is not a YouTube-8M vocabulary CSV"),
        (HEADER.encode(), "is not a YouTube-8M vocabulary CSV"),
        (b"Index,Name\n0,Game\n", r"needs columns \('Index', 'Name', 'Vertical1'\)"),
        (_csv([(0, "Game", "Games"), (2, "Car", "Autos")]), r"vocab.csv: Index column is not 0\.\.1"),
        (_csv([(0, "Game", "Games"), (1, "Car", "Autos"), (1, "Tree", "Nature")]), "Index 1 appears 2 times"),
        (
            _csv([(0, "Game", "Games"), ("one", "Car", "Autos")]),
            "vocab.csv: Index 'one' is not a whole number",
        ),
    ],
)
def test_a_file_that_is_not_a_vocabulary_is_refused_by_name(content, message):
    with pytest.raises(ValueError, match=message):
        Vocabulary.from_bytes(content, "vocab.csv")


def test_the_entity_space_names_classes_by_number_or_by_the_vocabulary(tmp_path):
    plain = LabelSpace.build(ENTITIES, 3, None)
    assert plain.class_names == ("0", "1", "2") and plain.entity_to_class is None
    assert plain.vocabulary_sha256 is None
    path = tmp_path / "vocabulary.csv"
    path.write_bytes(_csv([(0, "Game", "Games"), (1, "Car", "Autos"), (2, "Tree", "")]))
    named = LabelSpace.build(ENTITIES, 3, str(path))
    assert named.class_names == ("Game", "Car", "Tree") and named.num_classes == 3
    assert named.vocabulary_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert json.loads(json.dumps(named.to_dict()))["class_names"] == ["Game", "Car", "Tree"]
    with pytest.raises(ValueError, match="has 3 classes, the dataset 4"):
        LabelSpace.build(ENTITIES, 4, str(path))
    with pytest.raises(ValueError, match="label space verticals needs a vocabulary"):
        LabelSpace.build(VERTICALS, 3, None)


def test_verticals_are_sorted_and_an_entity_maps_to_its_vertical_in_numpy_and_tensorflow(tmp_path):
    import tensorflow as tf

    path = tmp_path / "vocabulary.csv"
    path.write_bytes(
        _csv([(0, "Game", "Games"), (1, "Car", "Autos"), (2, "Tree", ""), (3, "Chess", "Games")])
    )
    space = LabelSpace.build(VERTICALS, 4, str(path))
    assert space.class_names == ("(Unknown)", "Autos", "Games")
    assert space.entity_to_class == (2, 1, 0, 2)
    labels = [np.array([0, 3]), np.array([1, 2]), np.array([], np.int64)]
    expected = np.array([[0, 0, 1], [1, 1, 0], [0, 0, 0]], np.float32)  # two Games entities: one 1
    np.testing.assert_array_equal(space.multi_hot(labels), expected)
    ragged = tf.ragged.constant([[0, 3], [1, 2], []], dtype=tf.int64)
    np.testing.assert_array_equal(space.multi_hot_tf(ragged).numpy(), expected)
    entities = LabelSpace.build(ENTITIES, 4, None)
    np.testing.assert_array_equal(entities.multi_hot([np.array([3, 3, 0])]), [[1, 0, 0, 1]])
    np.testing.assert_array_equal(
        entities.multi_hot_tf(tf.ragged.constant([[3, 3, 0]], tf.int64)), [[1, 0, 0, 1]]
    )
