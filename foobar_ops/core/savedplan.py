"""A reviewed plan is the plan applied: a test-mode run saved to a file (what each state on each
host saw and would do, as digests), and applied later only where the hosts still match it."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import PlanFileError
from .report import Report

FORMAT = "foobar-ops plan 1"


@dataclass
class SavedPlan:
    """A saved plan.

    inventory, inventory_sha256: the inventory it was made with (it must not have changed).
    selection: what was planned (roles, hosts pattern, states file), applied the same way.
    digests: host -> state id -> digest of what the state saw and would do.
    pending: host -> the ids of the states that would change.
    run_id, created: the test-mode run that made it.
    planned_by: who made it (journal.whoami()).
    approvals: who approved it, as recorded with the plan (by, at, digest, run_id); the journal's
        `plan approve` runs are what an apply under change control trusts (see ops.apply_plan).

    The file carries its digest (`digest`): what the plan says, approvals left out. A file whose
    content no longer matches it was edited after it was made, and is refused.
    """

    inventory: str
    inventory_sha256: str
    selection: dict[str, Any]
    digests: dict[str, dict[str, str]]
    pending: dict[str, list[str]] = field(default_factory=dict)
    run_id: str = ""
    created: str = ""
    planned_by: str = ""
    approvals: list[dict[str, str]] = field(default_factory=list)

    def digest(self) -> str:
        """The plan's digest: sha256 of what it says (everything but its approvals)."""
        body = {k: v for k, v in asdict(self).items() if k != "approvals"}
        return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    @classmethod
    def from_report(cls, report: Report, inventory: Any, selection: dict[str, Any]) -> SavedPlan:
        """Make the plan of a test-mode run.

        report: the run's Report (test mode).
        inventory: the Inventory it ran with.
        selection: what was planned.
        """
        if not report.test:
            raise PlanFileError("only a test-mode run (a plan) can be saved as a plan")
        from .journal import whoami

        digests: dict[str, dict[str, str]] = {}
        pending: dict[str, list[str]] = {}
        for r in report.results:
            if r.digest is not None:
                digests.setdefault(r.host, {})[r.id] = r.digest
            if r.pending:
                pending.setdefault(r.host, []).append(r.id)
        return cls(
            str(inventory.path),
            inventory.sha256,
            selection,
            digests,
            pending,
            report.run_id,
            datetime.now(UTC).isoformat(timespec="seconds"),
            whoami(),
        )

    def save(self, path: str | Path) -> Path:
        """Write the plan (atomically); return its path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "w") as out:
            json.dump({"format": FORMAT, **asdict(self), "digest": self.digest()}, out, indent=2, sort_keys=True)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> SavedPlan:
        """Read a saved plan; PlanFileError names what is wrong with the file."""
        try:
            doc = json.loads(Path(path).read_text())
        except (OSError, ValueError) as err:
            raise PlanFileError(f"plan {path}: cannot read it: {err}") from None
        if not isinstance(doc, dict) or doc.pop("format", None) != FORMAT:
            raise PlanFileError(f"plan {path}: not a foobar-ops plan (format {FORMAT!r})")
        sealed = doc.pop("digest", None)
        try:
            plan = cls(**doc)
        except TypeError as err:
            raise PlanFileError(f"plan {path}: {err}") from None
        if sealed is None:
            raise PlanFileError(f"plan {path} carries no digest (made by an older foobar_ops?): make a new plan")
        if sealed != plan.digest():
            raise PlanFileError(
                f"plan {path} was edited after it was made (run {plan.run_id}): its content no longer "
                "matches its digest; make a new plan"
            )
        return plan

    def check(self, inventory: Any) -> None:
        """Refuse an inventory other than the one planned with (its content changed)."""
        if inventory.sha256 != self.inventory_sha256:
            raise PlanFileError(
                f"the inventory {inventory.path} changed since the plan was made (run {self.run_id}): make a new plan"
            )
