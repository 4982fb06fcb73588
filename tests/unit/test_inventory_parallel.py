"""Unit tests for the fan-out cap: `defaults.ssh.parallel`, typed and checked when the inventory is
loaded, exposed as `Inventory.parallel`."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from foobar_ops.core.errors import InventoryError
from foobar_ops.core.inventory import Inventory, load_inventory, parse_inventory
from foobar_ops.stack import load_inventory as load_stack_inventory
from tests.unit.inventories import lab_doc, write_doc


def load(tmp_path: Path, ssh: str | None) -> Inventory:
    """Load a two-host inventory whose defaults.ssh is the given YAML text (None: no ssh key).

    tmp_path: pytest's temporary directory.
    ssh: the body of defaults.ssh, one option per line.
    """
    defaults = "" if ssh is None else "defaults:\n  ssh:\n" + textwrap.indent(textwrap.dedent(ssh), "    ")
    text = defaults + "hosts:\n  web-01:\n    address: 10.77.0.11\n  web-02:\n    address: 10.77.0.12\n"
    path = tmp_path / "inventory.yml"
    path.write_text(text)
    return load_inventory(path)


@pytest.mark.parametrize("value", [1, 40, 256])
def test_a_good_value_is_the_inventorys_fan_out_cap(tmp_path, value):
    inv = load(tmp_path, f"connect_timeout: 5\nparallel: {value}\n")
    assert inv.parallel == value and type(inv.parallel) is int
    # a run-wide setting: it is not an option of any host's connection
    assert all(not hasattr(h.ssh, "parallel") and h.ssh.connect_timeout == 5.0 for h in inv.hosts.values())


@pytest.mark.parametrize("ssh", [None, "connect_timeout: 5\n", "parallel: null\n"])
def test_the_default_is_ten(tmp_path, ssh):
    assert load(tmp_path, ssh).parallel == 10


def test_the_lab_inventory_loads_with_the_default_and_with_a_value(tmp_path, monkeypatch):
    for name in ("TEST_DB_PW", "TEST_REPL_PW", "TEST_SUDO"):
        monkeypatch.setenv(name, "x")
    assert load_stack_inventory(write_doc(tmp_path, lab_doc())).parallel == 10
    doc = lab_doc()
    doc["defaults"]["ssh"]["parallel"] = 20
    inv = load_stack_inventory(write_doc(tmp_path, doc))
    assert inv.parallel == 20 and inv.with_vars("web-01", demo_port=1).parallel == 20


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("0", "0 is out of range; use a value from 1 to 256"),
        ("257", "257 is out of range; use a value from 1 to 256"),
        ("-3", "out of range"),
        ("2.5", "must be an integer"),
        ("'10'", "must be an integer"),
        ("true", "must be an integer"),
        ("[4]", "must be an integer"),
    ],
)
def test_a_bad_value_is_refused_naming_the_key(tmp_path, value, said):
    with pytest.raises(InventoryError) as caught:
        load(tmp_path, f"parallel: {value}\n")
    assert caught.value.key == "defaults.ssh.parallel" and caught.value.host is None
    assert said in str(caught.value) and "key 'defaults.ssh.parallel'" in str(caught.value)
    assert str(tmp_path / "inventory.yml") in str(caught.value)


def test_a_hosts_own_parallel_is_refused(tmp_path):
    text = "hosts:\n  web-01:\n    address: 10.77.0.11\n    ssh:\n      parallel: 4\n"
    with pytest.raises(InventoryError) as caught:
        parse_inventory(text, tmp_path / "inventory.yml")
    assert caught.value.host == "web-01" and caught.value.key == "ssh.parallel"
    assert "defaults.ssh.parallel" in str(caught.value)


def test_a_misspelt_key_is_refused_with_a_suggestion(tmp_path):
    with pytest.raises(InventoryError) as caught:
        load(tmp_path, "paralel: 4\n")
    assert "did you mean 'parallel'" in str(caught.value)
