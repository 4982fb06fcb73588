"""Where a journal's records wait while it cannot take them: a spool file of JSON lines, added to
the journal when it can be written again. Appending and replaying take the spool's file lock
(a lock file of its own beside it), so a record appended while a replay runs is never lost. A
line that can never be added (torn by a crash or a full disk, not a record, refused as a
duplicate) is set aside in SPOOL.rejected, never dropped; while the journal still refuses, that
line and the ones after it stay in the spool, in order."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import privacy

__all__ = ["Refused", "Replayed", "Spool", "append_lines", "flocked"]


class Refused(Exception):
    """The journal still refuses records: the line being added, and those after it, wait."""


@dataclass
class Replayed:
    """What a replay did: lines added, and the ones set aside (with why) and where."""

    added: int = 0
    rejected: list[str] = field(default_factory=list)  # "line N: why"
    aside: Path | None = None


@dataclass
class Spool:
    """One spool file.

    path: the file (JSON lines).
    """

    path: Path

    @property
    def rejected_path(self) -> Path:
        return self.path.with_name(self.path.name + ".rejected")

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the spool's file lock."""
        with flocked(self.path.with_name(self.path.name + ".lock")):
            yield

    def append(self, record: dict[str, Any]) -> None:
        """Append one record (an OSError when the spool cannot be written).

        record: a JSON-ready dict.
        """
        self.extend([record])

    def extend(self, records: list[dict[str, Any]]) -> None:
        """Append records, all or none (an OSError when the spool cannot take them all: what was
        written of them is taken back).

        records: JSON-ready dicts.
        """
        privacy.make_dir(self.path.parent)
        lines = [json.dumps(record, default=str) for record in records]
        with self.locked():
            append_lines(self.path, lines)

    def replay(self, add: Callable[[dict[str, Any]], None]) -> Replayed:
        """Add each record to the journal with add(record), under the lock; add raises Refused when
        the journal still refuses, anything else when this record can never be added.

        add: adds one record.
        """
        done = Replayed()
        with self.locked():
            try:
                lines = self.path.read_text(errors="replace").splitlines()
            except FileNotFoundError:
                return done
            fresh = self._fresh()  # before anything is added: a spool that cannot be rewritten adds nothing
            kept: list[str] = []
            aside: list[str] = []
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                if kept:  # after a refusal, the rest wait in order
                    kept.append(line)
                    continue
                why = _add(line, add)
                if why == "":
                    done.added += 1
                elif why is None:
                    kept.append(line)
                else:
                    aside.append(line)
                    done.rejected.append(f"line {number}: {why}")
            if aside:
                append_lines(self.rejected_path, aside)
                done.aside = self.rejected_path
            if kept:
                append_lines(fresh, kept)
                os.replace(fresh, self.path)
            else:
                fresh.unlink()
                self.path.unlink()
        return done

    def _fresh(self) -> Path:
        """Make the empty file the spool is rewritten into (an OSError when its folder refuses:
        records added and then left in the spool would be added again by the next replay)."""
        fresh = self.path.with_name(self.path.name + ".new")
        fresh.unlink(missing_ok=True)
        os.close(os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL, privacy.file_mode(fresh.parent)))
        return fresh


def _add(line: str, add: Callable[[dict[str, Any]], None]) -> str | None:
    """Add one line: "" when added, None when the journal still refuses, else why it never can."""
    try:
        record = json.loads(line)
        if not isinstance(record, dict) or not {"table", "values"} <= set(record):
            raise ValueError("not a spooled record")
    except ValueError as err:
        return f"not a record ({type(err).__name__})"
    try:
        add(record)
    except Refused:
        return None
    except Exception as err:  # noqa: BLE001 - this record can never go in (a duplicate, a bad value)
        return type(err).__name__
    return ""


@contextmanager
def flocked(path: Path) -> Iterator[None]:
    """Hold an exclusive file lock (on a lock file of its own, kept, never the file it guards).

    path: the lock file.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, privacy.file_mode(path.parent))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def append_lines(path: Path, lines: list[str]) -> None:
    """Append whole lines to a file (made private), all or none: when the file cannot take them
    all (a full disk), what was written of them is cut off again. A line torn before (a crash) is
    ended first, so that it stays one bad line of its own. The caller holds the file's lock.

    path: the file.
    lines: the lines, without their newline.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, privacy.file_mode(path.parent))
    try:
        size = os.fstat(fd).st_size
        torn = size > 0 and os.pread(fd, 1, size - 1) != b"\n"
        data = ("\n" if torn else "") + "".join(line + "\n" for line in lines)
        view = memoryview(data.encode())
        try:
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)
