"""Checks that the Airflow internals a wrapper relies on are still there: a function's
parameters, an attrs class's fields, lines of a function's source. Each check returns what
differs, in words for the component's log (empty when all is there); a wrapper installs only
when its checks all come back empty."""

from __future__ import annotations

import inspect
from typing import Any


def takes(name: str, function: Any, parameters: tuple[str, ...]) -> list[str]:
    """`function` takes exactly `parameters` (its first, `self`, included)."""
    if function is None or tuple(inspect.signature(function).parameters) != parameters:
        return [f"{name} no longer takes {', '.join(parameters[1:])}"]
    return []


def has_fields(name: str, cls: Any, fields: tuple[str, ...]) -> list[str]:
    """The attrs class `cls` declares each of `fields` (what `attrs.fields(cls)` lists)."""
    declared = {field.name for field in getattr(cls, "__attrs_attrs__", ())}
    if missing := [field for field in fields if field not in declared]:
        return [f"{name} has no {', '.join(missing)}"]
    return []


def has_lines(name: str, function: Any, lines: tuple[str, ...]) -> list[str]:
    """`function`'s source has each of `lines`; a function with no source to read has none."""
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):  # missing, built in, or no file
        source = ""
    return [f"{name} no longer has `{line}`" for line in lines if line not in source]
