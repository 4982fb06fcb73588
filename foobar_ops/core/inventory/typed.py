"""Typed values for the free-form parts of an inventory (stack vars, host vars): the layer that
knows what a key means (the stack) declares its type here, and the loader checks it when the
inventory is read, so a value that reaches a command, a config file, SQL or a path is of its
type before anything uses it. A check takes the value and the parse context and returns the value,
or raises the context's InventoryError naming the file, the host, the key and the value.

    PORT = typed.whole(1, 65535)
    STACK = {"ports": typed.mapping_of({"http": PORT}), "domain": typed.dns_name()}
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from ..secrets import Secret
from .context import Ctx
from .values import is_dns_name, kind, suggest

Check = Callable[[Any, Ctx], Any]
#: A check per key; keys a spec does not name are left alone unless the mapping is closed.
Spec = Mapping[str, Check]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

__all__ = [
    "Check",
    "Spec",
    "check_tree",
    "choice",
    "dns_name",
    "ip_network",
    "ipv4_address",
    "list_of",
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


def _refusing(ok: Callable[[Any], bool], wanted: str, show: bool = True) -> Check:
    """A check that returns the value when ok(value), else refuses it: "must be WANTED, not VALUE".

    ok: whether a value is of the type.
    wanted: what the value must be, for the message.
    show: name the value in the message (never for a secret).
    """

    def check(value: Any, ctx: Ctx) -> Any:
        if not ok(value):
            raise ctx.err(f"must be {wanted}, not {_shown(value)}" if show else f"must be {wanted}")
        return value

    return check


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def whole(low: int, high: int) -> Check:
    """A whole number within [low, high] (true/false are not numbers)."""
    return _refusing(lambda v: _is_whole(v) and low <= v <= high, f"a whole number from {low} to {high}")


def number(low: float, high: float, above_low: bool = False) -> Check:
    """A finite number within [low, high] ((low, high] with above_low)."""
    span = f"above {low:g} and at most {high:g}" if above_low else f"from {low:g} to {high:g}"

    def ok(v: Any) -> bool:
        # within finite bounds is finite: nan and inf fail a comparison (math.isfinite would
        # overflow on a whole number too large for a float)
        return (_is_whole(v) or isinstance(v, float)) and (low < v if above_low else low <= v) and v <= high

    return _refusing(ok, f"a finite number {span}")


def switch() -> Check:
    """true or false."""
    return _refusing(lambda v: isinstance(v, bool), "true or false")


def choice(*options: str) -> Check:
    """One of the options."""
    return _refusing(lambda v: v in options, f"one of {', '.join(options)}")


def word(pattern: str, hint: str, numbers: bool = False) -> Check:
    """Text that matches pattern in full (a number too when numbers: it is used as text).

    pattern: the regular expression.
    hint: what the text may hold, for the message.
    numbers: a whole number is allowed as well.
    """
    compiled = re.compile(pattern)
    return _refusing(
        lambda v: (isinstance(v, str) or (numbers and _is_whole(v))) and compiled.fullmatch(str(v)) is not None, hint
    )


def dns_name() -> Check:
    """A DNS name (letters, digits and '-' in dot-separated labels), not an IP address."""
    return _refusing(lambda v: isinstance(v, str) and is_dns_name(v), "a DNS name such as foobar.com")


def ipv4_address() -> Check:
    """An IPv4 address in dotted form (a VRRP floating address, a peer's unicast address)."""

    def ok(v: Any) -> bool:
        try:
            return isinstance(v, str) and str(ipaddress.IPv4Address(v)) == v
        except ValueError:
            return False

    return _refusing(ok, "an IPv4 address such as 10.77.0.50")


def ip_network() -> Check:
    """An IP address or network (IPv4 or IPv6, "10.77.0.1", "10.77.0.0/24"), with no host bits set
    beyond its prefix and no IPv6 zone ("%eth0"): a firewall's source."""

    def check(value: Any, ctx: Ctx) -> Any:
        wanted = "an IP address or network such as 10.77.0.1 or 10.77.0.0/24"
        if not isinstance(value, str) or "%" in value:
            raise ctx.err(f"must be {wanted}, not {_shown(value)}")
        try:
            ipaddress.ip_network(value, strict=True)
        except ValueError:
            try:
                meant = ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise ctx.err(f"must be {wanted}, not {_shown(value)}") from None
            raise ctx.err(f"{value!r} has host bits set beyond its prefix: did you mean {str(meant)!r}?") from None
        return value

    return check


def list_of(check: Check, low: int = 0, high: int = 1000) -> Check:
    """A list of `low` to `high` items, each checked by `check` (the message names the item)."""

    def checked(value: Any, ctx: Ctx) -> list[Any]:
        if not isinstance(value, list) or not low <= len(value) <= high:
            raise ctx.err(f"must be a list of {low} to {high} items, not {_shown(value)}")
        where = ctx.prefix.rstrip(".")
        return [check(item, replace(ctx, prefix=f"{where}[{n}].")) for n, item in enumerate(value)]

    return checked


def plain_path() -> Check:
    """A file path without control characters (no newline can split a command or a file)."""
    return _refusing(
        lambda v: isinstance(v, str) and bool(v.strip()) and not _CONTROL.search(v), "a path without control characters"
    )


def secret() -> Check:
    """A secret reference (the loader has made it a Secret already); the value is never shown."""
    return _refusing(lambda v: isinstance(v, Secret), "a secret reference such as env:NAME or file:PATH", show=False)


def mapping_of(spec: Spec, closed: bool = True, required: tuple[str, ...] = ()) -> Check:
    """A mapping whose keys are checked by spec; with closed, a key spec does not name is refused;
    a key of `required` that is missing (or null) is refused by name."""

    def check(value: Any, ctx: Ctx) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ctx.err(f"must be a mapping, not {kind(value)}")
        for key in required:
            if value.get(key) is None:
                raise ctx.err(f"key '{key}' is required", key)
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
