"""MariaDB global transaction ids: parse a GTID position and compare two of them.

A position such as "0-11-42,0-12-7" holds, per replication domain and originating server, the
sequence number of the last transaction seen. With gtid_strict_mode, sequence numbers grow within
a domain, so "has B seen everything A has?" is a per-(domain, server) comparison.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import FoobarOpsError

_GTID = re.compile(r"^(\d+)-(\d+)-(\d+)$")


@dataclass(frozen=True, order=True)
class GTID:
    """One global transaction id: domain-server-sequence."""

    domain: int
    server: int
    seq: int

    def __str__(self) -> str:
        return f"{self.domain}-{self.server}-{self.seq}"


def parse(position: str | None) -> list[GTID]:
    """Return the GTIDs of a position ("" or None: none).

    position: e.g. "0-11-42,1-11-3".
    """
    out = []
    for part in (position or "").replace("\n", ",").split(","):
        part = part.strip()
        if not part:
            continue
        m = _GTID.match(part)
        if not m:
            raise FoobarOpsError(f"{part!r} is not a GTID (domain-server-sequence)")
        out.append(GTID(int(m.group(1)), int(m.group(2)), int(m.group(3))))
    return out


def missing(have: str | None, seen_by: str | None) -> list[GTID]:
    """Return the GTIDs of `have` that `seen_by` has not seen (by domain and originating server).

    have: a node's position (e.g. a replica's gtid_binlog_pos).
    seen_by: another node's position (e.g. the primary's gtid_binlog_pos).
    A replica's GTIDs missing from its primary are errant transactions: data the primary lacks.
    """
    seen: dict[tuple[int, int], int] = {}
    for g in parse(seen_by):
        seen[(g.domain, g.server)] = max(seen.get((g.domain, g.server), -1), g.seq)
    return [g for g in parse(have) if seen.get((g.domain, g.server), -1) < g.seq]


def covers(position: str | None, target: str | None) -> bool:
    """Return True when `position` has seen every GTID of `target`.

    position: what a node has applied.
    target: what it must have applied.
    """
    return not missing(target, position)
