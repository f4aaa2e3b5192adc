"""Checks shared by the methods' config dataclasses: a wrong value names the field, the value
and what is allowed (peft's ``LoraConfig.__post_init__`` is the model)."""

from __future__ import annotations

import dataclasses
import typing

from oneedit.core import OneEditError


class HparamsError(OneEditError):
    pass


def fail(section: str, name: str, value, allowed: str) -> HparamsError:
    return HparamsError(f"Hyperparameter {section}.{name} = {value!r} is not allowed: {allowed}.",
                        hint=f"Fix {section}.{name} in the hyperparameter file (editor/hparams/*.yaml).",
                        details={"field": f"{section}.{name}", "value": value, "allowed": allowed})


def check_fields(obj, section: str) -> None:
    """Literal fields hold one of their values; numeric fields hold numbers of their type;
    ``metadata["min"]``/``["max"]``/``["gt"]`` bound them."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        kind = hints[f.name]
        if typing.get_origin(kind) is typing.Literal:
            choices = typing.get_args(kind)
            if value not in choices:
                raise fail(section, f.name, value, "one of " + ", ".join(map(repr, choices)))
            continue
        if kind in (int, float):
            if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and not isinstance(value, int)):
                raise fail(section, f.name, value, f"a{'n integer' if kind is int else ' number'}")
            lo, hi, gt = f.metadata.get("min"), f.metadata.get("max"), f.metadata.get("gt")
            if lo is not None and value < lo:
                raise fail(section, f.name, value, f"a number >= {lo}")
            if hi is not None and value > hi:
                raise fail(section, f.name, value, f"a number <= {hi}")
            if gt is not None and value <= gt:
                raise fail(section, f.name, value, f"a number > {gt}")
        if kind == list[int]:
            if not isinstance(value, list | tuple) or not value or \
                    not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in value):
                raise fail(section, f.name, value, "a non-empty list of layer indices (integers >= 0)")
            if len(set(value)) != len(value):
                raise fail(section, f.name, value, "layer indices without repeats")


def coerce(cls, values: dict, section: str) -> dict:
    """YAML reads ``1.5e4`` (no sign in the exponent) as a string: convert numbers by field type;
    an unknown field is an error naming the known ones."""
    hints = typing.get_type_hints(cls)
    out = dict(values)
    for k, v in values.items():
        if k not in hints:
            raise fail(section, k, v, "a known field (" + ", ".join(f.name for f in dataclasses.fields(cls)) + ")")
        kind = hints[k]
        if isinstance(v, str) and kind in (float, int):
            try:
                out[k] = float(v) if kind is float else int(float(v))
            except ValueError:
                raise fail(section, k, v, "a number") from None
        elif isinstance(v, int) and not isinstance(v, bool) and kind is float:
            out[k] = float(v)
    return out


def field(default, help: str, **bounds):
    """A dataclass field with ``help`` text and optional bounds (min, max, gt)."""
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata={"help": help, **bounds})
    return dataclasses.field(default=default, metadata={"help": help, **bounds})
