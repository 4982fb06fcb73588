"""nft.table: one nftables table of our own, replaced whole and atomically, with a rollback armed on
the host before it loads and kept until the change is confirmed from outside (commit-confirm).

The table's file declares it, deletes it and declares it again, so one `nft -f` swaps the whole
table in a single transaction and touches no other table (keepalived's, say); nothing here ever
flushes the ruleset. What the host runs, in order:

1. the candidate is checked with `nft -c -f` (a syntax error stops here: nothing changed);
2. the live table is saved as a rollback file (the table as it was, or its absence), and a
   transient systemd timer is armed to load it after `confirm_timeout` seconds;
3. the candidate is loaded and its listing's hash kept as *pending*.

The caller then proves the host still lets it in (a new SSH connection) and runs confirm_script()
(persist the rules for boot, record them as confirmed, disarm the timer) or, when it cannot get in,
rollback_script() over the connection it still has (the timer is the backstop when that is gone too).
A run killed between the load and the confirm leaves the timer to put the old table back.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from dataclasses import dataclass
from typing import Any

from ..errors import StateError
from ..facts import Fact, _need, keyvals
from ..shell import cmd, staged
from .base import Plan, State

__all__ = ["NftInfo", "NftTableFact", "Table", "confirm_script", "rollback_script", "STATE_DIR"]

#: where the host keeps the pending and confirmed records, the candidate and the rollback file
STATE_DIR = "/var/lib/foobar-ops/nft"
_TABLE = re.compile(r"(inet|ip|ip6|arp|bridge|netdev) [A-Za-z][A-Za-z0-9_]{0,30}")
_UNIT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,60}")


@dataclass(frozen=True)
class NftInfo:
    """What the host has of a table.

    live: sha256 of the live table's listing (`nft -s list table`), None when there is none.
    confirmed: (source sha256, listing sha256) of the last confirmed load, None when none.
    persisted: sha256 of the file loaded at boot, None when absent.
    boot: the boot unit's enabled state (enabled, disabled, not-found, ...).
    armed: a rollback timer is armed (a load not confirmed yet, or a run cut off after a load).
    """

    live: str | None
    confirmed: tuple[str, str] | None
    persisted: str | None
    boot: str
    armed: bool


def record(table: str, what: str) -> str:
    """The path of one of a table's files on the host: candidate.nft, rollback.nft, pending (the
    load not confirmed yet: source and listing hashes) or confirmed (the last confirmed load)."""
    return posixpath.join(STATE_DIR, f"{table.replace(' ', '-')}.{what}")


def live_sha(table: str) -> str:
    """Shell that prints the sha256 of a table's stateless listing and succeeds, or fails (no
    table): the one way both the fact and the load hash a table."""
    return f'l=$(nft -s list table {table} 2>/dev/null) && h=$(printf "%s\\n" "$l" | sha256sum) && echo "${{h%% *}}"'


def _sha(path: str) -> str:
    return f"h=$(sha256sum 2>/dev/null < {cmd(path)}) && echo ${{h%% *}} || echo absent"


class NftTableFact(Fact[NftInfo]):
    """The live table's hash, the confirmed and persisted records, the boot unit and the timer.

    table: "FAMILY NAME", e.g. "inet foobar".
    persist: the file the boot unit loads.
    boot_unit: the unit that loads it at boot.
    timer: the rollback timer's unit name (without .timer).
    """

    def __init__(self, table: str, persist: str, boot_unit: str, timer: str) -> None:
        self.table, self.persist, self.boot_unit, self.timer = table, persist, boot_unit, timer

    def command(self) -> str:
        return (
            f"printf 'live='; {live_sha(self.table)} || echo absent; "
            f"printf 'confirmed='; tr ' ' , 2>/dev/null < {cmd(record(self.table, 'confirmed'))} "
            "|| echo none; "
            f"printf 'persisted='; {_sha(self.persist)}; "
            f"printf 'boot='; systemctl is-enabled {cmd(self.boot_unit)} 2>/dev/null || true; echo; "
            f"systemctl is-active -q {cmd(self.timer + '.timer')} && echo armed=yes || echo armed=no"
        )

    def parse(self, output: str) -> NftInfo:
        f = keyvals(output)
        _need(f, ("live", "persisted", "armed"), f"nft table {self.table}", output)
        confirmed = f.get("confirmed", "none")
        pair = tuple(confirmed.split(",")) if confirmed != "none" and "," in confirmed else None
        return NftInfo(
            live=None if f["live"] == "absent" else f["live"],
            confirmed=(pair[0], pair[1]) if pair and len(pair) == 2 else None,
            persisted=None if f["persisted"] == "absent" else f["persisted"],
            boot=f.get("boot") or "not-found",
            armed=f["armed"] == "yes",
        )


class Table(State[NftInfo]):
    """nft.table: a table of our own, as `content` declares it, loaded with a rollback armed and
    confirmed from outside (see the module's text); persisted for boot once confirmed.

    name: "FAMILY NAME", e.g. "inet foobar".
    content: the table's definition: `table FAMILY NAME { ... }` (the swap lines are added here).
    persist: the file the boot unit loads (written at the confirm).
    boot_unit: the unit that loads it at boot (enabled at the confirm).
    confirm_timeout: seconds before the host loads the rollback on its own.
    timer: the rollback timer's name.
    """

    kind = "nft.table"

    def __init__(
        self,
        name: str,
        content: str,
        *,
        persist: str,
        boot_unit: str,
        confirm_timeout: float = 30,
        timer: str = "foobar-nft-rollback",
        **kw: Any,
    ) -> None:
        super().__init__(name, **kw)
        if not _TABLE.fullmatch(self.name):
            raise StateError(f"{self.id}: {self.name!r} is not a table such as 'inet foobar'")
        for what, value in (("boot_unit", boot_unit), ("timer", timer)):
            if not _UNIT.fullmatch(value):
                raise StateError(f"{self.id}: {what} {value!r} is not a systemd unit name")
        if not persist.startswith("/"):
            raise StateError(f"{self.id}: persist {persist!r} must be an absolute path")
        if not 5 <= float(confirm_timeout) <= 3600:
            raise StateError(f"{self.id}: confirm_timeout {confirm_timeout!r} must be from 5 to 3600 seconds")
        head = f"table {self.name}"
        if not content.lstrip().startswith(head + " {"):
            raise StateError(f"{self.id}: the content must define the table itself: it starts with '{head} {{'")
        self.content = f"{head}\ndelete {head}\n{content.strip()}\n"
        self.sha256 = hashlib.sha256(self.content.encode()).hexdigest()
        self.persist, self.boot_unit, self.timer = persist, boot_unit, timer
        self.confirm_timeout = float(confirm_timeout)

    def fact(self) -> NftTableFact:
        return NftTableFact(self.name, self.persist, self.boot_unit, self.timer)

    def plan(self, fact: NftInfo) -> Plan:
        wanted = (
            fact.live is not None
            and fact.confirmed == (self.sha256, fact.live)
            and fact.persisted == self.sha256
            and fact.boot == "enabled"
            and not fact.armed
        )
        if wanted:
            return Plan(comment=f"table {self.name} is loaded as wanted and kept for boot")
        old = {"live": fact.live, "confirmed": fact.confirmed[0] if fact.confirmed else None, "armed": fact.armed}
        why = (
            "absent"
            if fact.live is None
            else "changed since its last load"
            if fact.confirmed and fact.confirmed[1] != fact.live
            else "not confirmed"
            if fact.armed
            else "to be replaced"
        )
        return Plan(
            {"old": old, "new": {"sha256": self.sha256}},
            self._commands(),
            diff=f"table {self.name} ({why}) is replaced by:\n{self.content}",
            comment=(
                f"table {self.name} loaded ({why} before); the host puts the old one back in "
                f"{self.confirm_timeout:g} s unless the change is confirmed"
            ),
            uploads={"rules": self.content.encode()},
        )

    def _commands(self) -> list[str]:
        rollback, pending = record(self.name, "rollback.nft"), record(self.name, "pending")
        timer = self.timer
        return [
            cmd("mkdir", "-p", "-m", "0700", STATE_DIR),
            # a load a cut-off run left unconfirmed is undone first: what is saved is what was confirmed
            f"if systemctl is-active -q {cmd(timer + '.timer')}; then nft -f {cmd(rollback)} || exit 1; "
            f"systemctl stop {cmd(timer + '.timer')}; fi",
            f"systemctl reset-failed {cmd(timer + '.timer')} {cmd(timer + '.service')} 2>/dev/null || true",
            f"out=$(nft -c -f {staged('rules')} 2>&1) || "
            f'{{ printf "nft refused the rules: %s\\n" "$out" >&2; exit 97; }}',
            f"{{ echo {cmd(f'table {self.name}')}; echo {cmd(f'delete table {self.name}')}; "
            f"nft list table {self.name} 2>/dev/null || true; }} > {cmd(rollback + '.new')}",
            cmd("mv", "-f", rollback + ".new", rollback),
            cmd("install", "-m", "0600", staged("rules"), record(self.name, "candidate.nft")),
            cmd("rm", "-f", pending),  # a record of an earlier load is never taken for this one
            cmd(
                "systemd-run",
                "--quiet",
                "--unit",
                timer,
                f"--on-active={self.confirm_timeout:g}s",
                "--timer-property=AccuracySec=100ms",
                "/bin/sh",
                "-c",
                f"nft -f {cmd(rollback)} && rm -f {cmd(pending)}",
            ),
            f"nft -f {staged('rules')} || {{ rc=$?; systemctl stop {cmd(timer + '.timer')}; exit $rc; }}",
            f'live=$({live_sha(self.name)}) && echo {self.sha256} "$live" > {cmd(pending)}',
        ]


def confirm_script(table: str, persist: str, boot_unit: str, timer: str = "foobar-nft-rollback") -> str:
    """The script (run as root) that keeps a loaded table once the host is known to let us in: it
    disarms the rollback (the timer, and its service should it have just fired), checks that the
    live table is still the one loaded, persists it for boot and records the load as confirmed.
    It prints `confirmed`, `nothing` (no load pending) or `late` (the rollback came first) and
    exits 0; when a step after the disarm fails it puts the old table back and exits 1.

    table: "FAMILY NAME".
    persist: the file the boot unit loads.
    boot_unit: the boot unit.
    timer: the rollback timer's name.
    """
    pending, rollback = record(table, "pending"), record(table, "rollback.nft")
    said = "echo 'the confirm failed: the old table is back' >&2"
    undo = f"{{ nft -f {cmd(rollback)}; rm -f {cmd(pending)}; {said}; exit 1; }}"
    return "\n".join(
        [
            f"[ -f {cmd(pending)} ] || {{ echo nothing; exit 0; }}",
            f"systemctl is-active -q {cmd(timer + '.timer')} || {{ rm -f {cmd(pending)}; echo late; exit 0; }}",
            f"systemctl stop {cmd(timer + '.timer')} {cmd(timer + '.service')}",
            f"read -r src loaded < {cmd(pending)}",
            f'live=$({live_sha(table)}) && [ "$live" = "$loaded" ] || {{ rm -f {cmd(pending)}; echo late; exit 0; }}',
            f"{cmd('install', '-D', '-m', '0600', record(table, 'candidate.nft'), persist)} || {undo}",
            f"systemctl enable --quiet {cmd(boot_unit)} || {undo}",
            f"mv -f {cmd(pending)} {cmd(record(table, 'confirmed'))} || {undo}",
            "echo confirmed",
        ]
    )


def rollback_script(table: str, timer: str = "foobar-nft-rollback") -> str:
    """The script (run as root) that puts the table back as it was before an unconfirmed load, now
    (the armed timer would have done it later) and disarms the timer; prints `rolled back` or
    `nothing` (no load armed)."""
    return "\n".join(
        [
            f"systemctl is-active -q {cmd(timer + '.timer')} || {{ echo nothing; exit 0; }}",
            f"nft -f {cmd(record(table, 'rollback.nft'))} || exit 1",  # the timer stays armed when this fails
            f"systemctl stop {cmd(timer + '.timer')}",
            f"rm -f {cmd(record(table, 'pending'))}",
            "echo rolled back",
        ]
    )
