"""Unit-test fixtures shared by every module."""

from __future__ import annotations

import pytest

from foobar_ops.core import secrets as secrets_mod
from foobar_ops.core.engine import phases
from tests.unit.fakes import RunLocks


@pytest.fixture(autouse=True)
def _isolated_secret_registry():
    """Revealed secrets are remembered process-wide: start each test from none, and forget its own."""
    saved = set(secrets_mod._known_values)
    secrets_mod._known_values.clear()
    yield
    secrets_mod._known_values.clear()
    secrets_mod._known_values.update(saved)


@pytest.fixture
def run_locks(monkeypatch):
    """A run takes a lock on every host it changes (core.runlock, over SSH): stand in for it and
    record what was locked (see fakes.RunLocks)."""
    locks = RunLocks()
    monkeypatch.setattr(phases, "locked", locks.locked)
    return locks
