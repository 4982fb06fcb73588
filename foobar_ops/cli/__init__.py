"""The `foobar-ops` command line: it parses arguments, calls an operation and prints the result."""

from __future__ import annotations

from .main import main

__all__ = ["main"]
