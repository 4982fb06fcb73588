"""Where inventory parsing stands, so every error can name the file, the host and the key."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import InventoryError


@dataclass(frozen=True)
class Ctx:
    """Where parsing stands: file, base dir, host and key prefix, and the role names allowed.

    path: the inventory file.
    base_dir: the folder relative paths resolve from.
    host: the host entry being parsed, if any.
    prefix: the dotted key path so far.
    known_roles: role names a host may declare (None: any name).
    types: what the stack's vars and hosts' vars must be (see typed.py), or None.
    """

    path: Path
    base_dir: Path
    host: str | None = None
    prefix: str = ""
    known_roles: tuple[str, ...] | None = None
    types: Any = None

    def at(self, key: Any) -> Ctx:
        """Return a context one key deeper.

        key: the key being descended into.
        """
        return replace(self, prefix=f"{self.prefix}{key}.")

    def err(self, message: str, key: Any = None) -> InventoryError:
        """Build an InventoryError located at prefix + key.

        message: what is wrong and how to fix it.
        key: the key at fault below the prefix, if any.
        """
        dotted = self.prefix + ("" if key is None else str(key))
        return InventoryError(message, path=self.path, host=self.host, key=dotted.rstrip(".") or None)
