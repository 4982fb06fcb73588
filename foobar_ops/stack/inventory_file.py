"""Edit an inventory file in place, keeping its comments and layout (a YAML round trip), e.g. when
a switchover makes another host the database primary."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from ..core.errors import InventoryError


def set_host_vars(path: str | Path, changes: dict[str, dict[str, Any]]) -> None:
    """Set vars of hosts in an inventory file, atomically, keeping comments and order.

    path: the inventory file.
    changes: host name -> {var: value}.
    """
    from ruamel.yaml import YAML

    path = Path(path)
    yaml = YAML()
    yaml.preserve_quotes = True
    with open(path) as src:
        doc = yaml.load(src)
    for host, values in changes.items():
        entry = (doc.get("hosts") or {}).get(host)
        if entry is None:
            raise InventoryError(f"no host {host} to update", path=path)
        if entry.get("vars") is None:
            entry["vars"] = {}
        entry["vars"].update(values)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".new")
    try:
        with os.fdopen(fd, "w") as out:
            yaml.dump(doc, out)
        os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
