"""The one place that builds shell command lines: every argument is quoted, except the ones
marked as shell words on purpose (a variable the script itself sets)."""

from __future__ import annotations

import shlex

__all__ = ["cmd", "Word", "staged", "STAGE_VAR"]

#: The shell variable the engine sets to the folder of a plan's uploaded files.
STAGE_VAR = "FOOBAR_STAGE"


class Word(str):
    """An argument cmd() passes through unquoted: shell text built here, never from input."""


def staged(name: str) -> Word:
    """Return the shell word for a file a plan uploads (see Plan.uploads): "$FOOBAR_STAGE"/NAME.

    name: the upload's name.
    """
    return Word(f'"${STAGE_VAR}"/{shlex.quote(name)}')


def cmd(*args: object) -> str:
    """Return a shell command line with every argument quoted (Word arguments are kept as they are).

    args: the program and its arguments (converted with str()).
    Example: cmd("ls", "-l", "/etc/my file") -> "ls -l '/etc/my file'"
    """
    if not args:
        raise ValueError("cmd() needs at least a program name")
    return " ".join(a if isinstance(a, Word) else shlex.quote(str(a)) for a in args)
