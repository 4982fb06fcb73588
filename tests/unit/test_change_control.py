"""Two-person change control without hosts: identities, approvals recorded in the journal, and every
refusal (author approving, no approval, edited plan, a direct change) made before any host is asked
and journaled. The whole flow with an apply is proven on the lab (tests/lab/test_change_control.py)."""

from __future__ import annotations

import json

import pytest

from foobar_ops.core.errors import ApprovalError, IdentityError, PlanFileError
from foobar_ops.core.journal import Journal, whoami
from foobar_ops.core.savedplan import SavedPlan
from foobar_ops.ops import apply_plan, approve_plan, deploy, show_plan
from foobar_ops.stack import load_inventory
from tests.conftest import run_cli

from .inventories import lab_doc, write_doc


@pytest.fixture
def setup(tmp_path, monkeypatch):
    for name in ("TEST_DB_PW", "TEST_REPL_PW", "TEST_SUDO"):
        monkeypatch.setenv(name, "a-long-enough-secret-value-" + name.lower())
    doc = lab_doc()
    doc["stack"]["change_control"] = {"require_approval": True}
    inv_path = write_doc(tmp_path, doc)
    inv = load_inventory(inv_path)
    journal = Journal(tmp_path / "journal.sqlite")
    monkeypatch.setenv("FOOBAR_OPS_USER", "alice")
    planning = journal.start_run(command="foobar-ops apply --test", inventory=inv, test=True)
    journal.finish_run(planning, "ok")
    plan = SavedPlan(
        str(inv_path),
        inv.sha256,
        {"roles": ["nginx"], "hosts": None, "states": None},
        {"web-01": {"nginx.conf": "d1"}},
        {"web-01": ["nginx.conf"]},
        planning,
        "2026-12-06T00:00:00+00:00",
        whoami(),
    ).save(tmp_path / "plan.json")
    journal.set_plan(planning, SavedPlan.load(plan).digest(), "alice")  # as apply --save-plan records it
    return {"inv": inv, "inv_path": inv_path, "journal": journal, "plan": plan, "tmp": tmp_path}


def test_the_identity_given_explicitly_is_who_runs_and_a_bad_one_is_refused(monkeypatch):
    monkeypatch.setenv("FOOBAR_OPS_USER", "bob@example.com")
    assert whoami() == "bob@example.com"
    monkeypatch.setenv("FOOBAR_OPS_USER", "bob; rm -rf /")
    with pytest.raises(IdentityError, match="FOOBAR_OPS_USER"):
        whoami()


def test_the_author_cannot_approve_and_the_refusal_is_journaled(setup):
    with pytest.raises(ApprovalError, match="alice made plan .* its approval takes someone else"):
        approve_plan(setup["plan"], journal=setup["journal"])
    runs = setup["journal"].runs()
    refused = runs[runs["command"] == "plan approve"].iloc[0]
    assert refused["status"] == "refused" and refused["user"] == "alice"
    assert refused["user_source"] == "FOOBAR_OPS_USER"  # the journal shows the identity was given
    assert setup["journal"].approvals(SavedPlan.load(setup["plan"]).digest()) == []


def test_an_unapproved_plan_is_refused_before_any_host_is_asked(setup):
    with pytest.raises(ApprovalError, match="not approved by anyone but its author"):
        apply_plan(setup["inv"], setup["plan"], journal=setup["journal"])
    runs = setup["journal"].runs()
    assert runs.iloc[0]["status"] == "refused" and "plan approve" in runs.iloc[0]["error"]
    assert runs["results"].sum() == 0


def test_a_change_without_a_plan_is_refused_under_change_control(setup):
    with pytest.raises(ApprovalError, match="requires approval"):
        deploy(setup["inv"], ["nginx"], journal=setup["journal"])
    assert setup["journal"].runs().iloc[0]["status"] == "refused"


