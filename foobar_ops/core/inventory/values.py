"""Leaf value checks for the inventory: names, ports, users, paths, secrets.

Each check takes a parsed YAML value and the parse context (the Ctx of
foobar_ops.inventory.schema) and returns the normalised value, or raises the
context's InventoryError. Secret literals are refused without being echoed.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import SecretError
from ..secrets import SECRET_KEY_PATTERN, Secret, is_secret_ref
from .context import Ctx

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
NAME_HINT = "use letters, digits, '.', '_' or '-', starting with a letter or digit"
_DNS_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_JUMP_RE = re.compile(r"^(?:[^@\s]+@)?(?:\[[0-9A-Fa-f:.]+\]|[^@\s:\[\]]+)(?::(\d+))?$")
_USER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*\$?$")
_ENV_LEFT = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


_NUMERIC_SECRET_KEY = re.compile(r"(password|passwd|secret|token|api[_-]?key|private[_-]?key|pin)$", re.I)


def secretize(value: Any, ctx: Ctx, secret_key: bool = False) -> Any:
    """Copy value, turning references under secret-named keys into Secrets.

    value: a free-form YAML value.
    ctx: its context (prefix ends with its own key).
    secret_key: whether value sits under a key that names a secret.
    """
    if isinstance(value, dict):
        return {
            k: secretize(v, ctx.at(k), secret_key or (isinstance(k, str) and bool(SECRET_KEY_PATTERN.search(k))))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [secretize(v, ctx, secret_key) for v in value]
    if secret_key and isinstance(value, str) and value.strip():
        return secret(value, ctx)
    if (
        secret_key
        and isinstance(value, (int, float))
        and not isinstance(value, bool)
        and _NUMERIC_SECRET_KEY.search(ctx.prefix.rstrip(".").rsplit(".", 1)[-1])
    ):
        return secret(value, ctx)  # `db_password: 123456` is a literal; `password_min_length: 12` is not
    return value


def secret(value: Any, ctx: Ctx) -> Secret:
    """Turn a reference into a Secret; refuse literals without echoing them.

    value: the value that must be an env:/file: reference.
    ctx: its context (prefix ends with its own key).
    """
    leaf = ctx.prefix.rstrip(".").rsplit(".", 1)[-1]
    if not is_secret_ref(value):
        raise ctx.err(
            f"key '{leaf}' holds a literal secret; use a reference "
            "such as env:NAME or file:PATH (or rename the key if "
            "it is not a secret)"
        )
    try:
        return Secret.parse(value, ctx.base_dir)
    except SecretError as exc:
        raise ctx.err(str(exc)) from None


def address(raw: dict, ctx: Ctx) -> str:
    """Return the host's address, checked as an IP address or DNS name.

    raw: the host mapping.
    ctx: the host's context.
    """
    if "address" not in raw:
        raise ctx.err("missing required key 'address'; set it to the host's IP address or DNS name", "address")
    value = raw["address"]
    if not isinstance(value, str) or not value.strip():
        what = "empty" if value in (None, "") else kind(value)
        raise ctx.err(f"address must be an IP address or DNS name, not {what}", "address")
    value = value.strip()
    if _is_ip(value) or is_dns_name(value):
        return value
    raise ctx.err(f"address '{value}' is neither a valid IP address nor a DNS name", "address")


def is_dns_name(text: str) -> bool:
    """Tell whether text is a DNS name: letters, digits and '-' in dot-separated labels, at most 253
    characters, the last label not all digits (so an IP address is not one).

    text: the candidate name.
    """
    labels = text.rstrip(".").split(".")
    return len(text) <= 253 and not labels[-1].isdigit() and all(_DNS_LABEL.match(label) for label in labels)


def _is_ip(text: str) -> bool:
    """Tell whether text is an IPv4 or IPv6 address.

    text: the candidate address.
    """
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def port(value: Any, ctx: Ctx) -> int:
    """Check a TCP port number (1..65535).

    value: the YAML value.
    ctx: its context.
    """
    return integer(value, ctx, 1, 65535)


def integer(value: Any, ctx: Ctx, low: int, high: int = 2**31) -> int:
    """Check an integer within [low, high].

    value: the YAML value.
    ctx: its context.
    low: smallest allowed value.
    high: largest allowed value.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise ctx.err(f"must be an integer, not {kind(value)}")
    if not low <= value <= high:
        raise ctx.err(f"{value} is out of range; use a value from {low} to {high}")
    return value


