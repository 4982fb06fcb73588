"""The alert rules, tested with `promtool test rules` (no hosts needed): every rule has a case
where it fires and one where it does not, and the lab's configs pass promtool and amtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from foobar_ops.stack import load_inventory
from foobar_ops.stack import monitoring as mon
from tests.unit.inventories import ROOT, lab_doc, write_doc

CASES = Path(__file__).resolve().parent / "promtool" / "rules_test.yml"
TOOLS = ROOT / ".venv-tools" / "bin"


def tool(name: str) -> str:
    """promtool or amtool: from `make tools` (Debian's own packages, unpacked), else the PATH."""
    found = TOOLS / name if (TOOLS / name).exists() else shutil.which(name)
    assert found, f"{name} is missing: `make tools` unpacks it into {TOOLS}"
    return str(found)


def promtool_test(folder: Path, rules_text: str) -> subprocess.CompletedProcess:
    (folder / "rules.yml").write_text(rules_text)
    shutil.copy(CASES, folder / "rules_test.yml")
    return subprocess.run(
        [tool("promtool"), "test", "rules", str(folder / "rules_test.yml")], capture_output=True, text=True
    )


def test_promtool_test_rules_passes_for_every_rule(tmp_path):
    done = promtool_test(tmp_path, mon.rules_file())
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_rule_has_a_case_where_it_fires_and_one_where_it_does_not():
    cases = yaml.safe_load(CASES.read_text())
    fired: set[tuple[str, str]] = set()
    quiet: set[str] = set()
    for case in cases["tests"]:
        for check in case.get("alert_rule_test", []):
            if check["exp_alerts"]:
                fired |= {(check["alertname"], a["exp_labels"]["severity"]) for a in check["exp_alerts"]}
            else:
                quiet.add(check["alertname"])
    rules = {(r["alert"], r["labels"]["severity"]) for r in mon.rules()}
    assert rules <= fired, f"rules never seen firing: {sorted(rules - fired)}"
    assert {name for name, _ in rules} <= quiet, f"rules never seen quiet: {sorted({n for n, _ in rules} - quiet)}"
    assert {name for name, _ in rules} == set(mon.RULE_NAMES)


@pytest.mark.parametrize(
    "rule, before, after",
    [
        ("ReplicationLagHigh", "seconds_behind_master > 5", "seconds_behind_master > 50"),
        ("DiskNearlyFull", "< 0.1", "< 0.01"),
        ("VIPHeldByTwo", "sum(foobar_vip_held) > 1", "sum(foobar_vip_held) > 2"),
        ("BackendServerDown", 'state="DOWN"} == 1', 'state="UP"} == 0'),
    ],
)
def test_a_rule_changed_fails_its_cases(tmp_path, rule, before, after):
    text = mon.rules_file()
    assert before in text, f"{rule}: {before!r} not in the rules"
    done = promtool_test(tmp_path, text.replace(before, after))
    said = done.stdout + done.stderr
    assert done.returncode != 0 and f"alertname: {rule}," in said, said


def test_the_rules_take_the_inventorys_limits_and_for(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_DB_PW", "app-pw-1234567890")
    monkeypatch.setenv("TEST_REPL_PW", "repl-pw-1234567890")
    doc = lab_doc(monitoring=True)
    doc["stack"]["database"] = {"max_lag_s": 12}
    doc["stack"]["monitoring"].update(max_5xx_ratio=0.2, disk_min_free=0.05, alert_for={"TargetDown": "3m"})
    inv = load_inventory(write_doc(tmp_path, doc))
    by_name = {(r["alert"], r["labels"]["severity"]): r for r in mon.rules(inv)}
    assert by_name[("ReplicationLagHigh", "warning")]["expr"].endswith("> 12")
    assert by_name[("High5xxRate", "warning")]["expr"].endswith("> 0.2")
    assert by_name[("DiskNearlyFull", "warning")]["expr"].endswith("< 0.05")
    assert by_name[("TargetDown", "warning")]["for"] == "3m"
    assert "for" not in by_name[("NoBackendServerUp", "critical")]


def test_the_lab_configs_pass_promtool_and_amtool(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_DB_PW", "app-pw-1234567890")
    monkeypatch.setenv("TEST_REPL_PW", "repl-pw-1234567890")
    inv = load_inventory(write_doc(tmp_path, lab_doc(tls=False, monitoring=True)))
    rules = tmp_path / "rules.yml"
    rules.write_text(mon.rules_file(inv))
    config = tmp_path / "prometheus.yml"
    config.write_text(mon.prometheus_config(inv).replace(mon.RULES_YML, str(rules)))
    manager = tmp_path / "alertmanager.yml"
    manager.write_text(mon.alertmanager_config(inv))
    for argv in (
        [tool("promtool"), "check", "rules", str(rules)],
        [tool("promtool"), "check", "config", str(config)],
        [tool("amtool"), "check-config", str(manager)],
    ):
        done = subprocess.run(argv, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


def test_a_broken_receiver_is_refused_by_amtool(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_DB_PW", "app-pw-1234567890")
    monkeypatch.setenv("TEST_REPL_PW", "repl-pw-1234567890")
    doc = lab_doc(monitoring=True)
    doc["stack"]["monitoring"]["receivers"] = [{"name": "mail", "email_configs": [{"to": "oncall@example.com"}]}]
    inv = load_inventory(write_doc(tmp_path, doc))
    manager = tmp_path / "alertmanager.yml"
    manager.write_text(mon.alertmanager_config(inv))  # no smarthost nor from: Alertmanager refuses it
    done = subprocess.run([tool("amtool"), "check-config", str(manager)], capture_output=True, text=True)
    assert done.returncode != 0 and "smarthost" in (done.stdout + done.stderr)
