"""`fewframes cascade export`: the cascade as one SavedModel, equal to the Beam cascade."""

import json

import numpy as np

from pipelines import cascade
from pipelines.scoring import cascade as C
from pipelines.scoring import cascade_export
from schemas import raw
from schemas.views import View
from tests.pipelines.scoring.conftest import num_frames


def test_the_in_graph_export_equals_the_beam_cascade_on_the_same_records(
    cascade_dir, cascade_run, shards, tmp_path
):
    import tensorflow as tf

    directory, _ = cascade_dir
    _, good = shards
    _, _, videos = cascade_run
    assert cascade.main(["export", str(directory), "--output", str(tmp_path / "export")]) == 0
    model = tf.saved_model.load(str(tmp_path / "export"))
    scored = model.signatures["serving_default"](example_bytes=tf.constant(good))
    ids = [v.decode() for v in scored["video_id"].numpy()]
    assert sorted(ids) == sorted(videos)
    for i, video in enumerate(ids):
        row = videos[video]
        assert scored["class_indexes"].numpy()[i].tolist() == row["top_classes"], video
        np.testing.assert_allclose(scored["scores"].numpy()[i], row["top_scores"], atol=1e-5)
    # The exit stage it reports is the one the Beam cascade chose (stage 0 reads a quarter of the frames).
    lengths = {raw.id_and_labels(r)[0]: min(num_frames(r), 300) for r in good}
    exits = scored["exit_stage"].numpy()
    assert 0 < int((exits == 0).sum()) < len(ids)
    quarter = View.parse("every_n:4")
    assert min(lengths.values()) >= 5  # so a quarter of a video is fewer frames than all of it
    for i, video in enumerate(ids):
        expected = 0 if videos[video]["frames_read"] == quarter.num_selected(lengths[video]) else 1
        assert exits[i] == expected, video
    spec = json.loads(model.signatures["metadata"]()["json"].numpy().decode())
    assert spec == json.loads((directory / C.CASCADE_FILE).read_text())


def test_export_cascade_writes_the_spec_beside_a_savedmodel_that_is_not_a_stage_export(cascade_dir, tmp_path):
    directory, _ = cascade_dir
    output = tmp_path / "export"
    assert cascade_export.export_cascade(str(directory), str(output)) == str(output)
    written = json.loads((output / cascade_export.EXPORT_METADATA_NAME).read_text())
    assert written == json.loads((directory / C.CASCADE_FILE).read_text())
    assert (output / "saved_model.pb").exists()
    assert not (output / "fewframes_export.json").exists()  # never mistaken for one stage's export
