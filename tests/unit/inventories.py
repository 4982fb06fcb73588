"""The lab's inventory as unit tests vary it: read as a mapping with its secrets as env:
references the tests set, changed, and written where a test reads it."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "inventories" / "lab.yml"


def lab_doc(tls: bool = False, monitoring: bool = False) -> dict:
    """The lab inventory as a mapping; its secrets are env:TEST_DB_PW, env:TEST_REPL_PW and the
    sudo password env:TEST_SUDO. Without tls, its stack.tls is left out (the site over plain http:
    no certificate files to name); with it, stack.tls is kept and the test names tls_cert/tls_key.
    Without monitoring, stack.monitoring and the monitoring host are left out; with it, the MySQL
    exporter's password is env:TEST_EXPORTER_PW."""
    doc = yaml.safe_load(LAB.read_text())
    if not tls:
        doc["stack"].pop("tls", None)
    doc["secrets"] = {"mysql_app_password": "env:TEST_DB_PW", "mysql_repl_password": "env:TEST_REPL_PW"}
    if monitoring:
        doc["secrets"]["mysql_exporter_password"] = "env:TEST_EXPORTER_PW"
    else:
        doc["stack"].pop("monitoring", None)
        watchers = [n for n, h in doc["hosts"].items() if "monitoring" in h.get("roles", [])]
        for name in watchers:
            del doc["hosts"][name]
        for group, members in list(doc.get("groups", {}).items()):
            listed = members["hosts"] if isinstance(members, dict) else members
            if any(n in listed for n in watchers):
                del doc["groups"][group]
    doc["defaults"]["sudo_password"] = "env:TEST_SUDO"
    return doc


def write_doc(folder: Path, doc: dict | str, name: str = "lab.yml") -> Path:
    """Write an inventory and return its path.

    folder: where (a test's tmp_path).
    doc: the mapping (written in its own order) or YAML text as it is.
    name: the file's name.
    """
    path = folder / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False))
    return path
