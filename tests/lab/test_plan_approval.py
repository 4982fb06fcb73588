"""Two-person change control on the lab, with identities given explicitly (FOOBAR_OPS_USER): alice
plans a change, her own approval is refused, bob approves, alice applies it and the journal shows
who planned, approved and applied it; an edited plan and a change without a plan are refused and
change nothing."""

from __future__ import annotations

import json

from tests.conftest import LAB_INVENTORY, run_cli
from tests.lab.helpers import apply

SITE = "/etc/nginx/sites-enabled/foobar.conf"


def test_alice_plans_bob_approves_alice_applies_and_an_edited_plan_is_refused(lab, tmp_path, monkeypatch):
    done, _ = apply()
    assert done.code == 0, done
    text = LAB_INVENTORY.read_text()
    assert "\nstack:\n" in text
    inv = tmp_path / "controlled.yml"
    inv.write_text(text.replace("\nstack:\n", "\nstack:\n  change_control: {require_approval: true}\n", 1))
    plan = tmp_path / "nginx.plan.json"
    original = lab.run("web-02", ["cat", SITE]).stdout
    try:
        assert lab.run("web-02", ["sh", "-c", f"echo '# drifted by hand' >> {SITE}"]).returncode == 0

        monkeypatch.setenv("FOOBAR_OPS_USER", "alice")
        direct = run_cli("apply", "-i", inv, "nginx", "--hosts", "web-02")
        assert direct.code == 2 and "requires approval (stack.change_control)" in direct.err
        assert "# drifted by hand" in lab.run("web-02", ["cat", SITE]).stdout  # nothing changed

        planned = run_cli("apply", "-i", inv, "nginx", "--hosts", "web-02", "--test", "--save-plan", plan, "--json")
        assert planned.code == 0, planned
        assert planned.json()["summary"]["pending"] >= 1, planned.json()["summary"]
        refused = run_cli("plan", "approve", plan)
        assert refused.code == 2 and "its approval takes someone else" in refused.err
        unapproved = run_cli("apply", "-i", inv, "--plan", plan)
        assert unapproved.code == 2 and "not approved by anyone but its author" in unapproved.err

        monkeypatch.setenv("FOOBAR_OPS_USER", "bob")
        approved = run_cli("plan", "approve", plan, "--json")
        assert approved.code == 0, approved
        assert approved.json()["approved_by"] == "bob" and approved.json()["planned_by"] == "alice"

        monkeypatch.setenv("FOOBAR_OPS_USER", "alice")
        applied = run_cli("apply", "-i", inv, "--plan", plan, "--json")
        assert applied.code == 0, applied
        report = applied.json()
        assert report["summary"]["changed"] >= 1, report["summary"]
        assert "# drifted by hand" not in lab.run("web-02", ["cat", SITE]).stdout
        row = json.loads(run_cli("records", "show", report["run_id"], "--json").out)["run"]
        assert (row["user"], row["planned_by"], row["approved_by"]) == ("alice", "alice", "bob")
        assert row["user_source"] == "FOOBAR_OPS_USER"
        listed = run_cli("records", "list", "--limit", "5")
        assert "PLANNED_BY" in listed.out and "APPROVED_BY" in listed.out
        assert "alice (FOOBAR_OPS_USER)" in listed.out

        edited = json.loads(plan.read_text())
        edited["selection"]["hosts"] = "web-01"
        plan.write_text(json.dumps(edited))
        refused = run_cli("apply", "-i", inv, "--plan", plan)
        assert refused.code == 2 and "was edited after it was made" in refused.err
    finally:
        monkeypatch.delenv("FOOBAR_OPS_USER")
        if "# drifted by hand" in lab.run("web-02", ["cat", SITE]).stdout:
            lab.run("web-02", ["sh", "-c", f"printf %s {json.dumps(original)} > {SITE}"])
            apply(LAB_INVENTORY, "nginx", "--hosts", "web-02")
