"""The type check the operations settings dataclasses (alarms, scaling, deployment) run on construction."""

from __future__ import annotations

import typing
from dataclasses import fields, is_dataclass


def check_setting_types(settings: object) -> None:
    """Refuse values of the wrong type (e.g. the text "0.1" from `-c key=0.1`) with the setting's name.

    The settings dataclasses hold numbers, text and None only; an int is accepted where a float is declared.
    """
    if not is_dataclass(settings):
        raise TypeError(f"{settings!r} is not a settings dataclass")
    hints = typing.get_type_hints(type(settings))
    for field in fields(settings):
        value = getattr(settings, field.name)
        allowed = typing.get_args(hints[field.name]) or (hints[field.name],)
        accepted = tuple({float: (int, float)}.get(kind, (kind,)) for kind in allowed)
        if isinstance(value, bool) or not isinstance(value, tuple(t for group in accepted for t in group)):
            names = " or ".join("empty" if kind is type(None) else kind.__name__ for kind in allowed)
            raise ValueError(f"{field.name}={value!r}: must be {names}, not {type(value).__name__}")