def user(value: Any, ctx: Ctx) -> str:
    """Check a login user name.

    value: the YAML value.
    ctx: its context.
    """
    if not isinstance(value, str) or not _USER_RE.match(value):
        raise ctx.err("must be a login name such as 'ops' (letters, digits, '_', '.', '-')")
    return value


def mapping(value: Any, ctx: Ctx) -> dict:
    """Return value when it is a mapping, else raise naming what it is instead.

    value: the YAML value.
    ctx: its context.
    """
    if not isinstance(value, dict):
        raise ctx.err(f"must be a mapping, not {kind(value)}")
    return value


def var_mapping(value: Any, ctx: Ctx) -> dict[str, Any]:
    """Check a free-form vars mapping and convert its secret references.

    value: the YAML value.
    ctx: its context.
    """
    return secretize(mapping(value, ctx), ctx)


def name_list(value: Any, ctx: Ctx, what: str) -> list[str]:
    """Check a list of names (roles, groups, hosts); null means empty.

    value: the YAML value.
    ctx: its context.
    what: what the names are, for messages.
    """
    if value is None:
        return []
    if not isinstance(value, list):
        raise ctx.err(f"must be a list of {what} names, not {kind(value)}")
    for item in value:
        if not isinstance(item, str) or not NAME_RE.match(item):
            raise ctx.err(f"{what} name {item!r} is invalid; {NAME_HINT}")
    return list(value)


def roles(value: Any, ctx: Ctx) -> tuple[str, ...]:
    """Check a host's roles against the role names the context allows.

    value: the YAML value.
    ctx: the host's context.
    """
    names = name_list(value, ctx.at("roles"), "role")
    known = ctx.known_roles
    for role in names:
        if known is not None and role not in known:
            raise ctx.err(
                f"role '{role}' does not exist{suggest(role, known)} (known roles: {', '.join(sorted(known))})", "roles"
            )
    return tuple(dict.fromkeys(names))


def file_path(value: Any, ctx: Ctx) -> Path:
    """Expand ~ and $VAR in a path and anchor it at the inventory's dir.

    value: the YAML value.
    ctx: its context.
    """
    if not isinstance(value, str) or not value.strip():
        raise ctx.err("must be a non-empty file path")
    expanded = os.path.expanduser(os.path.expandvars(value))
    left = _ENV_LEFT.search(expanded)
    if left:
        raise ctx.err(
            f"environment variable {left.group(1)} used in the path is not set; export it or write the path out"
        )
    return Path(os.path.normpath(ctx.base_dir / expanded))


def seconds(value: Any, ctx: Ctx) -> float:
    """Check a positive number of seconds.

    value: the YAML value.
    ctx: its context.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ctx.err("must be a number of seconds greater than 0")
    return float(value)


def jump(value: Any, ctx: Ctx) -> str:
    """Check a proxy_jump: a host name or [user@]host[:port].

    value: the YAML value.
    ctx: its context.
    """
    match = _JUMP_RE.match(value) if isinstance(value, str) else None
    if not match or (match.group(1) and not 0 < int(match.group(1)) < 65536):
        raise ctx.err("must be an inventory host name or [user@]host[:port]")
    return value


def suggest(word: Any, choices: Iterable[Any]) -> str:
    """Return " (did you mean 'x'?)" for the closest choice, or ''.

    word: the misspelt name.
    choices: the valid names.
    """
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def kind(value: Any) -> str:
    """Describe the YAML type of value for messages.

    value: any parsed YAML value.
    """
    kinds = {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        type(None): "null",
    }
    return kinds.get(type(value), type(value).__name__)
