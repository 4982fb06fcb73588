"""The `foobar-ops` argument parser: one small builder per command."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TypeAlias

from ..core.version import __version__

_CHECKOUT_LAB = Path(__file__).resolve().parents[2] / "inventories" / "lab.yml"
#: The lab inventory of the checkout foobar_ops runs from, else inventories/lab.yml here.
DEFAULT_LAB_INVENTORY = _CHECKOUT_LAB if _CHECKOUT_LAB.is_file() else Path("inventories/lab.yml")
PATTERN_HELP = "host pattern: name, glob, role:NAME, group:NAME"


def _inventory(p: argparse.ArgumentParser, required: bool = True, default: Path | None = DEFAULT_LAB_INVENTORY) -> None:
    p.add_argument(
        "-i",
        "--inventory",
        required=required,
        type=Path,
        default=None if required else default,
        help="inventory YAML file" + ("" if required or default is None else f" (default: {default})"),
    )


def _common(
    p: argparse.ArgumentParser,
    *,
    hosts: bool = False,
    json: bool = False,
    journal: bool = False,
    parallel: bool = False,
    lock_wait: bool = False,
) -> None:
    if hosts:
        p.add_argument("--hosts", dest="pattern", help=PATTERN_HELP)
    if json:
        p.add_argument("--json", action="store_true", help="print one JSON document")
    if journal:
        p.add_argument(
            "--journal",
            type=str,  # a path, or a database URL (a Path would fold its '//')
            help="journal path or database URL (default: journal.sqlite in the records folder; see `foobar-ops paths`)",
        )
    if parallel:
        p.add_argument(
            "--parallel",
            type=int,
            default=None,
            help="at most this many hosts at once (default: the inventory's ssh.parallel, else 10)",
        )
    if lock_wait:  # the commands whose runs take the hosts' run locks
        p.add_argument(
            "--wait",
            dest="lock_wait",
            type=float,
            metavar="SECONDS",
            help="when another run holds a host's lock, wait this long for it (default: refuse at once, "
            "naming that run)",
        )


Sub: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _hosts_ping_run(sub: Sub) -> None:
    p = sub.add_parser("hosts", help="list the inventory's hosts with their roles")
    _inventory(p)
    _common(p, hosts=True, json=True)
    p = sub.add_parser("ping", help="run a command on every host in parallel: outcome, rtt, kernel")
    _inventory(p)
    _common(p, hosts=True, json=True, parallel=True)
    p.add_argument("--sudo", action="store_true", help="run the probe through sudo")
    p = sub.add_parser("run", help="run an ad-hoc shell command on hosts in parallel (journaled)")
    _inventory(p)
    _common(p, hosts=True, journal=True, parallel=True)
    p.add_argument("--sudo", action="store_true", help="run it through sudo")
    p.add_argument("remote", nargs=argparse.REMAINDER, metavar="-- COMMAND")


def _apply_rollback(sub: Sub) -> None:
    p = sub.add_parser("apply", help="apply the roles of each host (highstate); --test changes nothing")
    _inventory(p)
    p.add_argument("roles", nargs="*", metavar="ROLE", help="only these roles (default: every role a host has)")
    _common(p, hosts=True, json=True, journal=True, parallel=True, lock_wait=True)
    p.add_argument(
        "--states",
        type=Path,
        metavar="FILE.py",
        help="apply the states(host, inventory) of this Python file instead of the roles",
    )
    p.add_argument("--test", action="store_true", help="dry-run: show what would change, with diffs")
    p.add_argument(
        "--save-plan",
        metavar="FILE",
        type=Path,
        help="with --test: save the plan, to apply exactly it later with --plan",
    )
    p.add_argument(
        "--plan",
        metavar="FILE",
        type=Path,
        help="apply a saved plan: hosts that drifted since are refused, the others changed as planned",
    )
    p.add_argument("--no-diff", action="store_true", help="leave diffs out of the summary")
    p = sub.add_parser("rollback", help="switch app hosts back to their previous release")
    _inventory(p)
    _common(p, json=True, journal=True, lock_wait=True)
    p.add_argument("--hosts", dest="pattern", default="role:app", help="host pattern (default: role:app)")


def _plan(sub: Sub) -> None:
    p = sub.add_parser("plan", help="saved plans: approve one (two-person change control), show one")
    actions = p.add_subparsers(dest="plan_command", required=True, metavar="ACTION")
    q = actions.add_parser(
        "approve", help="approve a saved plan as yourself ($FOOBAR_OPS_USER or your login); its author cannot"
    )
    q.add_argument("file", metavar="FILE", type=Path, help="the plan (from apply --test --save-plan FILE)")
    q = actions.add_parser("show", help="who made a saved plan, its digest, what it changes, who approved it")
    q.add_argument("file", metavar="FILE", type=Path, help="the plan")
    for q in actions.choices.values():
        _common(q, json=True, journal=True)


def _lb_verify(sub: Sub) -> None:
    p = sub.add_parser("lb", help="the load balancers: stat, drain, ready, maint; the pair's status, handover")
    actions = p.add_subparsers(dest="lb_command", required=True, metavar="ACTION")
    q = actions.add_parser("stat", help="`show stat` of every load balancer as a table (an lb column)")
    _inventory(q)
    _common(q, json=True)
    q = actions.add_parser(
        "status",
        help="the floating address, its holder, each load balancer's VRRP and HAProxy state (exit 1 unless ok)",
    )
    _inventory(q)
    _common(q, json=True)
    q = actions.add_parser("handover", help="move the floating address to another load balancer (planned)")
    _inventory(q)
    _common(q, json=True, journal=True)
    q.add_argument("--to", required=True, metavar="HOST", help="the load balancer to take the floating address")
    q.add_argument("--test", action="store_true", help="say what would happen; change nothing")
    q.add_argument("--wait", type=float, default=30, help="seconds to wait for HOST to serve")
    for action, text in (
        ("drain", "no new sessions on every load balancer; wait until current sessions reach zero"),
        ("ready", "back in rotation on every load balancer"),
        ("maint", "out of rotation at once on every load balancer"),
    ):
        q = actions.add_parser(action, help=text)
        _inventory(q)
        _common(q, journal=True)
        q.add_argument("server", metavar="SERVER")
        q.add_argument("--backend", default="bk_web")
        if action == "drain":
            q.add_argument("--timeout", type=float, default=60, help="seconds to wait for sessions to end")
    p = sub.add_parser("verify", help="send requests through the load balancer; who answered")
    _inventory(p)
    _common(p, json=True)
    p.add_argument("-n", type=int, default=20, help="number of requests")
    p.add_argument("--wait", type=float, default=30, help="seconds to wait for every server to be UP first")


def _records(sub: Sub) -> None:
    p = sub.add_parser("records", help="the change journal: runs, their results, changes")
    actions = p.add_subparsers(dest="records_command", required=True, metavar="ACTION")
    q = actions.add_parser("list", help="runs, newest first")
    q.add_argument("--limit", type=int, default=20)
    q = actions.add_parser("show", help="every result of one run")
    q.add_argument("run_id", metavar="RUN")
    q = actions.add_parser("changes", help="what changed, newest first")
    q.add_argument("--host")
    q.add_argument("--since", help="an age (7d, 12h, 30m) or a date")
    q.add_argument("--state", help="a state function (file.managed) or state id")
    q = actions.add_parser("alerts", help="alerts Alertmanager delivered to the webhook: each firing and resolution")
    q.add_argument("--since", help="an age (1d, 12h, 30m) or a date")
    q.add_argument("--name", help="only alerts of this name")
    for q in actions.choices.values():
        _common(q, json=True, journal=True)


def _lab(sub: Sub) -> None:
    lab = sub.add_parser("lab", help="the built-in lab of real hosts on this machine")
    actions = lab.add_subparsers(dest="lab_command", required=True, metavar="ACTION")
    for name, text in (
        ("up", "boot hosts (all by default); running hosts are left alone"),
        ("down", "power hosts off cleanly (all by default)"),
        ("destroy", "power off and remove hosts' disks (all by default)"),
    ):
        p = actions.add_parser(name, help=text)
        _inventory(p, required=False)
        p.add_argument("names", nargs="*", metavar="HOST")
    p = actions.add_parser("status", help="table of host, address, state, uptime")
    _inventory(p, required=False)
    p.add_argument("--json", action="store_true")
    p = actions.add_parser("ssh", help="run COMMAND as root on a lab host (a shell without one)")
    _inventory(p, required=False)
    p.add_argument("name", metavar="HOST")
    p.add_argument("remote", nargs=argparse.REMAINDER, metavar="-- COMMAND")


def _db(sub: Sub) -> None:
    p = sub.add_parser("db", help="the database pair: replication status, switchover, failover")
    actions = p.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    q = actions.add_parser("status", help="replication health of every database node (exit 1 when not ok)")
    _inventory(q)
    _common(q, json=True)
    q = actions.add_parser("switchover", help="make a replica the primary, losing no committed write")
    _inventory(q)
    _common(q, json=True, journal=True, lock_wait=True)
    q.add_argument("--to", metavar="HOST", help="the replica to promote (default: the only one)")
    q.add_argument("--test", action="store_true", help="check and show the steps; change nothing")
    q = actions.add_parser("failover", help="the primary is gone: promote the most advanced replica")
    _inventory(q)
    _common(q, json=True, journal=True, lock_wait=True)
    q.add_argument("--test", action="store_true", help="check and show the steps; change nothing")
    q = actions.add_parser("unfence", help="make the primary writable although peers named are gone for good")
    _inventory(q)
    _common(q, json=True, journal=True, lock_wait=True)
    q.add_argument("--peer-gone", action="append", required=True, metavar="HOST", help="a peer known to be gone")
    q.add_argument("--test", action="store_true", help="check and show the steps; change nothing")


def _runbook(sub: Sub) -> None:
    p = sub.add_parser(
        "runbook",
        help="run a runbook (`runbook list` lists them)",
        description="Run a runbook: `foobar-ops runbook NAME -i INV [-p NAME VALUE ...]`, or list "
        "them: `foobar-ops runbook list [--json]`. On a timer, on the inventory's scheduler host: "
        "`runbook schedule NAME --every 1h [-p NAME VALUE ...]`, `runbook unschedule NAME`, "
        "`runbook schedules [--json]`.",
    )
    p.add_argument(
        "name", metavar="NAME", help="the runbook (runbooks/NAME.py), or list, schedule, unschedule, schedules"
    )
    p.add_argument("target", metavar="RUNBOOK", nargs="?", help="with schedule or unschedule: the runbook")
    p.add_argument("--every", default="1h", help="with schedule: how often (30s, 15m, 1h, 1d; default 1h)")
    p.add_argument(
        "--timeout", default="30m", help="with schedule: how long a run may take before it is stopped (default 30m)"
    )
    _inventory(p, required=False, default=None)
    p.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="a parameter (its text is read as the parameter's declared type)",
    )
    p.add_argument(
        "-y",
        "--yaml",
        action="append",
        default=[],
        metavar="YAML",
        help="parameters as a YAML mapping (for lists and mappings)",
    )
    p.add_argument(
        "-f", "--file", action="append", default=[], type=Path, metavar="FILE", help="parameters from a YAML file"
    )
    p.add_argument("--test", action="store_true", help="the runbook's plan-only mode (its `test` parameter)")
    p.add_argument("--cell-timeout", type=float, default=1800, help="seconds each cell may run (default 1800)")
    p.add_argument("--start-timeout", type=float, default=60, help="seconds the kernel gets to start (default 60)")
    p.add_argument("--quiet", action="store_true", help="do not stream the cells' output")
    _common(p, json=True, journal=True, lock_wait=True)


def _loadtest(sub: Sub) -> None:
    p = sub.add_parser("loadtest", help="Locust through the load balancer, with a computed verdict")
    actions = p.add_subparsers(dest="loadtest_command", required=True, metavar="KIND")
    for kind, text in (
        ("round-robin", "each server's share of requests against its weight"),
        ("read-scaling", "each database node's share of reads against its weight; writes"),
    ):
        q = actions.add_parser(kind, help=text)
        _inventory(q)
        _common(q, json=True, journal=True)
        q.add_argument("--users", type=int, default=16, help="concurrent users (default 16)")
        q.add_argument("--spawn-rate", type=float, default=16, help="users started per second (default 16)")
        q.add_argument("--run-time", default="20s", help="how long (20s, 5m; default 20s)")
        q.add_argument("--workers", type=int, default=0, help="Locust workers (a master and N local processes)")
        q.add_argument(
            "--workers-on",
            metavar="HOSTS",
            help="Locust workers on these load generators (comma-separated inventory hosts with the loadgen "
            "role), one each; the master runs here and sums their tallies",
        )
        if kind == "read-scaling":
            q.add_argument(
                "--no-compare", action="store_true", help="skip the second run with the replicas out of the read pool"
            )
    q = actions.add_parser("schedule", help="run a load test every so often from the load generators (a timer)")
    _inventory(q)
    _common(q, json=True, journal=True)
    q.add_argument("name", metavar="NAME", help="the schedule's name")
    q.add_argument("--kind", choices=["round-robin", "read-scaling"], default="round-robin")
    q.add_argument("--every", default="1h", help="how often (30s, 15m, 1h, 1d; default 1h)")
    q.add_argument("--users", type=int, default=16)
    q.add_argument("--spawn-rate", type=float, default=16)
    q.add_argument("--run-time", default="20s")
    q.add_argument("--on", metavar="HOSTS", help="the load generators that run it (default: the first one)")
    q = actions.add_parser("unschedule", help="stop and remove a schedule's timer")
    _inventory(q)
    _common(q, json=True, journal=True)
    q.add_argument("name", metavar="NAME")
    q = actions.add_parser(
        "collect", help="bring finished scheduled runs into the records, judged against the baseline"
    )
    _inventory(q)
    _common(q, json=True, journal=True)
    q.add_argument(
        "--margin",
        type=float,
        default=0.5,
        help="how much p95 may rise, or throughput fall, against the baseline (a share; default 0.5)",
    )
    q = actions.add_parser("history", help="a schedule's collected runs: the trend")
    _common(q, json=True)
    q.add_argument("name", metavar="NAME")
    q = actions.add_parser("baseline", help="make a collected run its schedule's baseline")
    _common(q, json=True)
    q.add_argument("name", metavar="NAME")
    q.add_argument("run", metavar="RUN")


def _firewall(sub: Sub) -> None:
    p = sub.add_parser("firewall", help="the hosts' firewalls (applied with the stack: apply, or apply firewall)")
    actions = p.add_subparsers(dest="firewall_command", required=True, metavar="ACTION")
    q = actions.add_parser(
        "check",
        help="connect from every host (and this machine) to every other host's named ports; compare with "
        "the rules (exit 1 on any difference)",
    )
    _inventory(q)
    _common(q, json=True)
    q.add_argument("--timeout", type=float, default=1.5, help="seconds before a connection counts as dropped")


def _tls(sub: Sub) -> None:
    p = sub.add_parser("tls", help="https at the load balancers: certificates served, and rotated without a reload")
    actions = p.add_subparsers(dest="tls_command", required=True, metavar="ACTION")
    q = actions.add_parser(
        "status",
        help="each load balancer's certificates: subject, names, serial, issuer, end, days left "
        "(warns under 20 days; exit 1 under 3)",
    )
    _inventory(q)
    _common(q, json=True)
    q = actions.add_parser(
        "rotate",
        help="serve a certificate on every load balancer without a reload (checked first; the file written, "
        "then set ssl cert and commit ssl cert)",
    )
    _inventory(q)
    _common(q, json=True, journal=True, lock_wait=True)
    q.add_argument("--cert", metavar="REF", help="the new chain, by reference (file:PATH or env:NAME); with --key")
    q.add_argument("--key", metavar="REF", help="its private key, by reference; both become the inventory's secrets")
    q.add_argument("--test", action="store_true", help="check the certificate and say what would change")


def _monitoring(sub: Sub) -> None:
    p = sub.add_parser(
        "health",
        help="the stack as Prometheus sees it: targets up or down, alerts firing (exit 1 when one is critical)",
    )
    _inventory(p)
    _common(p, json=True)
    p = sub.add_parser("alerts", help="foobar_ops's Alertmanager receiver: alerts recorded in the journal")
    actions = p.add_subparsers(dest="alerts_command", required=True, metavar="ACTION")
    q = actions.add_parser(
        "receive",
        help="listen for Alertmanager's webhook (stack.monitoring.webhook) and record each firing and "
        "resolution in the journal, until stopped",
    )
    _inventory(q)
    _common(q, journal=True)
    q.add_argument("--listen", metavar="ADDRESS", help="listen on this address (default: the webhook's)")
    q.add_argument("--port", type=int, help="listen on this port (default: the webhook's)")


def _paths(sub: Sub) -> None:
    p = sub.add_parser("paths", help="where records (journal, output notebooks) and caches are kept")
    _common(p, json=True)


def build_parser(description: str | None = None) -> argparse.ArgumentParser:
    """Return the argument parser of every sub-command.

    description: the program's description.
    """
    parser = argparse.ArgumentParser(prog="foobar-ops", description=description)
    parser.add_argument("--version", action="version", version=f"foobar-ops {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _hosts_ping_run,
        _apply_rollback,
        _plan,
        _lb_verify,
        _db,
        _runbook,
        _loadtest,
        _firewall,
        _tls,
        _monitoring,
        _records,
        _lab,
        _paths,
    ):
        add(sub)
    return parser
