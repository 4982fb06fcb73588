"""Runbook parameters, declared once in the runbook's `parameters` cell as annotated assignments:

    inventory: str = "inventories/lab.yml"  # the inventory file
    server: str = ...  # required (the value `...`): the server to act on
    action = "drain"  # type: Literal["drain","maint"] choices, as a type comment
    requests: int = 20  # how many requests to verify with
    token: SecretRef = "env:DEMO_TOKEN"  # a secret, passed by reference only
    hosts: Optional[str] = None  # None allowed

Every line is one papermill reads too (`papermill --help-notebook` lists each parameter with its
type, default and help, and passes them without an unknown-parameter warning): a type papermill
cannot read (a Literal's quoted values, `X | None`) is not allowed as an annotation; choices go in a
type comment, written without spaces.

The runner reads the declarations from the source (before any cell runs) and the notebook checks
them again in its first cell (`fo.runbook(globals(), NAME)`, from the same source; from its own
`__annotations__` when the runbook's source is not found): an unknown name, a missing required
one, or a wrong type or value is refused, naming it, with the same message.
"""

from __future__ import annotations

import ast
import difflib
import io
import math
import re
import tokenize
import types
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml

from ..core import safeyaml
from ..core.errors import RunbookParameterError
from ..core.secrets import is_secret_ref

#: Names an IPython kernel puts in a notebook's namespace before any cell runs.
_KERNEL_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open", "display"}
#: Parameters the runner sets itself (declared by runbooks that use them).
RUNNER_SET = ("run_id", "output_notebook", "lock_wait")


class SecretRef(str):
    """A runbook parameter that holds a secret by reference (env:NAME or file:PATH), never a value."""


@dataclass(frozen=True)
class Param:
    """One declared runbook parameter.

    name: its name.
    kind: str, int, float, bool, list, dict or secret.
    default: its value when none is given (ignored when required).
    required: it has no default.
    choices: the allowed values (a Literal annotation), or None.
    optional: None is allowed.
    help: the comment on its line.
    """

    name: str
    kind: str
    default: Any = None
    required: bool = False
    choices: tuple[Any, ...] | None = None
    optional: bool = False
    help: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.kind + (" | None" if self.optional else ""),
            "default": self.default,
            "required": self.required,
            "choices": list(self.choices) if self.choices else None,
            "help": self.help,
        }

    def check(self, value: Any) -> Any:
        """Return the value if it fits the declaration; raise RunbookParameterError naming it."""
        if value is None and self.optional:
            return None
        ok = {
            "str": isinstance(value, str),
            "int": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, (int, float)) and not isinstance(value, bool),
            "bool": isinstance(value, bool),
            "list": isinstance(value, list),
            "dict": isinstance(value, dict),
            "secret": is_secret_ref(value),
        }[self.kind]
        if not ok:
            if self.kind == "secret":  # never echo what may be the secret itself
                raise RunbookParameterError(
                    f"parameter {self.name!r} must be a secret reference (env:NAME or file:PATH), not a value"
                )
            wanted = self.kind + (" or None" if self.optional else "")
            raise RunbookParameterError(
                f"parameter {self.name!r} must be {wanted}, not {type(value).__name__} {value!r}"
            )
        if self.kind == "float" and not math.isfinite(value):
            raise RunbookParameterError(f"parameter {self.name!r} must be a finite number, not {value!r}")
        if self.choices is not None and value not in self.choices:
            raise RunbookParameterError(
                f"parameter {self.name!r} must be one of {', '.join(map(repr, self.choices))}, not {value!r}"
            )
        return float(value) if self.kind == "float" else value

    def parse_text(self, text: str) -> Any:
        """Turn a command-line value (-p NAME VALUE) into the declared type, as YAML reads it."""
        if self.kind in ("str", "secret"):
            return text
        try:
            return safeyaml.load(text)
        except safeyaml.YAMLRefused as err:
            raise RunbookParameterError(f"parameter {self.name!r}: value refused: {err}") from None
        except yaml.YAMLError:
            return text


