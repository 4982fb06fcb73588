"""Ad-hoc commands on many hosts at once, journaled one result per host."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

from ..core import ssh
from ..core.errors import FoobarOpsError
from ..core.inventory import Inventory
from ..core.journal import Journal
from ..core.result import Result, Status
from .common import inventory_of, journal_of


def run_command(
    inventory: Inventory | str | Path,
    command: str | Sequence[str],
    *,
    hosts: str | None = None,
    sudo: bool = False,
    parallel: int | None = None,
    stream: bool = False,
    journal: Journal | str | Path | None = None,
    origin: str = "python: run",
) -> list[ssh.CommandOutcome]:
    """Run a command on hosts in parallel; journal one result per host as it finishes; return the
    outcomes in host order.

    inventory: the Inventory, or its path.
    command: shell text (a string), or a program and its arguments (a list, quoted one by one).
    hosts: host pattern (default: all hosts).
    sudo: run it through sudo (the whole shell text runs as root).
    parallel: at most this many hosts at once (default: the inventory's ssh.parallel, else 10).
    stream: print output lines as they come, prefixed with the host name.
    journal: the journal (default: the records folder's).
    origin: what is recorded as having started the run.
    """
    line = command if isinstance(command, str) else shlex.join(command)
    if not line.strip():
        raise FoobarOpsError("run: give a command, e.g. foobar-ops run -i INV -- uptime")
    # sudo runs one program: the shell text as a whole must be its argument, or only its first
    # command would run as root
    remote = shlex.join(["sh", "-c", line]) if sudo else line
    inv = inventory_of(inventory)
    targets = inv.select(hosts)
    with journal_of(journal).recording(
        command=origin, inventory=inv, parameters={"hosts": hosts, "sudo": sudo, "command": line}
    ) as run:

        def record(o: ssh.CommandOutcome) -> None:
            status = Status.CHANGED if o.ok else Status.FAILED
            run.add(
                Result(
                    o.host,
                    "cmd.adhoc",
                    line,
                    "cmd.run",
                    status,
                    idempotent=False,
                    comment=o.error or f"exit {o.exit_code}",
                    duration_ms=o.rtt_ms or 0.0,
                )
            )

        return ssh.run_many(
            targets,
            remote,
            inventory=inv,
            sudo=sudo,
            cap=parallel if parallel is not None else inv.parallel,
            stream=stream,
            on_outcome=record,
        )
