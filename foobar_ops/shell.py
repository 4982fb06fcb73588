"""The one place that builds shell command lines: every argument is quoted."""
from __future__ import annotations

import shlex

__all__ = ["cmd", "pipeline"]


def cmd(*args: object) -> str:
    """Return a shell command line with every argument quoted.

    args: the program and its arguments (converted with str()).
    Example: cmd("ls", "-l", "/etc/my file") -> "ls -l '/etc/my file'"
    """
    if not args:
        raise ValueError("cmd() needs at least a program name")
    return " ".join(shlex.quote(str(a)) for a in args)


def pipeline(*commands: str, op: str = "&&") -> str:
    """Join command lines already built by cmd() with a shell operator.

    commands: command lines from cmd().
    op: the operator between them: "&&", "||", ";" or "|".
    """
    if op not in ("&&", "||", ";", "|"):
        raise ValueError(f"unsupported shell operator {op!r}")
    return f" {op} ".join(f"{c}" for c in commands)
