"""The model zoo: frame aggregators + classifier heads, chosen by name.

After TF Model Garden's yt8m project: an aggregator ("backbone") turns frames
[B, T, D] and their mask [B, T] into a video representation [B, R]; a head turns the
representation into class probabilities [B, C]. Both are Keras 3 layers written with
`keras.ops` only (any backend), registered by name with a frozen dataclass config.
A `ModelSpec` names one of each; `VideoClassifier` builds it; `presets` names specs.
"""

from trainer.models.registry import (  # isort: skip  (registry first: the layer modules use it)
    aggregator_names,
    build_aggregator,
    build_head,
    head_names,
    make_config,
    register_aggregator,
    register_head,
)
from trainer.models.aggregators import (
    DBoF,
    DBoFConfig,
    HierarchicalLSTM,
    HierarchicalLSTMConfig,
    LSTMAggregator,
    LSTMConfig,
    MaxPooling,
    MeanPooling,
    NetVLAD,
    NetVLADConfig,
    NeXtVLAD,
    NeXtVLADConfig,
    PoolingConfig,
    VideoFeatures,
)
from trainer.models.classifier import PREDICTIONS, REPRESENTATION, ModelSpec, VideoClassifier
from trainer.models.heads import ContextGating, LogisticConfig, LogisticHead, MoEConfig, MoEHead
from trainer.models.presets import PRESETS, get_preset, preset_names

__all__ = [
    "PREDICTIONS",
    "PRESETS",
    "REPRESENTATION",
    "ContextGating",
    "DBoF",
    "DBoFConfig",
    "HierarchicalLSTM",
    "HierarchicalLSTMConfig",
    "LSTMAggregator",
    "LSTMConfig",
    "LogisticConfig",
    "LogisticHead",
    "MaxPooling",
    "MeanPooling",
    "MoEConfig",
    "MoEHead",
    "ModelSpec",
    "NeXtVLAD",
    "NeXtVLADConfig",
    "NetVLAD",
    "NetVLADConfig",
    "PoolingConfig",
    "VideoClassifier",
    "VideoFeatures",
    "aggregator_names",
    "build_aggregator",
    "build_head",
    "get_preset",
    "head_names",
    "make_config",
    "preset_names",
    "register_aggregator",
    "register_head",
]
