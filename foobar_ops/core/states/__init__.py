"""States: each declares a wanted state; the engine probes facts, plans and applies.

Usage in a role:  `from foobar_ops import states as s` then `s.file.managed(...)`,
`s.pkg.installed(...)`, `s.service.running(...)`, ...
"""

from __future__ import annotations

from types import SimpleNamespace

from .base import Plan, State, StateError
from .command import Run
from .files import Absent, Directory, Line, Managed, Symlink
from .mysql import Database, Primary, Replica, Schema, User
from .nft import Table as NftTable
from .system import GroupPresent, PkgInstalled, PkgRemoved, ServiceDead, ServiceRunning, UserPresent

file = SimpleNamespace(managed=Managed, directory=Directory, absent=Absent, symlink=Symlink, line=Line)
pkg = SimpleNamespace(installed=PkgInstalled, removed=PkgRemoved)
service = SimpleNamespace(running=ServiceRunning, dead=ServiceDead)
user = SimpleNamespace(present=UserPresent)
group = SimpleNamespace(present=GroupPresent)
cmd = SimpleNamespace(run=Run)
nft = SimpleNamespace(table=NftTable)
mysql = SimpleNamespace(database=Database, user=User, schema=Schema, primary=Primary, replica=Replica)

__all__ = ["Plan", "State", "StateError", "file", "pkg", "service", "user", "group", "cmd", "mysql", "nft"]
