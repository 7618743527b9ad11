"""Named models: what `--teacher NAME` and `--student NAME` refer to.

Each preset is a `ModelSpec`; a run may override single fields of it (see
`trainer.config.ModelChoice`). The full-size presets follow their sources (cited on
each config class); the `-small` ones are CPU-sized for tests and the demo.
"""

from __future__ import annotations

from trainer.models.classifier import ModelSpec

PRESETS: dict[str, ModelSpec] = {
    # The paper's teacher (all frames): H-LSTM + MoE, as its HierarchicalLstmModel run
    # (lstm_cells=1024, lstm_layers=2, 20 chunks of 15 frames, moe_num_mixtures=2).
    "hlstm": ModelSpec(
        "hlstm", "moe", {"units": 1024, "num_layers": 2, "chunk_size": 15, "full_state": True}
    ),
    # The paper's student: the same model over every 10th frame, 30 frames in 5 chunks of 6.
    "hlstm-student": ModelSpec(
        "hlstm", "moe", {"units": 1024, "num_layers": 2, "chunk_size": 6, "full_state": True}
    ),
    # The starter's frame-level models.
    "lstm": ModelSpec("lstm", "moe", {"units": 1024, "num_layers": 2}),
    "dbof": ModelSpec("dbof", "moe", {"cluster_size": 8192, "hidden_size": 1024}),
    "mean-logistic": ModelSpec("mean", "logistic"),
    "max-logistic": ModelSpec("max", "logistic"),
    # Cluster-and-aggregate models (Willow's NetVLAD, Lin et al.'s NeXtVLAD).
    "netvlad": ModelSpec("netvlad", "moe", {"clusters": 64, "hidden_size": 1024, "gating": True}),
    "nextvlad": ModelSpec(
        "nextvlad",
        "moe",
        {"clusters": 128, "groups": 8, "expansion": 2, "hidden_size": 2048, "gating_reduction": 8},
    ),
    # The starter's video-level models, on mean_rgb/mean_audio as a one-frame video.
    "video-logistic": ModelSpec("video", "logistic"),
    "video-moe": ModelSpec("video", "moe", {}, {"num_mixtures": 2}),
    # CPU-sized versions for tests and the demo. No batch norm: their runs are a few
    # hundred steps, too few for the moving statistics (momentum 0.99) to converge, and
    # inference with unconverged statistics scores far from training.
    "hlstm-small": ModelSpec(
        "hlstm",
        "moe",
        {"units": 32, "num_layers": 1, "chunk_size": 5, "full_state": True},
        {"num_mixtures": 2},
    ),
    "lstm-small": ModelSpec("lstm", "moe", {"units": 32, "num_layers": 1}, {"num_mixtures": 2}),
    "dbof-small": ModelSpec(
        "dbof", "moe", {"cluster_size": 64, "hidden_size": 32, "batch_norm": False}, {"num_mixtures": 2}
    ),
    "netvlad-small": ModelSpec(
        "netvlad", "moe", {"clusters": 8, "hidden_size": 32, "batch_norm": False}, {"num_mixtures": 2}
    ),
    "nextvlad-small": ModelSpec(
        "nextvlad",
        "moe",
        {
            "clusters": 8,
            "groups": 4,
            "expansion": 1,
            "hidden_size": 32,
            "gating_reduction": 4,
            "batch_norm": False,
        },
        {"num_mixtures": 2},
    ),
    "mean-moe-small": ModelSpec("mean", "moe", {}, {"num_mixtures": 2}),
}


def preset_names() -> tuple[str, ...]:
    return tuple(sorted(PRESETS))


def get_preset(name: str) -> ModelSpec:
    """The preset called `name`; ValueError listing the valid names otherwise."""
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; valid presets: {', '.join(preset_names())}")
    return PRESETS[name]
