"""The named models: the required names, the paper's pair, and the CPU-sized ones."""

import numpy as np
import pytest

from tests.trainer.models.batches import D, inputs, numpy_outputs
from trainer.models import (
    PREDICTIONS,
    PRESETS,
    REPRESENTATION,
    ModelSpec,
    VideoClassifier,
    get_preset,
    preset_names,
)

C = 5
YT8M_FRAME_DIM = 1024 + 128


REQUIRED_PRESETS = {
    "hlstm",
    "lstm",
    "dbof",
    "netvlad",
    "nextvlad",
    "mean-logistic",
    "max-logistic",
    "video-logistic",
    "video-moe",
    "hlstm-small",
    "nextvlad-small",
    "dbof-small",
    "mean-moe-small",
}


def test_required_presets_exist():
    assert REQUIRED_PRESETS <= set(preset_names())


def test_unknown_preset_lists_the_names():
    with pytest.raises(ValueError, match=r"unknown model preset 'hrnn'; valid presets: dbof, dbof-small"):
        get_preset("hrnn")


def test_the_paper_presets():
    teacher, student = get_preset("hlstm"), get_preset("hlstm-student")
    assert (teacher.aggregator, teacher.head) == ("hlstm", "moe")
    # The paper's representation loss compares the two final states directly.
    assert (
        teacher.representation_dim(YT8M_FRAME_DIM) == student.representation_dim(YT8M_FRAME_DIM) == 4 * 1024
    )


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_has_a_representation_width_for_yt8m_frames(name):
    assert get_preset(name).representation_dim(YT8M_FRAME_DIM) > 0


@pytest.mark.parametrize("name", [name for name in preset_names() if name.endswith("-small")])
def test_small_presets_build_and_stay_small(name):
    model = VideoClassifier(get_preset(name), num_classes=C, input_dim=D)
    outputs = numpy_outputs(model(inputs()))
    assert outputs[REPRESENTATION].shape == (3, model.representation_dim)
    assert outputs[PREDICTIONS].shape == (3, C)
    assert model.representation_dim <= 64
    assert np.all(np.isfinite(outputs[REPRESENTATION]))


# ----- added with the mirror file -------------------------------------------------------------
def test_preset_names_are_the_table_sorted_and_get_preset_returns_its_spec():
    assert preset_names() == tuple(sorted(PRESETS))
    assert all(
        isinstance(get_preset(name), ModelSpec) and get_preset(name) is PRESETS[name] for name in PRESETS
    )


def test_the_paper_teacher_and_student_chunk_300_and_30_frames_into_20_and_5_chunks():
    teacher, student = (
        get_preset("hlstm").aggregator_config(),
        get_preset("hlstm-student").aggregator_config(),
    )
    assert (300 // teacher.chunk_size, 30 // student.chunk_size) == (20, 5)
    assert (teacher.units, teacher.num_layers) == (student.units, student.num_layers) == (1024, 2)
    assert get_preset("hlstm").head_config() == get_preset("hlstm-student").head_config()


@pytest.mark.parametrize("name", [name for name in preset_names() if name.endswith("-small")])
def test_small_presets_use_no_batch_norm(name):
    # Their runs are too short for the moving statistics to converge (see presets.py).
    config = get_preset(name).aggregator_config()
    assert getattr(config, "batch_norm", False) is False
    assert getattr(get_preset(name).head_config(), "batch_norm", False) is False
