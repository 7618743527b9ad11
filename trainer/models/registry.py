"""Aggregators and heads chosen by name, each with a typed, frozen config dataclass.

TF Model Garden's yt8m project picks its backbone and head through a registry and a
typed config instead of global flags; this is the same idea for Keras 3 layers. A
module registers a layer class with its config class:

    @register_aggregator("netvlad", NetVLADConfig)
    class NetVLAD(Aggregator): ...

and a run names it: `build_aggregator("netvlad", {"clusters": 32})`. Params come
from JSON (a saved run config, a CLI override), so `make_config` checks names, fields
and value types and says what would have been valid.
"""

from __future__ import annotations

import dataclasses
import typing

AGGREGATOR = "aggregator"
HEAD = "head"
KINDS = (AGGREGATOR, HEAD)

_REGISTRY: dict[str, dict[str, tuple[type, type]]] = {AGGREGATOR: {}, HEAD: {}}


class Config:
    """Base of every layer config: checks field types, then `validate()` checks values.

    Subclasses are frozen dataclasses whose fields are plain `int`, `float`, `bool`
    or `str`, so `dataclasses.asdict` is the JSON that `get_config` saves. An `int`
    given for a `float` field is stored as a float, so a config read back from JSON
    compares equal to the one that was written.
    """

    def __post_init__(self):
        hints = typing.get_type_hints(type(self))
        for field in dataclasses.fields(self):
            expected = hints[field.name]
            value = getattr(self, field.name)
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, field.name, float(value))
            elif (expected in (int, float) and isinstance(value, bool)) or not isinstance(value, expected):
                raise ValueError(
                    f"{type(self).__name__}.{field.name} must be {expected.__name__}, got {value!r}"
                )
        self.validate()

    def validate(self):
        """Raise ValueError for out-of-range values (overridden by configs that have any)."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def _require_positive(self, *names: str, allow_zero: bool = False):
        for name in names:
            value = getattr(self, name)
            if value < 0 or (value == 0 and not allow_zero):
                bound = ">= 0" if allow_zero else "> 0"
                raise ValueError(f"{type(self).__name__}.{name} must be {bound}, got {value!r}")

    def _require_choice(self, name: str, choices: tuple[str, ...]):
        value = getattr(self, name)
        if value not in choices:
            raise ValueError(
                f"{type(self).__name__}.{name} must be one of {', '.join(choices)}; got {value!r}"
            )


def _register(kind: str, name: str, config_cls: type):
    if not (dataclasses.is_dataclass(config_cls) and issubclass(config_cls, Config)):
        raise TypeError(f"{config_cls!r} must be a dataclass deriving from registry.Config")

    def decorate(layer_cls: type) -> type:
        if name in _REGISTRY[kind]:
            raise ValueError(f"{kind} {name!r} is already registered ({_REGISTRY[kind][name][0].__name__})")
        _REGISTRY[kind][name] = (layer_cls, config_cls)
        layer_cls.config_cls = config_cls
        layer_cls.registered_name = name
        return layer_cls

    return decorate


def register_aggregator(name: str, config_cls: type):
    """Class decorator: make an aggregator layer buildable as `name`, configured by `config_cls`."""
    return _register(AGGREGATOR, name, config_cls)


def register_head(name: str, config_cls: type):
    """Class decorator: make a head layer buildable as `name`, configured by `config_cls`."""
    return _register(HEAD, name, config_cls)


def aggregator_names() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY[AGGREGATOR]))


def head_names() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY[HEAD]))


def _lookup(kind: str, name: str) -> tuple[type, type]:
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    table = _REGISTRY[kind]
    if name not in table:
        raise ValueError(f"unknown {kind} {name!r}; valid {kind}s: {', '.join(sorted(table))}")
    return table[name]


def make_config(kind: str, name: str, params: dict | None = None):
    """The config dataclass of the `kind` ("aggregator" or "head") called `name`, from `params`.

    Missing fields take their defaults; an unknown name, an unknown field or a value
    of the wrong type or range raises ValueError naming the valid choices.
    """
    _, config_cls = _lookup(kind, name)
    params = dict(params or {})
    fields = [field.name for field in dataclasses.fields(config_cls)]
    unknown = sorted(set(params) - set(fields))
    if unknown:
        valid = ", ".join(fields) if fields else "none (it takes no parameters)"
        raise ValueError(f"unknown field(s) {', '.join(unknown)} for {kind} {name!r}; valid fields: {valid}")
    try:
        return config_cls(**params)
    except ValueError as error:
        raise ValueError(f"invalid parameters for {kind} {name!r}: {error}") from error


def build_aggregator(name: str, /, params: dict | None = None, **layer_kwargs):
    """A new aggregator layer of the registered `name` (positional, so that `name=` in
    `layer_kwargs` can name the layer); `layer_kwargs` go to `keras.layers.Layer`."""
    layer_cls, _ = _lookup(AGGREGATOR, name)
    return layer_cls(make_config(AGGREGATOR, name, params), **layer_kwargs)


def build_head(name: str, /, num_classes: int, params: dict | None = None, **layer_kwargs):
    """A new head layer of the registered `name` (positional) for `num_classes` classes;
    `layer_kwargs` (name, dtype, ...) go to `keras.layers.Layer`."""
    layer_cls, _ = _lookup(HEAD, name)
    return layer_cls(num_classes, make_config(HEAD, name, params), **layer_kwargs)


def as_config(kind: str, name: str, config):
    """`config` as the config dataclass of `name`: None -> defaults, dict -> `make_config`."""
    _, config_cls = _lookup(kind, name)
    if config is None:
        return config_cls()
    if isinstance(config, dict):
        return make_config(kind, name, config)
    if not isinstance(config, config_cls):
        raise TypeError(
            f"{kind} {name!r} takes a {config_cls.__name__} or a dict, got {type(config).__name__}"
        )
    return config
