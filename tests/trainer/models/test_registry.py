"""The registry: layers by name, typed configs from JSON params, and its errors."""

import dataclasses

import pytest

from trainer.models import DBoFConfig, LSTMAggregator, MoEConfig, MoEHead, registry

C = 4


def test_make_config_checks_kind_types_and_values():
    with pytest.raises(ValueError, match=r"unknown kind 'backbone'; expected one of aggregator, head"):
        registry.make_config("backbone", "mean", {})
    with pytest.raises(ValueError, match=r"DBoFConfig.pooling must be one of max, mean; got 'sum'"):
        registry.make_config("aggregator", "dbof", {"pooling": "sum"})
    with pytest.raises(ValueError, match=r"HierarchicalLSTMConfig.full_state must be bool, got 1"):
        registry.make_config("aggregator", "hlstm", {"full_state": 1})
    with pytest.raises(ValueError, match=r"need hidden_size > 0"):
        registry.make_config("aggregator", "netvlad", {"hidden_size": 0})
    # JSON writes 1.0 as 1: an int is accepted for a float field, and stored as a float.
    assert registry.make_config("head", "moe", {"l2_penalty": 1}).l2_penalty == 1.0


def test_build_aggregator_takes_layer_kwargs():
    layer = registry.build_aggregator("lstm", {"units": 3}, name="teacher_lstm")
    assert layer.name == "teacher_lstm" and layer.config.units == 3


def test_build_head_errors_name_the_valid_choices():
    with pytest.raises(ValueError, match=r"unknown head 'softmax'; valid heads: logistic, moe"):
        registry.build_head("softmax", C)
    with pytest.raises(
        ValueError, match=r"unknown field\(s\) mixtures for head 'moe'; valid fields: num_mixtures"
    ):
        registry.build_head("moe", C, {"mixtures": 3})
    with pytest.raises(ValueError, match=r"MoEConfig.num_mixtures must be int, got '3'"):
        registry.build_head("moe", C, {"num_mixtures": "3"})
    with pytest.raises(ValueError, match=r"num_mixtures must be > 0"):
        registry.build_head("moe", C, {"num_mixtures": 0})


# ----- added with the mirror file -------------------------------------------------------------
def test_names_are_listed_sorted_and_each_builds_its_registered_class():
    assert registry.aggregator_names() == tuple(sorted(registry.aggregator_names()))
    assert {"dbof", "hlstm", "lstm", "max", "mean", "netvlad", "nextvlad", "video"} <= set(
        registry.aggregator_names()
    )
    assert registry.head_names() == ("logistic", "moe")
    layer = registry.build_aggregator("lstm")
    assert isinstance(layer, LSTMAggregator) and layer.registered_name == "lstm"
    head = registry.build_head("moe", C, {"num_mixtures": 3}, name="the_head")
    assert isinstance(head, MoEHead) and head.name == "the_head" and head.config == MoEConfig(num_mixtures=3)


def test_missing_fields_take_the_config_defaults():
    assert registry.make_config("aggregator", "dbof", {"cluster_size": 16}) == DBoFConfig(cluster_size=16)
    assert registry.make_config("aggregator", "dbof", None) == DBoFConfig()
    assert (
        registry.make_config("aggregator", "dbof", {"cluster_size": 16}).hidden_size
        == DBoFConfig().hidden_size
    )


def test_a_name_is_registered_once_and_only_with_a_config_dataclass():
    with pytest.raises(ValueError, match=r"aggregator 'mean' is already registered \(MeanPooling\)"):
        registry.register_aggregator("mean", DBoFConfig)(type("OtherMean", (), {}))
    with pytest.raises(TypeError, match="must be a dataclass deriving from registry.Config"):
        registry.register_head("plain", dict)
    assert (
        "plain" not in registry.head_names()
        and len([n for n in registry.aggregator_names() if n == "mean"]) == 1
    )


def test_config_fields_are_type_checked_and_bools_are_not_numbers():
    @dataclasses.dataclass(frozen=True)
    class Example(registry.Config):
        width: int = 1
        rate: float = 0.5
        name: str = "x"

    assert Example(rate=2).rate == 2.0 and isinstance(Example(rate=2).rate, float)
    for bad, message in (
        ({"width": True}, "Example.width must be int, got True"),
        ({"rate": False}, "Example.rate must be float, got False"),
        ({"width": 1.5}, "Example.width must be int, got 1.5"),
        ({"name": 3}, "Example.name must be str, got 3"),
    ):
        with pytest.raises(ValueError, match=message):
            Example(**bad)


def test_as_config_takes_none_a_dict_or_the_right_dataclass_only():
    assert registry.as_config("head", "moe", None) == MoEConfig()
    assert registry.as_config("head", "moe", {"num_mixtures": 4}) == MoEConfig(num_mixtures=4)
    config = MoEConfig(num_mixtures=5)
    assert registry.as_config("head", "moe", config) is config
    with pytest.raises(TypeError, match="head 'moe' takes a MoEConfig or a dict, got DBoFConfig"):
        registry.as_config("head", "moe", DBoFConfig())
