"""Scale configs: one frozen dataclass per paper, with ``smoke``/``tutorial``/``full`` instances.

A paper module declares::

    @dataclass(frozen=True)
    class DltfConfig:
        n_atoms: int
        steps: int

    CONFIGS = ScaleConfigs(
        smoke=DltfConfig(n_atoms=16, steps=10),
        tutorial=DltfConfig(n_atoms=64, steps=300),
        full=DltfConfig(n_atoms=256, steps=5000),
    )

and a chapter reads ``cfg = CONFIGS.get(scale, steps=50)``. An unknown scale or knob is a
``ValueError`` that names the valid ones; nothing is silently ignored.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterator, Mapping
from typing import Any

SCALES = ("smoke", "tutorial", "full")


def _check_scale(scale: str) -> None:
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; valid scales are {', '.join(SCALES)}")


def _type_ok(value: Any, annotation: Any) -> bool:
    """Loose runtime check of a knob's value against its field annotation."""
    if annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(annotation))
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if origin in (tuple, list):
        args = typing.get_args(annotation)
        if not isinstance(value, (tuple, list)):
            return False
        if args and args[-1] is not Ellipsis and len(args) == len(value):
            return all(_type_ok(v, a) for v, a in zip(value, args, strict=True))
        return not args or all(_type_ok(v, args[0]) for v in value)
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


def with_knobs(config: Any, **knobs: Any) -> Any:
    """A copy of a frozen config dataclass with some fields replaced, validated.

    Raises ``ValueError`` naming the valid knobs for an unknown name, and naming the
    expected type for a value of the wrong type.
    """
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"expected a dataclass instance, got {type(config).__name__}")
    fields = {f.name: f for f in dataclasses.fields(config)}
    unknown = sorted(set(knobs) - set(fields))
    if unknown:
        raise ValueError(
            f"unknown knob(s) {', '.join(unknown)} for {type(config).__name__}; "
            f"valid knobs are {', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(type(config))
    for name, value in knobs.items():
        annotation = hints.get(name, Any)
        if not _type_ok(value, annotation):
            raise ValueError(
                f"knob {name}={value!r} has type {type(value).__name__}; "
                f"{type(config).__name__}.{name} expects {annotation}"
            )
        if annotation is float and isinstance(value, int):
            knobs[name] = float(value)
    return dataclasses.replace(config, **knobs)


class ScaleConfigs(Mapping):
    """The three scale instances of one paper's config dataclass."""

    def __init__(self, *, smoke: Any, tutorial: Any, full: Any):
        configs = {"smoke": smoke, "tutorial": tutorial, "full": full}
        kinds = {type(c) for c in configs.values()}
        if len(kinds) != 1:
            raise TypeError(f"all scales must share one config class, got {kinds}")
        (kind,) = kinds
        if not dataclasses.is_dataclass(kind) or not kind.__dataclass_params__.frozen:
            raise TypeError(f"{kind.__name__} must be a frozen dataclass")
        self._configs = configs

    def __getitem__(self, scale: str) -> Any:
        _check_scale(scale)
        return self._configs[scale]

    def __contains__(self, scale: object) -> bool:
        return scale in self._configs

    def __iter__(self) -> Iterator[str]:
        return iter(SCALES)

    def __len__(self) -> int:
        return len(SCALES)

    def get(self, scale: str, **knobs: Any) -> Any:  # type: ignore[override]
        """The config at ``scale`` with ``knobs`` replaced (each validated)."""
        return with_knobs(self[scale], **knobs)

    def __repr__(self) -> str:
        return f"ScaleConfigs({type(self._configs['smoke']).__name__}: {', '.join(SCALES)})"


def config_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    return dataclasses.asdict(config)
