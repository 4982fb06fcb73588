"""Unit-test fixtures shared by every module."""

from __future__ import annotations

import pytest

from foobar_ops.core import secrets as secrets_mod


@pytest.fixture(autouse=True)
def _isolated_secret_registry():
    """Revealed secrets are remembered process-wide: start each test from none, and forget its own."""
    saved = set(secrets_mod._known_values)
    secrets_mod._known_values.clear()
    yield
    secrets_mod._known_values.clear()
    secrets_mod._known_values.update(saved)
