"""Interrupts (Ctrl-C, SIGTERM) that reach a run while a remote command is being waited for.

Invoke, under Fabric, catches a KeyboardInterrupt raised while it waits for a remote command,
forwards it to the command's stdin and goes on waiting: the interrupt would be lost. The command
line's signal handlers count every interrupt here; a remote command that returns after one came
in raises it again (see ssh.Remote.run), so a run stops at the next command boundary and unwinds
(a drained server is put back) instead of carrying on as if nothing had happened.
"""

from __future__ import annotations

import signal

_count = 0


class Terminated(KeyboardInterrupt):
    """The process was asked to stop (SIGTERM): unwinds like Ctrl-C."""


def note() -> int:
    """Count one interrupt (called from a signal handler); return the new count."""
    global _count
    _count += 1
    return _count


def count() -> int:
    """How many interrupts came in so far."""
    return _count


def raise_if_new(since: int, terminate: bool = False) -> None:
    """Raise the interrupt that came in after `since`, when one did (it was swallowed)."""
    if _count != since:
        raise Terminated() if terminate or _last_was_term else KeyboardInterrupt()


_last_was_term = False


def note_term() -> int:
    """Count a SIGTERM."""
    global _last_was_term
    _last_was_term = True
    return note()


def on_sigterm(signum: int, frame: object) -> None:
    """A SIGTERM handler: stop as Ctrl-C does (raise Terminated), counted so that a remote
    command's wait cannot swallow it; a second SIGTERM waits for the first one's unwinding."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    note_term()
    raise Terminated()


def on_sigint(signum: int, frame: object) -> None:
    """A SIGINT handler: Ctrl-C, counted so that a remote command's wait cannot swallow it."""
    note()
    raise KeyboardInterrupt()
