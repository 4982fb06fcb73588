"""Who may read what foobar_ops keeps (the journal, output notebooks, spools): their owner only
(folders 0700, files 0600), or a team on purpose: a records folder with its setgid bit set and
owned by the team's group (`chgrp ops DIR; chmod 2770 DIR`) keeps group bits (folders 2770, files
0660: the team reads and writes one journal). Nothing is ever readable by others."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from . import paths

__all__ = ["shared", "dir_mode", "file_mode", "make_dir", "create_file", "tighten"]


def shared(folder: Path) -> bool:
    """Tell whether a folder is shared by a team on purpose: its setgid bit is set.

    folder: the folder.
    """
    try:
        return bool(folder.stat().st_mode & stat.S_ISGID)
    except OSError:
        return False


def dir_mode(parent: Path) -> int:
    """The mode of a folder made inside parent."""
    return 0o2770 if shared(parent) else 0o700


def file_mode(folder: Path) -> int:
    """The mode of a file made inside folder."""
    return 0o660 if shared(folder) else 0o600


def make_dir(path: Path) -> Path:
    """Make a folder (and its missing parents) private, or group-shared inside a shared folder. An
    existing one that is foobar_ops' own (the records folder, or one inside it) is tightened (see
    tighten); one it merely names (the folder a journal path puts the journal in) is left as it is.

    path: the folder.
    """
    path = Path(path)
    missing = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        mode = dir_mode(folder.parent)
        try:
            os.mkdir(folder, mode)
        except FileExistsError:
            continue
        os.chmod(folder, mode)  # whatever the umask took away or added
    if not missing and _ours(path):
        tighten(path)
    return path


def _ours(path: Path) -> bool:
    """A folder foobar_ops keeps: the records folder, or one inside it."""
    records, found = paths.records_dir().resolve(), path.resolve()
    return found == records or records in found.parents


def create_file(path: Path) -> None:
    """Make a file private: create it empty with its folder's mode when it does not exist yet, else
    tighten it (by path, never opening it: closing a descriptor of a SQLite file would drop this
    process's locks on it).

    path: the file.
    """
    mode = file_mode(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        tighten(path)
        return
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def _everyones(path: Path) -> bool:
    """A folder that holds more than foobar_ops' records: the root, a home folder."""
    resolved = path.resolve()
    return resolved == Path("/") or resolved == Path.home().resolve() or resolved.parent == Path("/home")


def tighten(path: Path) -> None:
    """Take away what others may do with a file or folder this user owns (and its group's too,
    unless its folder, or it, is shared); by path, never by opening it.

    path: the file or folder.
    """
    try:
        info = os.stat(path)
    except OSError:
        return
    if info.st_uid != os.geteuid():
        return
    if stat.S_ISDIR(info.st_mode) and (info.st_mode & stat.S_ISVTX or _everyones(Path(path))):
        return  # a folder such as /tmp or a home, named as the records folder: not ours to close
    mode = stat.S_IMODE(info.st_mode)
    group_ok = shared(path if stat.S_ISDIR(info.st_mode) else path.parent)
    wanted = mode & ~0o007 if group_ok else mode & ~0o077
    if wanted != mode:
        try:
            os.chmod(path, wanted)
        except OSError:
            pass
