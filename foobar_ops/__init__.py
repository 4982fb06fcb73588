"""foobar_ops: build, change and verify the foobar.com web stack.

HAProxy in front of two web servers (Nginx, the app under gunicorn, the code base), backed by a
MariaDB primary-replica pair; idempotent states over SSH, runbooks with papermill, a change journal.

The public API, in one import (e.g. in a runbook): `import foobar_ops as fo`, then
`inv = fo.load_inventory("inventories/lab.yml")`, `fo.plan(inv)`, `fo.deploy(inv)`, `fo.verify(inv)`,
`fo.HAProxy(inv).stat()`, `fo.journal.runs()`.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .core import errors as _errors  # the error tree: it imports nothing
from .core.version import __version__

if TYPE_CHECKING:  # what each public name is; at run time a name is imported when first used
    from .core import journal, paths, states
    from .core.engine import Phase, apply
    from .core.errors import (
        ApprovalError,
        AuthError,
        BuildError,
        ConnectionFailed,
        CutOffChangeRunning,
        DBError,
        EarlierChangeRunning,
        FactError,
        FirewallError,
        FoobarOpsError,
        HealthError,
        HostError,
        HostKeyError,
        HostUnreachable,
        IdentityError,
        InventoryError,
        JournalError,
        LabError,
        LastServerUp,
        LBError,
        LoadTestError,
        PlanFileError,
        ReplicationError,
        RoleError,
        RunbookNotFound,
        RunbookParameterError,
        RunLocked,
        ScheduleError,
        SecretError,
        SecretTooShort,
        StateError,
        SudoError,
        TemplateError,
        TLSError,
        TopologyError,
        YAMLRefused,
    )
    from .core.interrupts import Terminated
    from .core.inventory import Host, Inventory
    from .core.journal import Journal, changes, runs
    from .core.progress import Progress
    from .core.report import Report
    from .core.result import HostOutcome, Outcome, Result, Status
    from .core.secrets import Secret
    from .ops import (
        apply_plan,
        apply_states,
        approve_plan,
        db_failover,
        db_status,
        db_switchover,
        db_unfence,
        deploy,
        firewall_check,
        health,
        lb_drain,
        lb_handover,
        lb_maint,
        lb_ready,
        lb_stat,
        lb_status,
        loadtest,
        metrics,
        plan,
        records_alerts,
        rollback,
        run_command,
        tls_rotate,
        tls_status,
        verify,
    )
    from .runbooks import SecretRef, check_parameters, runbook
    from .stack import load_inventory, observe
    from .stack.lb import HAProxy
    from .stack.replication import probe as replication_probe
    from .stack.verify import Verification

__all__ = [
    "__version__",
    # inventory and running
    "load_inventory",
    "Inventory",
    "Host",
    "Secret",
    # operations
    "apply_plan",
    "approve_plan",
    "db_status",
    "db_switchover",
    "db_failover",
    "db_unfence",
    "replication_probe",
    "plan",
    "deploy",
    "firewall_check",
    "rollback",
    "apply_states",
    "verify",
    "run_command",
    "tls_status",
    "tls_rotate",
    "health",
    "metrics",
    "records_alerts",
    "lb_stat",
    "lb_drain",
    "lb_ready",
    "lb_maint",
    "lb_status",
    "lb_handover",
    "loadtest",
    "HAProxy",
    # the engine and its results
    "apply",
    "Phase",
    "states",
    "Report",
    "Result",
    "Status",
    "HostOutcome",
    "Outcome",
    "Verification",
    # looking at the running stack (read-only)
    "observe",
    # records
    "journal",
    "Journal",
    "runs",
    "changes",
    "paths",
    # runbooks
    "runbook",
    "run_runbook",
    "check_parameters",
    "SecretRef",
    "Progress",
    # errors: every error a caller can catch (all in foobar_ops.core.errors, found there by name),
    # and Terminated
    "FoobarOpsError",
    "InventoryError",
    "SecretError",
    "HostError",
    "ConnectionFailed",
    "HostUnreachable",
    "HostKeyError",
    "AuthError",
    "SudoError",
    "CutOffChangeRunning",
    "RunLocked",
    "EarlierChangeRunning",
    "LabError",
    "StateError",
    "FactError",
    "SecretTooShort",
    "TemplateError",
    "YAMLRefused",
    "PlanFileError",
    "ApprovalError",
    "IdentityError",
    "ScheduleError",
    "JournalError",
    "TopologyError",
    "RoleError",
    "BuildError",
    "DBError",
    "ReplicationError",
    "LBError",
    "LastServerUp",
    "FirewallError",
    "TLSError",
    "HealthError",
    "AlertPayloadError",
    "LoadTestError",
    "RunbookParameterError",
    "RunbookNotFound",
    "Terminated",
]


#: where each public name lives: (module, attribute); attribute None: the module itself
_LAZY: dict[str, tuple[str, str | None]] = {
    **{name: (".core." + name, None) for name in ("journal", "paths", "states")},
    **{name: (".core.engine", name) for name in ("Phase", "apply")},
    "Terminated": (".core.interrupts", "Terminated"),
    **{name: (".core.inventory", name) for name in ("Host", "Inventory")},
    **{name: (".core.journal", name) for name in ("Journal", "changes", "runs")},
    "Progress": (".core.progress", "Progress"),
    "Report": (".core.report", "Report"),
    **{name: (".core.result", name) for name in ("HostOutcome", "Outcome", "Result", "Status")},
    "Secret": (".core.secrets", "Secret"),
    **{
        name: (".ops", name)
        for name in (
            "apply_plan",
            "approve_plan",
            "apply_states",
            "db_failover",
            "db_status",
            "db_switchover",
            "db_unfence",
            "deploy",
            "firewall_check",
            "health",
            "lb_drain",
            "lb_handover",
            "lb_maint",
            "lb_ready",
            "lb_stat",
            "lb_status",
            "loadtest",
            "metrics",
            "plan",
            "records_alerts",
            "rollback",
            "run_command",
            "tls_rotate",
            "tls_status",
            "verify",
        )
    },
    **{name: (".runbooks", name) for name in ("SecretRef", "check_parameters", "runbook")},
    "load_inventory": (".stack", "load_inventory"),
    "observe": (".stack.observe", None),
    "HAProxy": (".stack.lb", "HAProxy"),
    "replication_probe": (".stack.replication", "probe"),
    "Verification": (".stack.verify", "Verification"),
}


def __getattr__(name: str) -> Any:
    """Import a public name when it is first used: `import foobar_ops` alone imports no
    dependency (SQLAlchemy, pandas, paramiko, Jinja2, papermill...) before it is needed."""
    if name in __all__ and isinstance(getattr(_errors, name, None), type):
        return getattr(_errors, name)  # an error class: every one lives in core.errors
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    found = import_module(module, __name__)
    value = found if attribute is None else getattr(found, attribute)
    globals()[name] = value  # asked once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def run_runbook(name: str, inventory: str | None = None, parameters: dict | None = None, **kw: object) -> object:
    """Run a runbook with papermill (see foobar_ops.runbooks.runner.run); return its RunbookRun."""
    from .runbooks import runner

    return runner.run(name, inventory, parameters, **kw)  # type: ignore[arg-type]
