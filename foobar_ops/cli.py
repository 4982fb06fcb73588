"""foobar-ops: build, change and verify the foobar.com stack (lab, apply, runbooks, records)."""
from __future__ import annotations

import json
import os
import shlex
import sys

from .cli_args import build_parser
from .errors import FoobarOpsError


def table(rows: list[dict], columns: list[str]) -> str:
    """Render rows as a plain aligned text table.

    rows: dicts keyed by column.
    columns: the columns, in order.
    """
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths)).rstrip()  # noqa: E731
    return "\n".join([line([c.upper() for c in columns])] + [line(row) for row in cells])


def _cell(value, width: int = 60) -> str:
    """Render one table cell on one line, cut to width."""
    text = "-" if value is None else " ".join(str(value).split())
    return text if len(text) <= width else text[:width - 1] + "…"


def cmd_hosts(args) -> int:
    from .inventory import load_inventory
    inv = load_inventory(args.inventory)
    hosts = [h.as_dict() for h in inv.select(args.pattern)]
    if args.json:
        print(json.dumps({"inventory": str(inv.path), "hosts": hosts}, indent=2))
    else:
        rows = [dict(h, roles=",".join(h["roles"]) or "-", groups=",".join(h["groups"]) or "-")
                for h in hosts]
        print(table(rows, ["name", "address", "port", "user", "roles", "groups"]))
    return 0


def cmd_ping(args) -> int:
    from . import ssh
    from .inventory import load_inventory
    inv = load_inventory(args.inventory)
    hosts = inv.select(args.pattern)
    outcomes = ssh.run_many(hosts, "uname -r", inventory=inv, sudo=args.sudo, cap=args.parallel)
    rows = [{"host": o.host, "outcome": o.outcome, "rtt_ms": o.rtt_ms,
             "kernel": o.stdout.strip() or None if o.ok else None,
             "error": o.error if not o.ok else None} for o in outcomes]
    if args.json:
        print(json.dumps({"hosts": rows}, indent=2))
    else:
        print(table(rows, ["host", "outcome", "rtt_ms", "kernel", "error"]))
        bad = [r["host"] for r in rows if r["outcome"] != "ok"]
        print(f"{len(rows) - len(bad)} ok, {len(bad)} not ok" + (f": {', '.join(bad)}" if bad else ""),
              file=sys.stderr)
    return 0 if all(r["outcome"] == "ok" for r in rows) else 1


def cmd_apply(args) -> int:
    from . import roles as role_mod
    from .highstate import apply, load_state_file
    from .inventory import load_inventory
    from .records import Journal
    inv = load_inventory(args.inventory)
    if args.states:
        states_for = load_state_file(args.states)
    else:
        role_mod.check_roles(args.roles)
        states_for = role_mod.phases(args.roles or None)
    report = apply(inv, states_for, pattern=args.pattern, test=args.test, journal=Journal(args.journal),
                   command=args.command_line, parallel=args.parallel,
                   parameters={"roles": args.roles, "hosts": args.pattern, "test": args.test,
                               "states": str(args.states) if args.states else None})
    if args.json:
        print(json.dumps(report.as_json(), indent=2, default=str))
    else:
        print(report.summary(color=sys.stdout.isatty(), diffs=not args.no_diff))
    return 0 if report.ok else 1


def cmd_run(args) -> int:
    from . import ssh
    from .inventory import load_inventory
    from .records import Journal
    from .result import Result
    remote = args.remote[1:] if args.remote[:1] == ["--"] else args.remote
    if not remote:
        raise FoobarOpsError("run: give the command after --, e.g. foobar-ops run -i INV -- uptime")
    line = remote[0] if len(remote) == 1 else shlex.join(remote)  # one argument: shell text as given
    inv = load_inventory(args.inventory)
    hosts = inv.select(args.pattern)
    with Journal(args.journal).recording(command=args.command_line, inventory=inv,
                                         parameters={"hosts": args.pattern, "sudo": args.sudo,
                                                     "command": line}) as run:
        def record(o) -> None:  # each host's outcome is journaled as soon as it is known
            run.add(Result(o.host, "cmd.adhoc", line, "cmd.run", o.ok, changed=o.outcome != "unreachable",
                           idempotent=False, comment=o.error or f"exit {o.exit_code}",
                           duration_ms=o.rtt_ms or 0.0))

        outcomes = ssh.run_many(hosts, line, inventory=inv, sudo=args.sudo, cap=args.parallel, stream=True,
                                on_outcome=record)
    bad = [o.host for o in outcomes if not o.ok]
    for o in outcomes:
        if not o.ok:
            print(f"{o.host}: {o.outcome}: {o.error}", file=sys.stderr)
    return 1 if bad else 0


