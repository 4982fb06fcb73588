"""Operations on the stack as plain functions: what the CLI, the runbooks and the tests all call.

Each takes an inventory (a loaded Inventory, or the path of one), does one job, journals what it
changes and returns an object that prints and renders in a notebook.
"""

from __future__ import annotations

from .adhoc import run_command
from .baseline import loadtest_baseline
from .db import db_failover, db_status, db_switchover, db_unfence
from .deploy import apply_plan, apply_states, deploy, plan, rollback
from .hostlist import hosts, ping
from .lab import lab_destroy, lab_down, lab_ssh_argv, lab_status, lab_up
from .lb import lb_drain, lb_maint, lb_ready, lb_stat
from .loadtest import loadtest, loadtest_collect, loadtest_history, loadtest_schedule, loadtest_unschedule
from .records import open_journal, record_paths, records_changes, records_results, records_run, records_runs
from .site import verify

__all__ = [
    "apply_plan",
    "db_failover",
    "db_status",
    "db_switchover",
    "db_unfence",
    "apply_states",
    "deploy",
    "hosts",
    "lab_destroy",
    "lab_down",
    "lab_ssh_argv",
    "lab_status",
    "lab_up",
    "lb_drain",
    "lb_maint",
    "lb_ready",
    "lb_stat",
    "loadtest",
    "loadtest_baseline",
    "loadtest_collect",
    "loadtest_history",
    "loadtest_schedule",
    "loadtest_unschedule",
    "open_journal",
    "ping",
    "plan",
    "record_paths",
    "records_changes",
    "records_results",
    "records_run",
    "records_runs",
    "rollback",
    "run_command",
    "verify",
]
