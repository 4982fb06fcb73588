"""The lab fixture: fresh real hosts for the whole test session.

The cached image is reused; hosts' disks are rebuilt so every run starts from clean Debian
hosts (set FOOBAR_LAB_REUSE=1 while developing to keep the running hosts instead).
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import LAB_INVENTORY, run_cli


def pytest_collection_modifyitems(items):
    for item in items:
        if "/tests/lab/" in str(item.fspath):
            item.add_marker(pytest.mark.lab)


@pytest.fixture(scope="session")
def lab():
    """Boot the lab (fresh disks unless FOOBAR_LAB_REUSE=1); fail, never skip, if it cannot."""
    if os.environ.get("FOOBAR_LAB_REUSE") != "1":
        done = run_cli("lab", "destroy", "-i", LAB_INVENTORY, timeout=300)
        assert done.code == 0, f"lab destroy failed: {done}"
    done = run_cli("lab", "up", "-i", LAB_INVENTORY, timeout=1800)
    assert done.code == 0, f"lab up failed: {done}"
    from foobar_ops.core.inventory import load_inventory
    from foobar_ops.lab import Lab

    yield Lab(load_inventory(LAB_INVENTORY))


@pytest.fixture(scope="session")
def lab_inventory(lab):
    from foobar_ops.core.inventory import load_inventory

    return load_inventory(LAB_INVENTORY)
