"""Shared test helpers: run the real `foobar-ops` entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
FOOBAR_OPS = Path(sys.executable).parent / "foobar-ops"
LAB_INVENTORY = PROJECT / "inventories" / "lab.yml"

# Tests keep their records (journal, output notebooks) apart from the user's own.
os.environ.setdefault("FOOBAR_OPS_HOME", tempfile.mkdtemp(prefix="foobar-ops-test-records-"))


class CLIResult:
    """What one `foobar-ops` invocation did."""

    def __init__(self, done: subprocess.CompletedProcess) -> None:
        self.code, self.out, self.err = done.returncode, done.stdout, done.stderr

    def json(self):
        return json.loads(self.out)

    def __repr__(self) -> str:
        return f"<exit {self.code}\nstdout:\n{self.out}\nstderr:\n{self.err}>"


def stored_bytes(path: Path | str) -> bytes:
    """The bytes of a file, read by another process. A SQLite file must never be opened and closed
    by a process that also holds a connection to it: closing any descriptor of the file drops that
    process's POSIX locks, and another process may then checkpoint under its feet."""
    return subprocess.run(["cat", str(path)], capture_output=True, check=True).stdout


def run_cli(*args: str, timeout: float = 600) -> CLIResult:
    """Run `foobar-ops ARGS...` and return exit code and output."""
    done = subprocess.run(
        [str(FOOBAR_OPS), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        cwd=PROJECT,
    )
    return CLIResult(done)


@pytest.fixture
def cli():
    return run_cli
