"""Whether a journaled run still runs, when it never said how it ended: a run of this machine has
died when its process is gone (core.machine); a run of another machine (a shared journal) when it
has not beaten for DIED_AFTER_S. A journal beats every HEARTBEAT_S for each run it started and has
not finished."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from . import machine

__all__ = ["DIED_AFTER_S", "HEARTBEAT_S", "Heartbeat", "died"]

#: A run whose process lives beats (its row's heartbeat) this often, in seconds ...
HEARTBEAT_S = 30.0
#: ... and one of another machine that has not beaten for this long has died.
DIED_AFTER_S = 180.0


class Heartbeat:
    """Beats for the runs a journal started and has not finished, on a thread of its own that runs
    while there is one.

    beat: writes a beat for these run ids (its errors are left to the run's own records).
    """

    def __init__(self, beat: Callable[[list[str]], None]) -> None:
        self._write = beat
        self._lock = threading.Lock()
        self._running: set[str] = set()
        self._thread: threading.Thread | None = None

    def start(self, run_id: str) -> None:
        """Beat for a run from now on."""
        with self._lock:
            self._running.add(run_id)
            if self._thread is None:
                self._thread = threading.Thread(target=self._beats, name="journal-heartbeat", daemon=True)
                self._thread.start()

    def stop(self, run_id: str | None = None) -> None:
        """Stop beating for a run (that ended), or for every run (the journal is closed)."""
        with self._lock:
            if run_id is None:
                self._running.clear()
            else:
                self._running.discard(run_id)

    def _beats(self) -> None:
        while True:
            time.sleep(HEARTBEAT_S)
            with self._lock:
                running = sorted(self._running)
                if not running:
                    self._thread = None  # decided under the lock: a run started now starts another
                    return
            try:
                self._write(running)
            except Exception:  # noqa: BLE001 - a journal that refuses now is reported by the run's records
                pass


def died(run: dict[str, Any]) -> bool:
    """Tell whether a run recorded as running has died: its process on this machine is gone (pid
    and start time), or, run elsewhere, it has not beaten for DIED_AFTER_S. A run recorded by a
    foobar_ops that kept neither is left as it says.

    run: the run's row (machine_id, pid, pid_start, heartbeat).
    """
    gone = machine.process_gone(run.get("machine_id"), run.get("pid"), run.get("pid_start"))
    if gone is not None:
        return gone
    beat = run.get("heartbeat")
    if not isinstance(beat, str) or not beat:
        return False
    try:
        last = datetime.fromisoformat(beat)
    except ValueError:
        return False
    return (datetime.now(UTC) - last).total_seconds() > DIED_AFTER_S