def cmd_rollback(args) -> int:
    from .highstate import apply
    from .inventory import load_inventory
    from .records import Journal
    from .highstate import Phase
    from .roles.app import rollback_states
    from .roles.rolling import drained, out_of_rotation_first
    inv = load_inventory(args.inventory)
    # one host at a time, each drained in the load balancer first: the others keep serving
    phase = Phase(rollback_states, serial=True, guard=drained, order=out_of_rotation_first)
    report = apply(inv, [phase], pattern=args.pattern,
                   journal=Journal(args.journal), command=args.command_line, parameters={"hosts": args.pattern})
    print(json.dumps(report.as_json(), indent=2, default=str) if args.json else
          report.summary(color=sys.stdout.isatty()))
    return 0 if report.ok else 1


def cmd_lb(args) -> int:
    from .haproxy import HAProxy
    from .inventory import load_inventory
    from .records import Journal
    inv = load_inventory(args.inventory)
    journal = Journal(getattr(args, "journal", None)) if args.lb_command != "stat" else None
    with HAProxy(inv, journal=journal, command="foobar-ops lb") as lb:
        if args.lb_command == "stat":
            rows = lb.stat_rows()
            keep = ["pxname", "svname", "status", "weight", "scur", "smax", "stot", "lbtot", "check_status"]
            print(json.dumps({"rows": rows}, indent=2, default=str) if args.json else
                  table([{k: r.get(k) for k in keep} for r in rows], keep))
        elif args.lb_command == "drain":
            waited = lb.drain(args.server, args.backend, timeout=args.timeout)
            print(f"{args.backend}/{args.server} drained in {waited:.1f} s")
        else:
            getattr(lb, args.lb_command)(args.server, args.backend)
            print(f"{args.backend}/{args.server}: {lb.servers(args.backend)[args.server]['status']}")
    return 0


def cmd_verify(args) -> int:
    from .inventory import load_inventory
    from .roles.topology import web_hosts
    from .verify import summary_line, through_lb, wait_all_up
    inv = load_inventory(args.inventory)
    status = wait_all_up(inv, args.wait) if args.wait > 0 else {}
    down = {name: s for name, s in status.items() if s != "UP"}
    if down:
        print(f"not UP after {args.wait:g} s: " + ", ".join(f"{n} {s}" for n, s in down.items()), file=sys.stderr)
    frame = through_lb(inv, args.n)
    answered = set(frame.loc[frame["status"] == 200, "served_by"].dropna())
    ok = (frame["status"] == 200).all() and answered == {h.name for h in web_hosts(inv)}
    if args.json:
        print(json.dumps({"ok": bool(ok), "requests": _rows(frame)}, indent=2, default=str))
    else:
        print(summary_line(inv, frame))
    return 0 if ok else 1


def cmd_records(args) -> int:
    from .records import Journal
    journal = Journal(args.journal)
    action = args.records_command
    if action == "list":
        frame = journal.runs(args.limit)
        cols = ["run_id", "started", "user", "command", "test", "status", "results", "changed", "failed"]
    elif action == "show":
        frame = journal.results(args.run_id)
        cols = ["at", "host", "state", "name", "result", "changed", "comment"]
        if args.json:
            print(json.dumps({"run": journal.run(args.run_id), "results": _rows(frame)}, indent=2, default=str))
            return 0
    else:
        frame = journal.changes(host=args.host, since=args.since, state=args.state)
        cols = ["at", "run_id", "host", "state", "name", "comment"]
    if args.json:
        print(json.dumps({"journal": str(journal.path), "rows": _rows(frame)}, indent=2, default=str))
    else:
        print(table(_rows(frame), cols) if len(frame) else "(nothing recorded)")
    return 0


def _rows(frame) -> list[dict]:
    import math
    rows = frame.to_dict(orient="records")
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]


def _lab(args):
    from .inventory import load_inventory
    from .lab import Lab
    return Lab(load_inventory(args.inventory))


def cmd_lab(args) -> int:
    lab = _lab(args)
    action = args.lab_command
    if action in ("up", "down", "destroy"):
        getattr(lab, action)(args.names or None)
        return 0
    if action == "status":
        rows = lab.status()
        print(json.dumps({"hosts": rows}, indent=2) if args.json else
              table([dict(r, uptime=_ago(r.pop("uptime_s"))) for r in rows],
                    ["host", "address", "state", "uptime"]))
        return 0
    remote = args.remote[1:] if args.remote[:1] == ["--"] else args.remote
    argv = lab.ssh_argv(args.name, remote)
    sys.stdout.flush()
    os.execvp(argv[0], argv)
    return 127  # not reached


def _ago(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return its exit status.

    argv: arguments (default: sys.argv[1:]).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(__doc__).parse_args(argv)
    args.command_line = "foobar-ops " + shlex.join(argv)  # what the journal records as the command
    handlers = {"hosts": cmd_hosts, "ping": cmd_ping, "lab": cmd_lab, "apply": cmd_apply,
                "records": cmd_records, "rollback": cmd_rollback, "lb": cmd_lb,
                "verify": cmd_verify, "run": cmd_run}
    try:
        return handlers[args.command](args)
    except FoobarOpsError as err:
        from .secrets import mask_known
        print(f"foobar-ops: error: {mask_known(str(err))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("foobar-ops: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: quiet, but not "success"
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
