"""Operations on the stack as plain functions: what the CLI, the runbooks and the tests all call.

Each takes an inventory (a loaded Inventory, or the path of one), does one job, journals what it
changes and returns an object that prints and renders in a notebook.
"""

from __future__ import annotations

from .adhoc import run_command
from .db import db_failover, db_status, db_switchover, db_unfence
from .deploy import apply_plan, apply_states, deploy, plan, rollback
from .lb import lb_drain, lb_maint, lb_ready, lb_stat
from .loadtest import loadtest, loadtest_collect, loadtest_history, loadtest_schedule, loadtest_unschedule
from .site import verify

__all__ = [
    "apply_plan",
    "db_failover",
    "db_status",
    "db_switchover",
    "db_unfence",
    "apply_states",
    "deploy",
    "lb_drain",
    "lb_maint",
    "lb_ready",
    "lb_stat",
    "loadtest",
    "loadtest_collect",
    "loadtest_history",
    "loadtest_schedule",
    "loadtest_unschedule",
    "plan",
    "rollback",
    "run_command",
    "verify",
]
