"""Secret references (env:NAME, file:PATH) resolved lazily and never printed.

A Secret shows only its reference (repr) or a mask (str); its value comes out
through reveal() alone. Every revealed value is remembered so that mask_known()
can scrub it from logs and command output.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from .errors import SecretError, SecretTooShort

MASK = "********"
#: The shortest secret value foobar_ops accepts: a shorter one cannot be masked safely (every
#: occurrence of a one-letter value in ordinary text would be masked, and the masks would show it).
MIN_LENGTH = 6
SCHEMES = ("env", "file")
SECRET_KEY_PATTERN = re.compile(r"password|passwd|secret|token|api[_-]?key|private[_-]?key", re.IGNORECASE)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_UNSET = object()
#: user:PASSWORD@ in a URL (a database URL given on the command line)
_URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s'\"]*:)([^@\s'\"]+)(@)")

_known_values: set[str] = set()
_known_lock = threading.Lock()


def is_secret_ref(value: object) -> bool:
    """Tell whether value is a string in secret-reference form (env:/file:).

    value: any object; only strings starting with 'env:' or 'file:' qualify.
    """
    return isinstance(value, str) and value.startswith(("env:", "file:"))


class Secret:
    """A reference to a secret value held in an env variable or a file."""

    __slots__ = ("ref", "scheme", "target", "_base_dir", "_value", "_lock")

    def __init__(self, ref: str, base_dir: str | Path | None = None) -> None:
        """Validate the reference; the value is read on first reveal().

        ref: 'env:NAME' or 'file:PATH'.
        base_dir: directory that a relative file PATH is resolved against
            (default: the current directory).
        """
        scheme, target = _split_ref(ref)
        self.ref = ref
        self.scheme = scheme
        self._base_dir = base_dir
        self.target: str | Path = target
        if scheme == "file":
            self.target = _expand_path(target, base_dir)
        self._value: object = _UNSET
        self._lock = threading.Lock()

    @classmethod
    def parse(cls, ref: str, base_dir: str | Path | None = None) -> Secret:
        """Build a Secret from a reference string, raising SecretError if bad.

        ref: 'env:NAME' or 'file:PATH'.
        base_dir: directory that a relative file PATH is resolved against.
        """
        return cls(ref, base_dir)

    @property
    def revealed(self) -> bool:
        """Whether the value has already been resolved and cached."""
        return self._value is not _UNSET

    def reveal(self) -> str:
        """Return the secret value, resolving it once and caching it."""
        if self._value is _UNSET:
            with self._lock:
                if self._value is _UNSET:
                    self._value = self._resolve()
                    register(self)
        return self._value  # type: ignore[return-value]

    def _resolve(self) -> str:
        """Read the value from the environment or the file."""
        if self.scheme == "env":
            value = os.environ.get(str(self.target))
            if value is None:
                raise SecretError(
                    f"secret {self.ref}: environment variable {self.target} is not set; export it before running"
                )
            return check_maskable(value, f"secret {self.ref}")
        try:
            text = Path(self.target).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise SecretError(f"secret {self.ref}: cannot read file {self.target}: {reason}") from None
        return check_maskable(text[:-1] if text.endswith("\n") else text, f"secret {self.ref}")

    def __repr__(self) -> str:
        """Show the reference only, e.g. Secret('env:NAME')."""
        return f"Secret({self.ref!r})"

    def __str__(self) -> str:
        """Show a fixed mask, never the value."""
        return MASK

    def __format__(self, spec: str) -> str:
        """Format as the mask, whatever the format spec.

        spec: ignored.
        """
        return MASK

    def __eq__(self, other: object) -> bool:
        """Compare by reference string.

        other: another object.
        """
        if not isinstance(other, Secret):
            return NotImplemented
        return self.ref == other.ref

    def __hash__(self) -> int:
        """Hash by reference string."""
        return hash(("Secret", self.ref))

    def __copy__(self) -> Secret:
        """Return self: a Secret is immutable apart from its cache."""
        return self

    def __deepcopy__(self, memo: dict) -> Secret:
        """Return self: a Secret is immutable apart from its cache.

        memo: the deepcopy memo (unused).
        """
        return self

    def __reduce__(self) -> tuple:
        """Pickle the reference only, never the value."""
        return (Secret, (self.ref, self._base_dir))


def _split_ref(ref: object) -> tuple[str, str]:
    """Split and check a reference, returning (scheme, name-or-path).

    ref: the reference string.
    """
    if not isinstance(ref, str):
        raise SecretError(
            f"a secret reference must be a string such as env:NAME or file:PATH, not {type(ref).__name__}"
        )
    match = _SCHEME.match(ref)
    if not match:
        raise SecretError("value is not a secret reference; use env:NAME or file:PATH")
    scheme, target = match.group(1), ref[match.end() :].strip()
    if scheme not in SCHEMES:
        raise SecretError(f"secret reference scheme '{scheme}:' is unknown; use env:NAME or file:PATH")
    if not target:
        raise SecretError(f"secret reference '{ref}' has an empty {_what(scheme)}")
    if scheme == "env" and not _ENV_NAME.match(target):
        raise SecretError(f"secret reference '{ref}': '{target}' is not a valid environment variable name")
    return scheme, target


def _what(scheme: str) -> str:
    """Name the part after the scheme, for messages.

    scheme: 'env' or 'file'.
    """
    return "variable name" if scheme == "env" else "path"


def _expand_path(raw: str, base_dir: str | Path | None) -> Path:
    """Expand ~ and $VAR in raw and anchor it at base_dir when relative.

    raw: the path text after 'file:'.
    base_dir: directory for relative paths (default: current directory).
    """
    path = Path(os.path.expanduser(os.path.expandvars(raw)))
    if path.is_absolute():
        return path
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    return Path(os.path.abspath(base / path))


def check_maskable(value: str, what: str) -> str:
    """Return value when it can be masked safely; else a SecretError naming what it is (never the
    value). An empty value has nothing to hide and passes.

    value: the secret value.
    what: what it is, for the message (e.g. "secret env:NAME", "parameter 'token'").
    """
    if 0 < len(value) < MIN_LENGTH:
        raise SecretTooShort(
            f"{what}: the value is too short to be masked safely ({len(value)} character(s); "
            f"at least {MIN_LENGTH}): use a longer secret"
        )
    return value


def remember(value: str) -> None:
    """Mask a secret value from now on, as a revealed Secret's is (a literal found where a reference
    belongs: it is refused, and must never be shown either).

    value: the value; ignored when too short to be masked safely or empty.
    """
    if isinstance(value, str) and len(value) >= MIN_LENGTH:
        with _known_lock:
            _known_values.add(value)


def register(secret: Secret) -> None:
    """Remember a revealed secret's value so mask_known() can hide it.

    secret: a Secret; ignored unless it has been revealed and is non-empty.
    """
    if isinstance(secret._value, str):
        remember(secret._value)  # revealed: checked to be long enough, or empty


def _replace_all(text: str, values: Iterable[str]) -> str:
    """Replace each non-empty value in text with the mask, longest first.

    text: the text to scrub (None and '' are returned as they are).
    values: the values to hide.
    """
    if not text:
        return text
    for value in sorted({form for v in values if v for form in _forms(v)}, key=len, reverse=True):
        text = text.replace(value, MASK)
    return text


@lru_cache(maxsize=1024)
def _forms(value: str) -> frozenset[str]:
    """A value as it is, and as it reads escaped in JSON or in a repr() (a traceback, a dict shown):
    a value with a quote or a backslash must not escape masking by being escaped. Kept once worked
    out: every streamed line and every string of a notebook is masked.

    value: the secret value.
    """
    return frozenset({value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1], repr(value)[1:-1]})


def mask_known(text: str) -> str:
    """Hide every secret value revealed so far in this process.

    text: the text to scrub.
    """
    with _known_lock:
        values = list(_known_values)
    return _replace_all(text, values)


def holds_known(data: bytes) -> bool:
    """True when bytes hold a secret value revealed so far in this process, in any of the forms
    mask_known hides (searched in the bytes themselves: a large binary file is not decoded).

    data: the bytes, e.g. a file's content.
    """
    with _known_lock:
        values = list(_known_values)
    return any(encoded(form) in data for v in values if v for form in _forms(v))


def encoded(text: str) -> bytes:
    """A value as bytes: UTF-8, and a byte that is not (read from the environment or a file with
    surrogateescape) as that byte itself."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def mask_command(command: str) -> str:
    """Return a command line as it may be recorded (the journal, a run lock's details): every known
    secret masked, and a password written into a URL (`mysql://user:PASSWORD@host/db`).

    command: the command line.
    """
    return _URL_PASSWORD.sub(lambda m: m.group(1) + MASK + m.group(3), mask_known(command))


def mask_deep(value):
    """Return a copy of a JSON-like structure with every known secret masked in every string
    (keys included), so that escaping by a later json.dumps cannot hide a value from masking.

    value: dicts, lists, tuples, strings and scalars.
    """
    if isinstance(value, str):
        return mask_known(value)
    if isinstance(value, dict):
        return {mask_deep(k) if isinstance(k, str) else k: mask_deep(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_deep(v) for v in value]
    return value
