"""Edit an inventory file in place, keeping its comments and layout (a YAML round trip), e.g. when
a switchover makes another host the database primary. An edit changes exactly the hosts named: a
host whose vars are shared with another through a YAML anchor gets a copy of its own, and an edit
that would still change another host is refused."""

from __future__ import annotations

import copy
import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from ..core.errors import InventoryError


def _round_trip(path: Path, edit: Callable[[Any], None]) -> tuple[str, str]:
    """Load the file keeping its comments and layout, let `edit` change the document in place, and
    return (the text before, the text after)."""
    from ruamel.yaml import YAML

    rt = YAML()
    rt.preserve_quotes = True
    rt.width = 4096  # a long value (a secret's path) stays on its line, as written
    text = path.read_text()
    doc = rt.load(text)
    edit(doc)
    out = io.StringIO()
    rt.dump(doc, out)
    return text, out.getvalue()


def _edited(path: Path, changes: dict[str, dict[str, Any]]) -> str:
    """Return the file's text with the changes made, checked to change exactly what they name."""
    text, result = _round_trip(path, lambda doc: _set_vars(path, doc, changes))
    _check_exact(path, text, result, changes)
    return result


def _set_vars(path: Path, doc: Any, changes: dict[str, dict[str, Any]]) -> None:
    from ruamel.yaml.comments import CommentedMap

    hosts = doc.get("hosts") if isinstance(doc, dict) else None
    for host, values in changes.items():
        entry = (hosts or {}).get(host)
        if not isinstance(entry, dict):
            raise InventoryError(f"no host {host} to update", path=path)
        shared = any(other is entry for name, other in (hosts or {}).items() if name != host)
        if shared:
            raise InventoryError(
                f"hosts.{host} is the same YAML node as another host's (an alias): give it an entry of its own",
                path=path,
            )
        current = entry.get("vars")
        if current is None:
            entry["vars"] = CommentedMap()
        elif _is_shared(current, doc, entry):
            entry["vars"] = CommentedMap(current.items())  # a copy of its own: the others keep theirs
        entry["vars"].update(values)


def _is_shared(node: Any, doc: Any, owner: Any) -> bool:
    """True when `node` (a mapping) appears anywhere in the document other than as owner's vars."""
    seen = 0
    stack = [doc]
    visited: set[int] = set()
    while stack:
        item = stack.pop()
        if id(item) in visited:
            continue
        visited.add(id(item))
        if isinstance(item, dict):
            for value in item.values():
                seen += value is node
                stack.append(value)
            for base in getattr(item, "merge", None) or []:
                seen += (base[1] if isinstance(base, tuple) else base) is node
        elif isinstance(item, list):
            for value in item:
                seen += value is node
                stack.append(value)
    return seen > 1 or getattr(node, "anchor", None) is not None and bool(node.anchor.value)


def _check_exact(path: Path, before: str, after: str, changes: dict[str, dict[str, Any]]) -> None:
    """Refuse an edit that changes anything but the named vars of the named hosts."""
    try:
        old, new = yaml.safe_load(before) or {}, yaml.safe_load(after) or {}
    except yaml.YAMLError as err:
        raise InventoryError(f"the edited inventory would not load: {err}", path=path) from None
    want = copy.deepcopy(old)
    for host, values in changes.items():
        entry = want["hosts"][host]
        entry["vars"] = {**(entry.get("vars") or {}), **values}
    if new != want:
        others = sorted(h for h in (new.get("hosts") or {}) if (new["hosts"][h] != want["hosts"].get(h)))
        raise InventoryError(
            f"updating {', '.join(changes)} would change more than those hosts ({', '.join(others) or 'other keys'}): "
            "edit the file by hand so that each database host has vars of its own",
            path=path,
        )


def check_host_vars(path: str | Path, changes: dict[str, dict[str, Any]]) -> None:
    """Check, changing nothing, that set_host_vars can make these changes (InventoryError if not):
    the file can be read, edited to change exactly these hosts' vars, and replaced.

    path: the inventory file.
    changes: host name -> {var: value}.
    """
    _check_editable(Path(path), lambda p: _edited(p, changes))


def _check_editable(path: Path, edited: Callable[[Path], str]) -> None:
    """The file can be read, edited as `edited` does (its own checks), and replaced."""
    try:
        edited(path)
    except OSError as err:
        raise InventoryError(f"cannot read it: {err.strerror or err}", path=path) from None
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise InventoryError(f"its folder {path.parent} is not writable (the file is replaced atomically)", path=path)


def set_host_vars(path: str | Path, changes: dict[str, dict[str, Any]]) -> None:
    """Set vars of hosts in an inventory file, atomically, keeping comments and order, changing
    exactly the hosts named (InventoryError, and the file untouched, when it cannot).

    path: the inventory file.
    changes: host name -> {var: value}.
    """
    path = Path(path)
    _replace(path, _edited(path, changes))


def _secrets_edited(path: Path, refs: dict[str, str]) -> str:
    """Return the file's text with these secrets' references set, checked to change nothing else."""

    def set_refs(doc: Any) -> None:
        from ruamel.yaml.comments import CommentedMap

        if not isinstance(doc, dict):
            raise InventoryError("is not a mapping", path=path)
        if doc.get("secrets") is None:
            doc["secrets"] = CommentedMap()
        doc["secrets"].update(refs)

    text, result = _round_trip(path, set_refs)
    try:
        old, new = yaml.safe_load(text) or {}, yaml.safe_load(result) or {}
    except yaml.YAMLError as err:
        raise InventoryError(f"the edited inventory would not load: {err}", path=path) from None
    if new != {**old, "secrets": {**(old.get("secrets") or {}), **refs}}:
        raise InventoryError(f"setting secrets {', '.join(refs)} would change more than them", path=path)
    return result


def check_secrets(path: str | Path, refs: dict[str, str]) -> None:
    """Check, changing nothing, that set_secrets can set these references (InventoryError if not)."""
    _check_editable(Path(path), lambda p: _secrets_edited(p, refs))


def set_secrets(path: str | Path, refs: dict[str, str]) -> None:
    """Set secrets' references (name -> env:/file: reference) in an inventory file, atomically,
    keeping comments and order, changing nothing else.

    path: the inventory file.
    refs: secret name -> reference.
    """
    path = Path(path)
    _replace(path, _secrets_edited(path, refs))


def _replace(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".new")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