def test_bob_approves_the_approval_is_recorded_and_kept_with_the_plan(setup, monkeypatch):
    monkeypatch.setenv("FOOBAR_OPS_USER", "bob")
    done = approve_plan(setup["plan"], journal=setup["journal"])
    assert done["approved_by"] == "bob" and done["planned_by"] == "alice" and not done["already"]
    again = approve_plan(setup["plan"], journal=setup["journal"])
    assert again["already"] and again["run_id"] == done["run_id"]
    saved = SavedPlan.load(setup["plan"])  # the approval written into the file keeps its seal true
    assert [a["by"] for a in saved.approvals] == ["bob"]
    assert setup["journal"].approvals(saved.digest())[0]["user"] == "bob"
    assert show_plan(setup["plan"], journal=setup["journal"])["approved_by"] == ["bob"]


def test_an_edited_plan_is_refused_sealed_or_not(setup, monkeypatch):
    monkeypatch.setenv("FOOBAR_OPS_USER", "bob")
    approve_plan(setup["plan"], journal=setup["journal"])
    doc = json.loads(setup["plan"].read_text())
    doc["selection"]["roles"] = ["nginx", "haproxy"]
    setup["plan"].write_text(json.dumps(doc))
    with pytest.raises(PlanFileError, match="was edited after it was made"):
        apply_plan(setup["inv"], setup["plan"], journal=setup["journal"])
    doc.pop("digest")
    doc.pop("format")
    edited = SavedPlan(**doc)
    edited.save(setup["plan"])  # sealed again, as someone who knows the format could
    with pytest.raises(ApprovalError, match="is not the plan its run .* saved"):
        apply_plan(setup["inv"], setup["plan"], journal=setup["journal"])


@pytest.mark.parametrize(
    "forged, words",
    [
        ({"planned_by": "carol"}, "is not the plan its run .* saved"),
        ({"planned_by": "carol", "run_id": ""}, "its planning run \\? is not in the journal"),
        ({"planned_by": "carol", "run_id": "20990101-000000-abcdef"}, "is not in the journal"),
    ],
)
def test_a_plan_made_to_name_another_author_is_refused(setup, forged, words):
    doc = json.loads(setup["plan"].read_text())
    doc.pop("digest")
    doc.pop("format")
    doc.update(forged)
    SavedPlan(**doc).save(setup["plan"])  # sealed again, as someone who knows the format could
    with pytest.raises(ApprovalError, match=words):
        approve_plan(setup["plan"], journal=setup["journal"])  # alice approving "carol's" plan
    with pytest.raises(ApprovalError):
        apply_plan(setup["inv"], setup["plan"], journal=setup["journal"])


def test_the_author_in_other_letters_is_still_the_author(setup, monkeypatch):
    monkeypatch.setenv("FOOBAR_OPS_USER", "Alice")
    with pytest.raises(ApprovalError, match="its approval takes someone else"):
        approve_plan(setup["plan"], journal=setup["journal"])


def test_a_plan_without_its_digest_is_refused(setup):
    doc = json.loads(setup["plan"].read_text())
    doc.pop("digest")
    setup["plan"].write_text(json.dumps(doc))
    with pytest.raises(PlanFileError, match="carries no digest"):
        approve_plan(setup["plan"], journal=setup["journal"])


def test_the_command_line_approves_and_refuses_with_clear_words(setup, monkeypatch):
    journal = str(setup["tmp"] / "journal.sqlite")
    monkeypatch.setenv("FOOBAR_OPS_USER", "alice")
    refused = run_cli("plan", "approve", setup["plan"], "--journal", journal)
    assert refused.code == 2 and "its approval takes someone else" in refused.err
    monkeypatch.setenv("FOOBAR_OPS_USER", "bob")
    done = run_cli("plan", "approve", setup["plan"], "--journal", journal, "--json")
    assert done.code == 0 and done.json()["approved_by"] == "bob"
    shown = run_cli("plan", "show", setup["plan"], "--journal", journal)
    assert shown.code == 0 and "made by alice" in shown.out and "approved by: bob" in shown.out
