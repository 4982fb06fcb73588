"""Operations on the stack as plain functions: what the CLI, the runbooks and the tests all call.

Each takes an inventory (a loaded Inventory, or the path of one), does one job, journals what it
changes and returns an object that prints and renders in a notebook.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what each name is; at run time an operation's module is imported when first used
    from .adhoc import run_command
    from .apply import apply_plan, apply_states, deploy, plan, rollback
    from .baseline import loadtest_baseline
    from .changecontrol import approve_plan, show_plan
    from .db import db_failover, db_status, db_switchover, db_unfence
    from .firewall import firewall_check
    from .health import alert_receiver, health, metrics, records_alerts
    from .hostlist import hosts, ping
    from .lab import lab_destroy, lab_down, lab_ssh_argv, lab_status, lab_up
    from .lb import lb_drain, lb_handover, lb_maint, lb_ready, lb_stat, lb_status
    from .loadtesting import loadtest, loadtest_collect, loadtest_history, loadtest_schedule, loadtest_unschedule
    from .records import open_journal, record_paths, records_changes, records_results, records_run, records_runs
    from .site import verify
    from .tls import tls_rotate, tls_status

__all__ = [
    "alert_receiver",
    "apply_plan",
    "approve_plan",
    "show_plan",
    "db_failover",
    "db_status",
    "db_switchover",
    "db_unfence",
    "apply_states",
    "deploy",
    "firewall_check",
    "health",
    "hosts",
    "lab_destroy",
    "lab_down",
    "lab_ssh_argv",
    "lab_status",
    "lab_up",
    "lb_drain",
    "lb_handover",
    "lb_maint",
    "lb_ready",
    "lb_stat",
    "lb_status",
    "loadtest",
    "loadtest_baseline",
    "loadtest_collect",
    "loadtest_history",
    "loadtest_schedule",
    "loadtest_unschedule",
    "metrics",
    "open_journal",
    "ping",
    "plan",
    "record_paths",
    "records_alerts",
    "records_changes",
    "records_results",
    "records_run",
    "records_runs",
    "rollback",
    "run_command",
    "tls_rotate",
    "tls_status",
    "verify",
]

#: the module of each operation
_LAZY: dict[str, str] = {
    "alert_receiver": ".health",
    "health": ".health",
    "metrics": ".health",
    "records_alerts": ".health",
    "apply_plan": ".apply",
    "approve_plan": ".changecontrol",
    "show_plan": ".changecontrol",
    "apply_states": ".apply",
    "db_failover": ".db",
    "db_status": ".db",
    "db_switchover": ".db",
    "db_unfence": ".db",
    "deploy": ".apply",
    "firewall_check": ".firewall",
    "hosts": ".hostlist",
    "lab_destroy": ".lab",
    "lab_down": ".lab",
    "lab_ssh_argv": ".lab",
    "lab_status": ".lab",
    "lab_up": ".lab",
    "lb_drain": ".lb",
    "lb_handover": ".lb",
    "lb_maint": ".lb",
    "lb_ready": ".lb",
    "lb_stat": ".lb",
    "lb_status": ".lb",
    "loadtest": ".loadtesting",
    "loadtest_baseline": ".baseline",
    "loadtest_collect": ".loadtesting",
    "loadtest_history": ".loadtesting",
    "loadtest_schedule": ".loadtesting",
    "loadtest_unschedule": ".loadtesting",
    "open_journal": ".records",
    "ping": ".hostlist",
    "plan": ".apply",
    "record_paths": ".records",
    "records_changes": ".records",
    "records_results": ".records",
    "records_run": ".records",
    "records_runs": ".records",
    "rollback": ".apply",
    "run_command": ".adhoc",
    "tls_rotate": ".tls",
    "tls_status": ".tls",
    "verify": ".site",
}


def __getattr__(name: str) -> Any:
    """Import an operation's module when the operation is first used: the command line starts
    without the journal's, the engine's or the load test's dependencies until a command needs them."""
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
