"""One handler per command: parse nothing, decide nothing; call an operation and print its result."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from .. import ops
from ..core.errors import FoobarOpsError, HealthError
from .tables import ago, rows, table


def _print_report(report: Any, args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps(report.as_json(), indent=2, default=str))
    else:
        print(report.summary(color=sys.stdout.isatty(), diffs=not getattr(args, "no_diff", False)))
    for error in report.journal_errors[:3]:  # the run went on; its records wait in the spool
        print(f"foobar-ops: journal: {error}", file=sys.stderr)
    return 0 if report.ok and not report.journal_errors else 1


def cmd_hosts(args: argparse.Namespace) -> int:
    found = ops.hosts(args.inventory, args.pattern)
    if args.json:
        print(json.dumps(found, indent=2))
    else:
        shown = [
            dict(h, roles=",".join(h["roles"]) or "-", groups=",".join(h["groups"]) or "-") for h in found["hosts"]
        ]
        print(table(shown, ["name", "address", "port", "user", "roles", "groups"]))
    return 0


def cmd_ping(args: argparse.Namespace) -> int:
    found = ops.ping(args.inventory, args.pattern, sudo=args.sudo, parallel=args.parallel)
    if args.json:
        print(json.dumps({"hosts": found}, indent=2))
    else:
        print(table(found, ["host", "outcome", "rtt_ms", "kernel", "error"]))
        bad = [str(r["host"]) for r in found if r["outcome"] != "ok"]
        print(
            f"{len(found) - len(bad)} ok, {len(bad)} not ok" + (f": {', '.join(bad)}" if bad else ""), file=sys.stderr
        )
    return 0 if all(r["outcome"] == "ok" for r in found) else 1


def cmd_apply(args: argparse.Namespace) -> int:
    if args.save_plan and not args.test:
        raise FoobarOpsError("--save-plan needs --test: a plan is made in test mode")
    common: dict[str, Any] = {
        "journal": args.journal,
        "command": args.command_line,
        "parallel": args.parallel,
        "lock_wait": args.lock_wait,
    }
    if args.plan:
        if args.test or args.states or args.roles or args.pattern:
            raise FoobarOpsError("--plan applies the saved plan as it is: give no roles, --hosts, --states or --test")
        return _print_report(ops.apply_plan(args.inventory, args.plan, **common), args)
    chosen: dict[str, Any] = {"hosts": args.pattern, "test": args.test, "save_plan": args.save_plan, **common}
    if args.states:
        report = ops.apply_states(args.inventory, args.states, **chosen)
    else:
        report = ops.deploy(args.inventory, args.roles, **chosen)
    return _print_report(report, args)


def cmd_plan(args: argparse.Namespace) -> int:
    if args.plan_command == "approve":
        done = ops.approve_plan(args.file, journal=args.journal, command=args.command_line)
        print(
            json.dumps(done, indent=2)
            if args.json
            else f"{done['plan']}: approved by {done['approved_by']} (planned by {done['planned_by']}; "
            f"digest {done['digest'][:12]}; run {done['run_id']}" + (", approved before)" if done["already"] else ")")
        )
        return 0
    found = ops.show_plan(args.file, journal=args.journal)
    if args.json:
        print(json.dumps(found, indent=2, default=str))
        return 0
    print(
        f"plan {found['plan']}: made by {found['planned_by'] or '?'} in run {found['planned_in']} ({found['created']})"
    )
    print(f"digest {found['digest']}; inventory {found['inventory']}")
    for host, ids in sorted(found["pending"].items()):
        print(f"  {host}: {len(ids)} change(s): {', '.join(ids[:6])}" + (" ..." if len(ids) > 6 else ""))
    print("approved by: " + (", ".join(found["approved_by"]) or "nobody yet"))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    remote = args.remote[1:] if args.remote[:1] == ["--"] else args.remote
    command = remote[0] if len(remote) == 1 else remote  # one argument: shell text as written
    outcomes = ops.run_command(
        args.inventory,
        command,
        hosts=args.pattern,
        sudo=args.sudo,
        parallel=args.parallel,
        stream=True,
        journal=args.journal,
        origin=args.command_line,
    )
    for o in outcomes:
        if not o.ok:
            print(f"{o.host}: {o.outcome}: {o.error}", file=sys.stderr)
    return 0 if all(o.ok for o in outcomes) else 1


def cmd_rollback(args: argparse.Namespace) -> int:
    report = ops.rollback(
        args.inventory, hosts=args.pattern, journal=args.journal, command=args.command_line, lock_wait=args.lock_wait
    )
    return _print_report(report, args)


def cmd_lb(args: argparse.Namespace) -> int:
    action = args.lb_command
    if action == "stat":
        frame = ops.lb_stat(args.inventory)
        found = rows(frame)
        keep = ["lb", "pxname", "svname", "status", "weight", "scur", "smax", "stot", "lbtot", "check_status"]
        print(
            json.dumps({"rows": found}, indent=2, default=str)
            if args.json
            else table([{k: r.get(k) for k in keep} for r in found], keep)
        )
        return 0
    if action == "status":
        pair = ops.lb_status(args.inventory)
        if args.json:
            print(json.dumps(pair.as_json(), indent=2))
        else:
            keep = ["host", "vrrp_state", "haproxy", "priority", "holds_vip", "keepalived", "error"]
            print(table([lb.as_json() for lb in pair.lbs], keep))
            print(f"{'ok' if pair.ok else 'NOT OK'}: {pair.line()}")
        return 0 if pair.ok else 1
    if action == "handover":
        moved = ops.lb_handover(
            args.inventory, args.to, test=args.test, wait=args.wait, journal=args.journal, command=args.command_line
        )
        print(json.dumps(moved.as_json(), indent=2) if args.json else str(moved))
        return 0 if moved.ok else 1
    common = {"backend": args.backend, "journal": args.journal, "command": args.command_line}
    if action == "drain":
        waited = ops.lb_drain(args.inventory, args.server, timeout=args.timeout, **common)
        print(f"{args.backend}/{args.server} drained in {waited:.1f} s")
    else:
        status = (ops.lb_ready if action == "ready" else ops.lb_maint)(args.inventory, args.server, **common)
        print(f"{args.backend}/{args.server}: {status}")
    return 0


def cmd_firewall(args: argparse.Namespace) -> int:
    found = ops.firewall_check(args.inventory, timeout=args.timeout)
    if args.json:
        print(json.dumps(found.as_json(), indent=2))
    else:
        matrix = found.matrix()
        if not matrix.empty:
            print(matrix.to_string())
        for c in found.differences():
            print(
                f"NOT AS INTENDED: {c.source} -> {c.to}:{c.port} expected {c.expected}, "
                f"measured {c.measured} ({c.answer})"
            )
        print(f"{'ok' if found.ok else 'NOT OK'}: {found.line()}")
    return 0 if found.ok else 1


def cmd_tls(args: argparse.Namespace) -> int:
    if args.tls_command == "status":
        found = ops.tls_status(args.inventory)
        if args.json:
            print(json.dumps(found.as_json(), indent=2))
        else:
            cols = ["lb", "subject", "sans", "serial", "issuer", "not_after", "days_left", "level"]
            print(table([dict(r, sans=",".join(r["sans"])) for r in found.as_json()["certs"]], cols))
            for line in [*found.errors, *found.warnings]:
                print(f"WARNING: {line}" if line in found.warnings else f"ERROR: {line}", file=sys.stderr)
            print("tls ok" if found.ok else "tls NOT ok", file=sys.stderr)
        return 0 if found.ok else 1
    rotation = ops.tls_rotate(
        args.inventory,
        args.cert,
        args.key,
        test=args.test,
        journal=args.journal,
        command=args.command_line,
        lock_wait=args.lock_wait,
    )
    if args.json:
        print(json.dumps(rotation.as_json(), indent=2, default=str))
    else:
        print(rotation.summary(color=sys.stdout.isatty()))
    return 0 if rotation.ok else 1


def cmd_verify(args: argparse.Namespace) -> int:
    check = ops.verify(args.inventory, args.n, args.wait)
    if args.json:
        print(
            json.dumps(
                {"ok": check.ok, "statuses": check.statuses, "requests": rows(check.requests)}, indent=2, default=str
            )
        )
    else:
        print(str(check))  # one line: who answered, and what is not UP
    return 0 if check.ok else 1


def cmd_records(args: argparse.Namespace) -> int:
    journal = ops.open_journal(args.journal)
    action = args.records_command
    if action == "list":
        frame = ops.records_runs(journal, args.limit)
        cols = ["run_id", "started", "user", "command", "test", "status", "results", "changed", "failed"]
        if not args.json and (frame["user_source"] == "FOOBAR_OPS_USER").any():  # an identity given: say so
            frame["user"] = [
                f"{u} (FOOBAR_OPS_USER)" if src == "FOOBAR_OPS_USER" else u
                for u, src in zip(frame["user"], frame["user_source"], strict=True)
            ]
        if frame["planned_by"].notna().any():  # change control: who planned and approved what was applied
            cols[3:3] = ["planned_by", "approved_by"]
        if (frame["status"] == "died").any():  # a run whose process is gone: where it was
            cols.append("last_result")
    elif action == "show":
        cols = ["at", "host", "state", "name", "status", "comment"]
        if args.json:
            run = ops.records_run(args.run_id, journal)
            print(
                json.dumps(
                    {"run": run["run"], "results": rows(run["results"]), "hosts": rows(run["hosts"])},
                    indent=2,
                    default=str,
                )
            )
            return 0
        frame = ops.records_results(args.run_id, journal)
    elif action == "alerts":
        frame = ops.records_alerts(journal, since=args.since, name=args.name)
        cols = ["at", "name", "severity", "instance", "state", "since", "summary"]
    else:
        frame = ops.records_changes(journal, host=args.host, since=args.since, state=args.state)
        cols = ["at", "run_id", "host", "state", "name", "comment"]
    if args.json:
        print(json.dumps({"journal": str(journal.path), "rows": rows(frame)}, indent=2, default=str))
    else:
        print(table(rows(frame), cols) if len(frame) else "(nothing recorded)")
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    try:
        found = ops.health(args.inventory)
    except HealthError as err:
        if not args.json:
            raise
        # a script reading the JSON learns that health is unknown, and why
        print(json.dumps({"ok": False, "error": str(err), "targets": [], "alerts": []}, indent=2))
        return 2
    if args.json:
        print(json.dumps(found.as_json(), indent=2, default=str))
    else:
        print(
            table([dict(t, up="up" if t["up"] else "DOWN") for t in found.targets], ["job", "instance", "up", "error"])
        )
        print()
        print(
            table(found.alerts, ["name", "severity", "instance", "state", "since", "summary"])
            if found.alerts
            else "(no alert firing)"
        )
        down = len(found.down)
        print(
            f"health {'ok' if found.ok else 'NOT ok'}: {len(found.targets) - down} of {len(found.targets)} targets "
            f"up, {len(found.alerts)} alert(s) firing",
            file=sys.stderr,
        )
    return 0 if found.ok else 1


def cmd_alerts(args: argparse.Namespace) -> int:
    receiver = ops.alert_receiver(args.inventory, args.journal, args.listen, args.port)
    print(
        f"alerts: recording Alertmanager's alerts in {receiver.journal.path}; listening on "
        f"http://{receiver.address}:{receiver.port}/alerts (Ctrl-C stops)",
        file=sys.stderr,
        flush=True,
    )
    try:
        receiver.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        receiver.server.server_close()
    return 0


def cmd_lab(args: argparse.Namespace) -> int:
    action = args.lab_command
    if action in ("up", "down", "destroy"):
        {"up": ops.lab_up, "down": ops.lab_down, "destroy": ops.lab_destroy}[action](args.inventory, args.names or None)
        return 0
    if action == "status":
        found = ops.lab_status(args.inventory)
        print(
            json.dumps({"hosts": found}, indent=2)
            if args.json
            else table([dict(r, uptime=ago(r.pop("uptime_s"))) for r in found], ["host", "address", "state", "uptime"])
        )
        return 0
    remote = args.remote[1:] if args.remote[:1] == ["--"] else args.remote
    argv = ops.lab_ssh_argv(args.inventory, args.name, remote)
    sys.stdout.flush()
    os.execvp(argv[0], argv)
    return 127  # not reached


def cmd_db(args: argparse.Namespace) -> int:
    if args.db_command == "status":
        found = ops.db_status(args.inventory)
        if args.json:
            print(json.dumps(found.as_json(), indent=2))
        else:
            print(
                table(
                    rows(found.frame()),
                    [
                        "host",
                        "role",
                        "inventory_role",
                        "read_only",
                        "io_running",
                        "sql_running",
                        "lag_s",
                        "gtid",
                        "source",
                        "error",
                    ],
                )
            )
            print("replication ok" if found.ok else "replication NOT ok", file=sys.stderr)
        return 0 if found.ok else 1
    common = {"test": args.test, "journal": args.journal, "command": args.command_line, "lock_wait": args.lock_wait}
    if args.db_command == "switchover":
        change = ops.db_switchover(args.inventory, args.to, **common)
    elif args.db_command == "unfence":
        change = ops.db_unfence(args.inventory, args.peer_gone, **common)
    else:
        change = ops.db_failover(args.inventory, **common)
    if args.json:
        print(json.dumps(change.as_json(), indent=2, default=str))
    else:
        for r in change.results:
            print(f"{r.host:<10} {r.status.value:<8} {r.name:<10} {r.comment}")
        outcome = "verified" if change.ok and not change.test else "checks pass" if change.ok else "FAILED"
        print(
            f"{change.kind} {change.old} -> {change.new or '?'}: {outcome}"
            + (f": {change.error}" if change.error else ""),
            file=sys.stderr,
        )
    return 0 if change.ok else 1


def cmd_runbook(args: argparse.Namespace) -> int:
    from ..runbooks import runner
    from ..runbooks.parameters import yaml_values

    if args.name == "list":
        found = runner.catalog_json()
        if args.json:
            print(json.dumps(found, indent=2, default=str))
        else:
            for rb in found:
                if rb.get("error"):
                    print(f"{rb['name']:<26} BROKEN: {rb['error']}")
                    continue
                params = ", ".join(
                    p["name"] + ("" if p["required"] else "=" + repr(p["default"])) for p in rb["parameters"]
                )
                print(f"{rb['name']:<26} {rb['description']}\n{'':<26} parameters: {params or '-'}")
        broken = [rb for rb in found if rb.get("error")]
        for rb in broken:
            print(f"foobar-ops: error: runbook {rb['name']} cannot be read: {rb['error']}", file=sys.stderr)
        return 1 if broken else 0
    if args.name in ("schedule", "unschedule", "schedules"):
        return _runbook_schedules(args)
    if args.target:
        raise FoobarOpsError(f"runbook {args.name}: unexpected {args.target!r} (one runbook at a time)")
    given = yaml_values(args.file, args.yaml)  # refused naming the -f or -y at fault
    texts = dict(args.parameter)
    done = runner.run(
        args.name,
        args.inventory,
        given,
        texts=texts,
        test=True if args.test else None,
        journal=args.journal,
        stream=False if args.quiet or args.json else None,
        start_timeout=args.start_timeout,
        cell_timeout=args.cell_timeout,
        command=args.command_line,
        lock_wait=args.lock_wait,
    )
    if args.json:
        print(json.dumps(done.as_json(), indent=2))
    elif done.outcome == "refused":  # a bad input: one line that names it (nothing ran)
        print(f"foobar-ops: error: runbook {done.runbook}: {done.error}", file=sys.stderr)
    else:
        where = f"; notebook {done.output_notebook}, HTML {done.html}" if done.output_notebook else ""
        print(
            f"runbook {done.runbook} ({done.run_id}): {done.outcome}{where}"
            + (f"\n{done.error}" if done.error else ""),
            file=sys.stderr,
        )
    return done.exit_code


def _runbook_schedules(args: argparse.Namespace) -> int:
    from ..runbooks import schedule
    from .parser import DEFAULT_LAB_INVENTORY

    inventory = args.inventory or DEFAULT_LAB_INVENTORY
    if args.name == "schedules":
        found = schedule.schedules(inventory, journal=args.journal)
        if args.json:
            print(json.dumps(found, indent=2, default=str))
        else:
            cols = ["runbook", "every", "host", "next", "last_started", "last_outcome", "last_run_id"]
            print(table(found, cols) if found else "no runbook is scheduled")
        return 0
    if not args.target:
        raise FoobarOpsError(f"runbook {args.name}: name the runbook: foobar-ops runbook {args.name} RUNBOOK")
    common = {"journal": args.journal, "command": args.command_line}
    if args.name == "unschedule":
        return _print_report(schedule.unschedule(inventory, args.target, **common), args)
    from ..runbooks.parameters import yaml_values

    report = schedule.schedule(
        inventory,
        args.target,
        every=args.every,
        timeout=args.timeout,
        texts=dict(args.parameter),
        given=yaml_values(args.file, args.yaml),
        **common,
    )
    return _print_report(report, args)


def cmd_loadtest(args: argparse.Namespace) -> int:
    kind = args.loadtest_command
    if kind in ("schedule", "unschedule", "collect", "history", "baseline"):
        return _scheduled(args, kind)
    compare = None if kind != "read-scaling" else not args.no_compare
    test = ops.loadtest(
        args.inventory,
        kind,
        users=args.users,
        spawn_rate=args.spawn_rate,
        run_time=args.run_time,
        workers=args.workers,
        workers_on=None if args.workers_on is None else [h.strip() for h in args.workers_on.split(",") if h.strip()],
        compare=compare,
        journal=args.journal,
        command=args.command_line,
    )
    if args.json:
        print(json.dumps(test.as_json(), indent=2, default=str))
    else:
        print(
            table(
                [{"check": c.name, "expected": c.expected, "measured": c.measured, "ok": c.ok} for c in test.checks],
                ["check", "expected", "measured", "ok"],
            )
        )
        print(
            f"{kind}: {test.verdict.upper()}: {test.rps:.0f} req/s, p50 {test.p50_ms} ms, p95 {test.p95_ms} ms, "
            f"{test.failures} failed of {test.requests}; kept in {test.folder}",
            file=sys.stderr,
        )
    return 0 if test.passed else 1


def _scheduled(args: argparse.Namespace, action: str) -> int:
    if action == "schedule":
        report = ops.loadtest_schedule(
            args.inventory,
            args.name,
            args.kind,
            every=args.every,
            users=args.users,
            spawn_rate=args.spawn_rate,
            run_time=args.run_time,
            on=args.on,
            journal=args.journal,
            command=args.command_line,
        )
        return _print_report(report, args)
    if action == "unschedule":
        return _print_report(
            ops.loadtest_unschedule(args.inventory, args.name, journal=args.journal, command=args.command_line), args
        )
    if action == "baseline":
        chosen = ops.loadtest_baseline(args.name, args.run)
        print(
            json.dumps(chosen, indent=2)
            if args.json
            else f"{args.name}: baseline is {chosen['run_id']} ({chosen['rps']} req/s, p95 {chosen['p95_ms']} ms)"
        )
        return 0
    if action == "history":
        frame = ops.loadtest_history(args.name)
        print(
            json.dumps(rows(frame), indent=2, default=str)
            if args.json
            else table(rows(frame), ["run_id", "verdict", "rps", "p95_ms", "failures", "baseline", "failed"])
            if len(frame)
            else f"no collected run of {args.name}"
        )
        return 0
    found = ops.loadtest_collect(args.inventory, margin=args.margin, journal=args.journal, command=args.command_line)
    if args.json:
        print(json.dumps([t.as_json() for t in found], indent=2, default=str))
    else:
        for t in found:
            failed = "; ".join(f"{c.name}: {c.measured}" for c in t.failed_checks())
            print(
                f"{t.extra.get('schedule')} {t.run_id}: {t.verdict} ({t.rps:.0f} req/s, p95 {t.p95_ms} ms)"
                + (f": {failed}" if failed else "")
            )
        print(f"{len(found)} run(s) collected", file=sys.stderr)
    return 0 if all(t.passed for t in found) else 1


def cmd_paths(args: argparse.Namespace) -> int:
    found = ops.record_paths()
    print(
        json.dumps(found, indent=2)
        if args.json
        else table([{"what": k, "path": v} for k, v in found.items()], ["what", "path"])
    )
    return 0


HANDLERS = {
    "hosts": cmd_hosts,
    "ping": cmd_ping,
    "lab": cmd_lab,
    "apply": cmd_apply,
    "plan": cmd_plan,
    "records": cmd_records,
    "rollback": cmd_rollback,
    "lb": cmd_lb,
    "firewall": cmd_firewall,
    "tls": cmd_tls,
    "health": cmd_health,
    "alerts": cmd_alerts,
    "verify": cmd_verify,
    "run": cmd_run,
    "paths": cmd_paths,
    "db": cmd_db,
    "runbook": cmd_runbook,
    "loadtest": cmd_loadtest,
}
