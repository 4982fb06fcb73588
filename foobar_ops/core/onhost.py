"""Where foobar_ops keeps its own state on a managed host (one place, so every part agrees)."""

from __future__ import annotations

#: tmpfs: the run lock and its holder (a reboot forgets them, as it forgets every process)
LOCK_DIR = "/run/foobar-ops"
#: held (shared) by every change while it runs, and waited for (exclusively) by a run taking its
#: lock: a change that outlived its run (killed, cut off) ends before the next run touches the host
CHANGES_LOCK_NAME = "changes.lock"
CHANGES_LOCK = f"{LOCK_DIR}/{CHANGES_LOCK_NAME}"
#: seconds a run waits for such a change to end before it refuses the host
CHANGE_WAIT = 300
#: a change's output and exit code, kept until its run has read them (a cut connection loses no
#: outcome); on disk, so that a change interrupted by a reboot is told from one never begun
OUTCOMES = "/var/lib/foobar-ops/outcomes"
#: one file per reload (or restart) owed by a change whose run ended before making it
OWED = "/var/lib/foobar-ops/owed"
