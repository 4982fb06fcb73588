"""Two-person change control: a saved plan is approved by someone other than its author, and an
inventory that requires it (stack.change_control.require_approval) changes its hosts' roles only
through a plan approved as it is.

Who is who comes from journal.whoami(): $FOOBAR_OPS_USER when given, else the login (or sudo)
name. The journal is the authority: an approval is a run `plan approve` recorded with the plan's
digest and author; the copy written into the plan file is for people to read."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import ApprovalError
from ..core.inventory import Inventory
from ..stack.topology import require_approval
from .common import journal_of, recorded

if TYPE_CHECKING:
    from ..core.journal import Journal
    from ..core.savedplan import SavedPlan

#: What a change under control is told to do instead.
HOW = (
    "plan it (apply --test --save-plan FILE), have someone else approve it (plan approve FILE), apply it (--plan FILE)"
)


def _refuse(
    journal: Journal | str | Path | None, command: str, inventory: Any, params: dict[str, Any], why: str
) -> None:
    """Journal a refused run, then raise ApprovalError(why)."""
    opened = journal_of(journal)
    run_id = opened.start_run(command=command, inventory=inventory, parameters=recorded(params))
    opened.finish_run(run_id, "refused", why)
    raise ApprovalError(why)


def controlled(
    inventory: Inventory,
    test: bool,
    approval: dict[str, str] | None,
    journal: Journal | str | Path | None,
    command: str,
    params: dict[str, Any],
) -> None:
    """Refuse a change (not a plan) made without an approved plan where the inventory requires one."""
    if not test and approval is None and require_approval(inventory):
        _refuse(
            journal,
            command,
            inventory,
            params,
            f"inventory {inventory.path} requires approval (stack.change_control): {HOW}",
        )


def author(saved: SavedPlan, opened: Journal, plan_file: str | Path) -> str:
    """Who made the plan: the user of its planning run in the journal, which must be a plan run
    that recorded this very plan (its digest) and this author; else ApprovalError (the file was
    made elsewhere, or made to say something its run did not save)."""
    row = opened.run(saved.run_id) if saved.run_id else None
    if row is None:
        raise ApprovalError(
            f"plan {plan_file}: its planning run {saved.run_id or '?'} is not in the journal {opened.path}: "
            "plan, approve and apply with one journal"
        )
    if not row.get("test") or row.get("plan_digest") != saved.digest():
        raise ApprovalError(
            f"plan {plan_file} is not the plan its run {saved.run_id} saved (the journal holds another digest): "
            "make a new plan"
        )
    on_record = str(row.get("user") or "")
    if not on_record or on_record != saved.planned_by or row.get("planned_by") != saved.planned_by:
        raise ApprovalError(
            f"plan {plan_file} says it was made by {saved.planned_by!r}, but its planning run "
            f"{saved.run_id} was {on_record!r}'s: make a new plan"
        )
    return on_record


def same(a: str, b: str) -> bool:
    """Whether two identities are the same person (case aside: Alice is alice)."""
    return a.casefold() == b.casefold()


def approval_of(
    inventory: Inventory,
    saved: SavedPlan,
    plan_file: str | Path,
    journal: Journal | str | Path | None,
    command: str,
    params: dict[str, Any],
) -> dict[str, str] | None:
    """What an apply of this plan records about its approval; under change control, ApprovalError
    (journaled as a refused run) unless someone other than its author approved it as it is."""
    opened = journal_of(journal)
    digest = saved.digest()
    required = require_approval(inventory)
    try:
        by = author(saved, opened, plan_file)
    except ApprovalError as err:
        if required:
            _refuse(opened, command, inventory, params, str(err))
        by = saved.planned_by
    others = [a for a in opened.approvals(digest) if not same(str(a["user"]), by)]
    if required and not others:
        stale = [a for a in saved.approvals if a.get("digest") != digest]
        if stale:
            why = (
                f"plan {plan_file} changed since {stale[-1].get('by')} approved it (approved "
                f"{str(stale[-1].get('digest'))[:12]}, now {digest[:12]}): make and approve a new plan"
            )
        else:
            why = (
                f"plan {plan_file} (made by {by} in run {saved.run_id}) is not approved by anyone but its "
                f"author: someone else runs `foobar-ops plan approve {plan_file}` first"
            )
        _refuse(opened, command, inventory, params, why)
    found = {"planned_by": by, "plan_digest": digest}
    if others:
        found["approved_by"] = ",".join(dict.fromkeys(a["user"] for a in others))
    return found


def approve_plan(
    plan_file: str | Path,
    *,
    journal: Journal | str | Path | None = None,
    command: str = "python: approve_plan",
) -> dict[str, Any]:
    """Approve a saved plan as the one running (journal.whoami()); return what was recorded:
    plan, digest, planned_by, approved_by, run_id, and already (approved before by the same person).

    The plan's author cannot approve it (ApprovalError, journaled as refused); a plan edited since
    it was made is refused (PlanFileError). The approval is journaled (a run `plan approve`, with
    the plan's digest and author) and written into the plan file.

    plan_file: the plan.
    journal: the journal (default: the records folder's); the one the apply will read.
    command: what is recorded as having started the approval (kept in its parameters).
    """
    from ..core.journal import APPROVE_COMMAND, whoami
    from ..core.savedplan import SavedPlan

    me = whoami()
    saved = SavedPlan.load(plan_file)
    opened = journal_of(journal)
    digest = saved.digest()
    params = {"plan": str(plan_file), "planned_in": saved.run_id, "origin": command}
    by = author(saved, opened, plan_file)
    if same(me, by):
        run_id = opened.start_run(
            command=APPROVE_COMMAND, parameters=params, approval={"planned_by": by, "plan_digest": digest}
        )
        why = f"{me} made plan {plan_file} (run {saved.run_id}): its approval takes someone else"
        opened.finish_run(run_id, "refused", why)
        raise ApprovalError(why)
    done = {"plan": str(plan_file), "digest": digest, "planned_by": by, "approved_by": me}
    before = [a for a in opened.approvals(digest) if same(str(a["user"]), me)]
    if before:
        return {**done, "run_id": before[0]["run_id"], "already": True}
    run_id = opened.start_run(
        command=APPROVE_COMMAND, parameters=params, approval={"planned_by": by, "plan_digest": digest}
    )
    opened.finish_run(run_id, "ok")
    saved.approvals.append(
        {"by": me, "at": datetime.now(UTC).isoformat(timespec="seconds"), "digest": digest, "run_id": run_id}
    )
    saved.save(plan_file)
    return {**done, "run_id": run_id, "already": False}


def show_plan(plan_file: str | Path, *, journal: Journal | str | Path | None = None) -> dict[str, Any]:
    """What a saved plan is: its author, digest, what it would change, and its approvals on record.

    plan_file: the plan.
    journal: the journal its approvals are recorded in (default: the records folder's).
    """
    from ..core.savedplan import SavedPlan

    saved = SavedPlan.load(plan_file)
    opened = journal_of(journal)
    digest = saved.digest()
    return {
        "plan": str(plan_file),
        "digest": digest,
        "planned_by": saved.planned_by,
        "planned_in": saved.run_id,
        "created": saved.created,
        "inventory": saved.inventory,
        "selection": saved.selection,
        "pending": saved.pending,
        "approved_by": [a["user"] for a in opened.approvals(digest)],
    }