def yaml_values(files: Iterable[Path], texts: Iterable[str]) -> dict[str, Any]:
    """Return the parameters given as YAML (-f FILE, then -y TEXT; later ones win), each a mapping;
    a file that cannot be read, bad YAML, or YAML refused (aliases that expand too much or loop,
    nesting too deep, a number that is not finite) is a RunbookParameterError naming it.

    files: YAML files (-f).
    texts: YAML texts (-y).
    """
    sources: list[tuple[str, str]] = []
    for path in files:
        try:
            sources.append((f"-f {path}", Path(path).read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise RunbookParameterError(f"-f {path}: no such file") from None
        except (OSError, UnicodeDecodeError) as err:
            why = getattr(err, "strerror", None) or str(err)
            raise RunbookParameterError(f"-f {path}: cannot be read ({why})") from None
    sources += [(f"-y {_short(text)}", text) for text in texts]
    given: dict[str, Any] = {}
    for label, text in sources:
        try:
            loaded = safeyaml.load(text)
        except safeyaml.YAMLRefused as err:
            raise RunbookParameterError(f"{label}: refused: {err}") from None
        except yaml.YAMLError as err:
            raise RunbookParameterError(f"{label}: {safeyaml.describe(err)}") from None
        if loaded is None:
            continue
        if not isinstance(loaded, dict):
            raise RunbookParameterError(
                f"{label}: runbook parameters must be a YAML mapping (NAME: VALUE), not {type(loaded).__name__}"
            )
        given.update({str(k): v for k, v in loaded.items()})
    return given


def _short(text: str) -> str:
    """text as a message shows it: repr, cut at 60 characters."""
    shown = repr(text)
    return shown if len(shown) <= 60 else shown[:57] + "..."


_KINDS = {
    "str": "str",
    "int": "int",
    "float": "float",
    "bool": "bool",
    "list": "list",
    "dict": "dict",
    "SecretRef": "secret",
}


def _annotation(node: ast.expr, name: str) -> tuple[str, tuple[Any, ...] | None, bool]:
    """Return (kind, choices, optional) from an annotation's syntax."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        for side, other in ((node.left, node.right), (node.right, node.left)):
            if isinstance(other, ast.Constant) and other.value is None:
                kind, choices, _ = _annotation(side, name)
                return kind, choices, True
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "Optional":
        kind, choices, _ = _annotation(node.slice, name)
        return kind, choices, True
    if isinstance(node, ast.Name) and node.id in _KINDS:
        return _KINDS[node.id], None, False
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "Literal":
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        values = tuple(ast.literal_eval(i) for i in items)
        kinds = {type(v).__name__ for v in values}
        return (kinds.pop() if len(kinds) == 1 else "str"), values, False
    raise RunbookParameterError(
        f"parameter {name!r}: its type {ast.unparse(node)!r} is not one a runbook "
        f"takes ({', '.join(_KINDS)}, Literal[...], or one of those | None)"
    )


def _comments(source: str) -> dict[int, str]:
    out = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                out[tok.start[0]] = tok.string.lstrip("#").strip()
    except (tokenize.TokenError, IndentationError):
        pass
    return out


def declared(source: str) -> list[Param]:
    """Return the parameters a `parameters` cell declares; refuse an undeclared type.

    source: the cell's source. A parameter is `NAME: TYPE = VALUE  # help`, or `NAME = VALUE  #
    type: TYPE help` (a type comment, for choices: Literal[...] written without spaces); the value
    `...` makes it required.
    """
    try:
        tree = ast.parse(source, type_comments=True)
    except SyntaxError as err:
        raise RunbookParameterError(f"the parameters cell does not parse: {err}") from None
    comments = _comments(source)
    out = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.Expr)):
            continue
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            typed = (node.type_comment or "").split()
            if not typed:
                raise RunbookParameterError(
                    f"parameter {name} has no type: declare it as `NAME: TYPE = VALUE` "
                    "(or `NAME = VALUE  # type: TYPE help`)"
                )
            try:
                annotation = ast.parse(typed[0], mode="eval").body
            except SyntaxError:
                raise RunbookParameterError(
                    f"parameter {name!r}: its type comment {typed[0]!r} does not parse (write it without spaces)"
                ) from None
            help_text = " ".join(typed[1:])
            value: ast.expr | None = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            name, annotation, value = node.target.id, node.annotation, node.value
            help_text = comments.get(node.lineno, "")
            _papermill_readable(name, annotation)
        elif isinstance(node, ast.Assign):
            names = ", ".join(ast.unparse(t) for t in node.targets)
            raise RunbookParameterError(f"parameter {names} has no type: declare it as `NAME: TYPE = VALUE`")
        else:
            raise RunbookParameterError(f"the parameters cell may only declare parameters: {ast.unparse(node)!r}")
        kind, choices, optional = _annotation(annotation, name)
        if value is None:
            raise RunbookParameterError(
                f"parameter {name!r} has no value: give it a default, or `...` to make it required "
                "(papermill reads only assignments)"
            )
        required = isinstance(value, ast.Constant) and value.value is Ellipsis
        default = None
        if not required:
            try:
                default = ast.literal_eval(value)
            except ValueError:
                raise RunbookParameterError(f"parameter {name!r}: its default must be a literal value") from None
        out.append(Param(name, kind, default, required, choices, optional, help_text))
    return out


def _papermill_readable(name: str, annotation: ast.expr) -> None:
    """Refuse an annotation papermill cannot read (it would hide the parameter from `papermill
    --help-notebook` and warn when it is passed): only names, brackets and commas."""
    text = ast.unparse(annotation)
    if not re.fullmatch(r"\w[\w\[\],\s]*", text):
        raise RunbookParameterError(
            f"parameter {name!r}: papermill cannot read the annotation {text!r}: write Optional[X] for "
            "X | None, and Literal choices as a type comment (`NAME = VALUE  # type: Literal[...] help`)"
        )


def resolve(params: list[Param], given: dict[str, Any], texts: dict[str, str] | None = None) -> dict[str, Any]:
    """Return every parameter's value: given ones checked, command-line text parsed to its type,
    defaults for the rest; refuse an unknown name or a missing required one.

    params: the declarations.
    given: typed values (from YAML, or Python).
    texts: command-line values (-p NAME VALUE), parsed to each parameter's type.
    """
    by_name = {p.name: p for p in params}
    values: dict[str, Any] = {}
    for name, value in [*(texts or {}).items(), *given.items()]:
        if name not in by_name:
            close = difflib.get_close_matches(name, list(by_name), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise RunbookParameterError(
                f"unknown parameter {name!r}{hint}; this runbook takes: {', '.join(by_name) or 'none'}"
            )
        if texts and name in texts and name not in given:
            value = by_name[name].parse_text(value)
        values[name] = by_name[name].check(value)
    missing = [p.name for p in params if p.required and p.name not in values and p.name not in RUNNER_SET]
    if missing:
        raise RunbookParameterError(
            f"parameter(s) {', '.join(map(repr, missing))} required: give a value with -p NAME VALUE"
        )
    return {p.name: values.get(p.name, p.default) for p in params}


def _from_annotation(name: str, annotation: Any) -> Param:
    """A Param from a runtime annotation (the kernel's __annotations__)."""
    optional = False
    if isinstance(annotation, types.UnionType) or get_origin(annotation) in (types.UnionType, Union):
        args = [a for a in get_args(annotation) if a is not type(None)]
        optional, annotation = len(args) < len(get_args(annotation)), args[0]
    if get_origin(annotation) is Literal:
        choices = get_args(annotation)
        return Param(name, type(choices[0]).__name__, choices=choices, optional=optional)
    kind = "secret" if annotation is SecretRef else getattr(annotation, "__name__", str(annotation))
    if kind not in _KINDS.values():
        raise RunbookParameterError(f"parameter {name!r}: type {annotation!r} is not one a runbook takes")
    return Param(name, kind, optional=optional)


def check_parameters(
    namespace: dict[str, Any],
    spec: dict[str, tuple[type, ...]] | None = None,
    params: list[Param] | None = None,
    direct: bool = False,
) -> dict[str, Any]:
    """Check a runbook's parameters inside the notebook, right after its parameters cell; return
    them as a dict.

    namespace: the notebook's globals().
    spec: (older runbooks) name -> allowed types, instead of annotations.
    params: the declarations read from the runbook's source (what the runner checks with);
        default: the cell's own annotations.
    direct: run by papermill directly, whose command line guessed each value's type from its text
        (`-p run 123` an int, `-p test true` a string): each is read again as the runner reads the
        text of -p, as the declared type.
    Raises RunbookParameterError naming an unknown parameter (a typo such as `tset`), a missing
    one, or a value of the wrong type or not among the declared choices.
    """
    if params is not None:
        pass
    elif spec is not None:
        params = [_spec_param(name, types_) for name, types_ in spec.items()]
    else:
        params = [_from_annotation(n, a) for n, a in namespace.get("__annotations__", {}).items()]
    names = {p.name for p in params}
    unknown = sorted(
        n
        for n, v in namespace.items()
        if not n.startswith("_")
        and n not in names
        and n not in _KERNEL_NAMES
        and not callable(v)
        and not isinstance(v, types.ModuleType)
    )
    if unknown:
        by_name = [p.name for p in params]
        close = difflib.get_close_matches(unknown[0], by_name, n=1) if len(unknown) == 1 else []
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        if len(unknown) == 1:
            raise RunbookParameterError(
                f"unknown parameter {unknown[0]!r}{hint}; this runbook takes: {', '.join(by_name) or 'none'}"
            )
        raise RunbookParameterError(
            f"unknown parameter(s): {', '.join(unknown)} (this runbook takes: {', '.join(by_name) or 'none'})"
        )
    missing = [
        p.name
        for p in params
        if p.name not in RUNNER_SET and (p.name not in namespace or namespace[p.name] is Ellipsis)
    ]
    if missing:
        raise RunbookParameterError(
            f"parameter(s) {', '.join(map(repr, missing))} required: give a value with -p NAME VALUE"
        )
    if direct:
        return {p.name: p.check(_as_text_reads(p, namespace.get(p.name, p.default))) for p in params}
    return {p.name: p.check(namespace.get(p.name, p.default)) for p in params}


def _as_text_reads(p: Param, value: Any) -> Any:
    """A value papermill's command line typed from its text, as the runner reads that text."""
    if value is None or value is Ellipsis or isinstance(value, (list, dict)):
        return value
    if p.kind == "str" and isinstance(value, (bool, int, float)):
        return str(value)
    if isinstance(value, str) and p.kind in ("int", "float", "bool"):
        try:
            return p.parse_text(value)
        except RunbookParameterError:
            return value  # check() names it, as the runner would
    return value


def _spec_param(name: str, allowed: tuple[type, ...]) -> Param:
    kinds = [t for t in allowed if t is not type(None)]
    return Param(name, kinds[0].__name__ if kinds else "str", optional=type(None) in allowed)
