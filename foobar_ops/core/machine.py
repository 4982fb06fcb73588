"""Which control machine this is, and whether a process of it still runs: what lets a run judge
another run dead (its lock taken over, its journal row shown as died) without mistaking a clone.

A hostname is not enough: cloned VMs and containers share one. The machine's id is its
/etc/machine-id (else /var/lib/dbus/machine-id, else the hostname), with the kernel's boot id and
this process's pid namespace: a pid can be looked up here only for a process of the same boot and
the same pid namespace. A process is known by its pid and its start time, so a pid reused by
another process is not taken for the one that ended.
"""

from __future__ import annotations

import os
import socket
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["machine_id", "process_start", "process_alive", "process_gone"]


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


@lru_cache(maxsize=1)
def machine_id() -> str:
    """This machine's id: MACHINE-ID/BOOT-ID/PID-NAMESPACE (parts that cannot be read are '-')."""
    base = _read("/etc/machine-id") or _read("/var/lib/dbus/machine-id") or "host:" + socket.gethostname()
    boot = _read("/proc/sys/kernel/random/boot_id") or "-"
    try:
        namespace = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        namespace = "-"
    return f"{base}/{boot}/{namespace}"


def process_start(pid: int) -> str:
    """When a process of this machine started (clock ticks since boot, from /proc), or '' when it
    is not running or that cannot be read.

    pid: the process id.
    """
    stat = _read(f"/proc/{pid}/stat")
    # the command name (field 2) may hold spaces and parentheses: count from the last ')'
    fields = stat[stat.rfind(")") + 2 :].split() if ")" in stat else []
    return fields[19] if len(fields) > 19 else ""


def process_alive(pid: int, started: str = "") -> bool:
    """Tell whether a process of this machine still runs: its pid exists and, when its start time
    was recorded, it is the same process (not another one given the same pid later).

    pid: the process id.
    started: its start time as process_start() gave it ('' when unknown).
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, another user's
    if started:
        now = process_start(pid)
        return now == "" or now == started  # unreadable: cannot tell, so alive
    return True


def process_gone(where: str | None, pid: Any, started: Any = "") -> bool | None:
    """Tell whether a process recorded by where it ran, its pid and its start time has ended: True
    or False for a process of this very machine, None when that cannot be told from here (another
    machine or a clone of this one, or nothing recorded). What a run lock's holder and a journal's
    run are both judged by.

    where: the machine id machine_id() gave where it ran ('' or None when not recorded).
    pid: its pid (None, or NaN as a DataFrame reads a missing one, when not recorded).
    started: its start time as process_start() gave it ('' or None when unknown).
    """
    try:
        number = int(pid)
    except (TypeError, ValueError):  # None, NaN
        return None
    if not where or where != machine_id() or number <= 0:
        return None
    return not process_alive(number, started if isinstance(started, str) else "")
