"""Load tests with Locust through the load balancer, each kept with its verdict and journaled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.errors import ApprovalError
from ..core.inventory import Inventory
from ..core.journal import Journal
from ..core.result import Result, Status
from ..stack import loadtest as lt
from ..stack.topology import db_replicas, require_approval, site_address
from .apply import deploy
from .common import inventory_of, journal_of


def loadtest(
    inventory: Inventory | str | Path,
    kind: str,
    *,
    users: int = 16,
    spawn_rate: float = 16,
    run_time: str = "20s",
    workers: int = 0,
    compare: bool | None = None,
    journal: Journal | str | Path | None = None,
    command: str | None = None,
    workers_on: list[str] | None = None,
) -> lt.LoadTest:
    """Run a load test (round-robin or read-scaling) and return it with its verdict; the run's files
    (verdict.json, Locust's CSVs and HTML report, its log) are kept under the records' loadtests/ and
    the run is journaled (one result per check).

    inventory: the Inventory, or its path.
    kind: round-robin or read-scaling.
    users, spawn_rate, run_time: Locust's -u, -r, -t.
    workers: Locust worker processes (0: one process).
    workers_on: run one Locust worker on each of these load generators (inventory hosts with the
        loadgen role), the master here; the same tallies and verdict as one process.
    compare: for read-scaling, run again with the replicas out of the read pool (the app redeployed
        for that run, then back) and report the throughput ratio (default: on for read-scaling).
    journal: the journal (default: the records folder's).
    command: what is recorded as having started it.
    """
    inv = inventory_of(inventory)
    params = {"kind": kind, "users": users, "spawn_rate": spawn_rate, "run_time": run_time, "workers": workers}
    compared = kind == "read-scaling" and (compare if compare is not None else True) and bool(db_replicas(inv))
    if compared and require_approval(inv):
        raise ApprovalError(
            "loadtest read-scaling compares with a run with the replicas out of the read pool, which redeploys the "
            "app: under change control (stack.change_control) give --no-compare"
        )
    if workers_on is not None:
        params["workers_on"] = list(workers_on)
        lt.check_workers_on(inv, workers_on, workers)  # a bad name is refused before anything is recorded
    with journal_of(journal).recording(
        command=command or f"python: loadtest {kind}", inventory=inv, parameters=params
    ) as run:
        load: dict[str, Any] = {"users": users, "spawn_rate": spawn_rate, "run_time": run_time, "workers": workers}
        test = lt.run(inv, kind, **load, workers_on=workers_on)
        if compared:
            test.extra["primary_only"] = _primary_only(inv, load, workers_on, journal)
            alone = test.extra["primary_only"]
            test.extra["read_scaling_ratio"] = round(test.rps / alone["rps"], 2) if alone.get("rps") else None
        site = site_address(inv)  # the checks are of the site as reached through its floating address
        for check in test.checks:
            run.add(_checked(site, kind, check))
    report = Path(test.folder) / "report.html"
    journal_of(journal).set_outputs(run.id, None, str(report) if report.exists() else None)
    journal_of(journal).finish_run(
        run.id,
        {"pass": "ok", "fail": "failed"}.get(test.verdict, "invalid"),
        None if test.passed else "; ".join(f"{c.name}: {c.measured}" for c in test.failed_checks()),
    )
    test.run_id = run.id
    return test


def _primary_only(
    inv: Inventory, load: dict[str, Any], workers_on: list[str] | None, journal: Journal | str | Path | None
) -> dict[str, Any]:
    """Run the read-scaling load again with every replica out of the read pool; put them back."""
    alone = inv.with_vars(",".join(h.name for h in db_replicas(inv)), mysql_read_pool=False)
    out = deploy(alone, ["app"], journal=journal, command="loadtest read-scaling: replicas out of the read pool")
    if not out.ok:
        return {"error": f"could not take the replicas out of the read pool: {', '.join(out.failed_hosts)}"}
    try:
        again = lt.run(alone, "read-scaling", **load, workers_on=workers_on)
    finally:
        deploy(inv, ["app"], journal=journal, command="loadtest read-scaling: replicas back in the read pool")
    return {
        "rps": again.rps,
        "p50_ms": again.p50_ms,
        "p95_ms": again.p95_ms,
        "failures": again.failures,
        "verdict_reads": {n: d["share"] for n, d in again.db_nodes.items()},
        "folder": again.folder,
    }


def loadtest_schedule(
    inventory: Inventory | str | Path,
    name: str,
    kind: str = "round-robin",
    *,
    every: str = "1h",
    users: int = 16,
    spawn_rate: float = 16,
    run_time: str = "20s",
    on: str | None = None,
    journal: Journal | str | Path | None = None,
    command: str | None = None,
) -> Any:
    """Install (or change) a systemd timer on a load generator (role loadgen) that runs a load
    test every so often; journaled as an apply. Return its Report.

    inventory: the Inventory, or its path.
    name: the schedule's name.
    kind: round-robin or read-scaling.
    every: how often (30s, 15m, 1h, 1d).
    users, spawn_rate, run_time: each run's Locust -u, -r, -t.
    on: the load generators that run it, a host pattern (default: the inventory's first load
        generator: two at once would measure each other).
    journal: the journal.
    command: what is recorded as having started it.
    """
    from ..core.engine import apply
    from ..stack import scheduled

    inv = inventory_of(inventory)
    states = scheduled.schedule_states(inv, name, kind, every, users, spawn_rate, run_time)
    generators = [h.name for h in inv.select("role:loadgen")]
    if not generators:
        raise lt.LoadTestError(f"{inv.path}: no host has the loadgen role: nothing to run a schedule on")
    chosen = [h.name for h in inv.select(on)] if on else generators[:1]
    strays = [n for n in chosen if n not in generators]
    if strays:
        raise lt.LoadTestError(
            f"--on {on}: {', '.join(strays)} not a load generator (role loadgen: {', '.join(generators)})"
        )
    return apply(
        inv,
        states,
        hosts=",".join(chosen),
        journal=journal_of(journal),
        command=command or f"python: loadtest schedule {name}",
        parameters={"name": name, "kind": kind, "every": every, "users": users, "run_time": run_time},
    )


def loadtest_unschedule(
    inventory: Inventory | str | Path,
    name: str,
    *,
    journal: Journal | str | Path | None = None,
    command: str | None = None,
) -> Any:
    """Stop and remove a scheduled load test's timer from every load generator; return the Report."""
    from ..core.engine import apply
    from ..stack import scheduled

    inv = inventory_of(inventory)
    return apply(
        inv,
        scheduled.unschedule_states(name),
        hosts="role:loadgen",
        journal=journal_of(journal),
        command=command or f"python: loadtest unschedule {name}",
        parameters={"name": name},
    )


def loadtest_collect(
    inventory: Inventory | str | Path,
    *,
    margin: float = 0.5,
    journal: Journal | str | Path | None = None,
    command: str | None = None,
) -> list[lt.LoadTest]:
    """Bring finished scheduled runs into the records with their verdicts (against the baseline);
    each collected run is journaled with its checks. Return them, oldest first."""
    from ..stack import scheduled

    inv = inventory_of(inventory)
    found = scheduled.collect(inv, margin)
    for test in found:
        with journal_of(journal).recording(
            command=command or "python: loadtest collect",
            inventory=inv,
            parameters={"schedule": test.extra.get("schedule"), "run": test.run_id, "kind": test.kind},
        ) as run:
            for check in test.checks:
                run.add(_checked(str(test.extra.get("load_generator")), test.kind, check))
    return found


def loadtest_history(name: str) -> Any:
    """Return a schedule's collected runs as a DataFrame (the trend), oldest first."""
    from ..stack import scheduled

    return scheduled.history(name)


def _checked(host: str, kind: str, check: Any) -> Result:
    """A load test's check as the journal keeps it: a result, ok or failed, with what was expected
    and what was measured."""
    return Result(
        host,
        f"loadtest:{kind}:{check.name}",
        check.name,
        "loadtest.check",
        Status.OK if check.ok else Status.FAILED,
        changes={"expected": check.expected, "measured": check.measured},
        comment=f"{check.name}: expected {check.expected}, measured {check.measured}",
    )
