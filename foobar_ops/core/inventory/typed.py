"""Typed values for the free-form parts of an inventory (stack vars, host vars): the layer that
knows what a key means (the stack) declares its type here, and the loader checks it when the
inventory is read, so a value that reaches a command, a config file, SQL or a path is of its
type before anything uses it. A check takes the value and the parse context and returns the value,
or raises the context's InventoryError naming the file, the host, the key and the value.

    PORT = typed.whole(1, 65535)
    STACK = {"ports": typed.mapping_of({"http": PORT}), "domain": typed.dns_name()}
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from ..secrets import Secret
from .context import Ctx
from .values import kind, suggest

Check = Callable[[Any, Ctx], Any]
#: A check per key; keys a spec does not name are left alone unless the mapping is closed.
Spec = Mapping[str, Check]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")

__all__ = [
    "Check",
    "Spec",
    "check_tree",
    "choice",
    "dns_name",
    "mapping_of",
    "number",
    "plain_path",
    "secret",
    "switch",
    "word",
    "whole",
]


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def whole(low: int, high: int) -> Check:
    """A whole number within [low, high] (true/false are not numbers)."""

    def check(value: Any, ctx: Ctx) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ctx.err(f"must be a whole number from {low} to {high}, not {_shown(value)}")
        return value

    return check


def number(low: float, high: float, above_low: bool = False) -> Check:
    """A finite number within [low, high] ((low, high] with above_low)."""

    def check(value: Any, ctx: Ctx) -> float:
        ok = (
            not isinstance(value, bool)
            and isinstance(value, (int, float))
            and math.isfinite(value)
            and (low < value if above_low else low <= value)
            and value <= high
        )
        if not ok:
            span = f"above {low:g} and at most {high:g}" if above_low else f"from {low:g} to {high:g}"
            raise ctx.err(f"must be a finite number {span}, not {_shown(value)}")
        return value

    return check


def switch() -> Check:
    """true or false."""

    def check(value: Any, ctx: Ctx) -> bool:
        if not isinstance(value, bool):
            raise ctx.err(f"must be true or false, not {_shown(value)}")
        return value

    return check


def choice(*options: str) -> Check:
    """One of the options."""

    def check(value: Any, ctx: Ctx) -> str:
        if value not in options:
            raise ctx.err(f"must be one of {', '.join(options)}, not {_shown(value)}")
        return value

    return check


def word(pattern: str, hint: str, numbers: bool = False) -> Check:
    """Text that matches pattern in full (a number too when numbers: it is used as text).

    pattern: the regular expression.
    hint: what the text may hold, for the message.
    numbers: a whole number is allowed as well.
    """
    compiled = re.compile(pattern)

    def check(value: Any, ctx: Ctx) -> Any:
        ok = isinstance(value, str) or (numbers and isinstance(value, int) and not isinstance(value, bool))
        if not ok or not compiled.fullmatch(str(value)):
            raise ctx.err(f"must be {hint}, not {_shown(value)}")
        return value

    return check


def dns_name() -> Check:
    """A DNS name (letters, digits and '-' in dot-separated labels), not an IP address."""

    def check(value: Any, ctx: Ctx) -> str:
        labels = value.rstrip(".").split(".") if isinstance(value, str) else []
        if (
            labels
            and len(value) <= 253
            and all(_LABEL.fullmatch(label) for label in labels)
            and not labels[-1].isdigit()
        ):
            return value
        raise ctx.err(f"must be a DNS name such as foobar.com, not {_shown(value)}")

    return check


def plain_path() -> Check:
    """A file path without control characters (no newline can split a command or a file)."""

    def check(value: Any, ctx: Ctx) -> str:
        if not isinstance(value, str) or not value.strip() or _CONTROL.search(value):
            raise ctx.err(f"must be a path without control characters, not {_shown(value)}")
        return value

    return check


def secret() -> Check:
    """A secret reference (the loader has made it a Secret already)."""

    def check(value: Any, ctx: Ctx) -> Secret:
        if not isinstance(value, Secret):
            raise ctx.err("must be a secret reference such as env:NAME or file:PATH")
        return value

    return check


def mapping_of(spec: Spec, closed: bool = True) -> Check:
    """A mapping whose keys are checked by spec; with closed, a key spec does not name is refused."""

    def check(value: Any, ctx: Ctx) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ctx.err(f"must be a mapping, not {kind(value)}")
        return check_tree(value, spec, ctx, closed)

    return check


def check_tree(data: Mapping[Any, Any], spec: Spec, ctx: Ctx, closed: bool = False) -> dict[Any, Any]:
    """Check every key of data that spec names (null counts as absent); return the checked mapping.

    data: the mapping (stack vars, a host's merged vars).
    spec: key -> check.
    ctx: the context of data (its prefix ends with data's own key).
    closed: refuse keys that spec does not name.
    """
    out = dict(data)
    for key, value in data.items():
        if key not in spec:
            if closed:
                raise ctx.err(f"unknown key '{key}'{suggest(key, spec)}; known keys: {', '.join(spec)}", key)
            continue
        if value is not None:
            out[key] = spec[key](value, ctx.at(key))
    return out
