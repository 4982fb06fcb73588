"""A run's results as a pandas DataFrame, a highstate-style terminal summary and HTML."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .result import HostOutcome, Outcome, Result, Status
from .shape import headline, one_line, plural

COLUMNS = ["host", "id", "name", "state", "status", "result", "changed", "comment", "diff", "duration_ms"]
_ANSI = {
    "green": "\033[32m",
    "yellow": "\033[33m",
    "red": "\033[31m",
    "cyan": "\033[36m",
    "dim": "\033[2m",
    "off": "\033[0m",
}


@dataclass(repr=False)
class Report:
    """Everything one apply produced.

    run_id: the journal's id for the run.
    test: True when nothing was changed (dry-run).
    results: one Result per state per host, hosts in inventory order.
    outcomes: host -> how it fared (reached or not, round trips).
    duration_s: wall time of the run.
    hosts: the hosts targeted (plus any host acted on for them, such as the load balancer).
    """

    run_id: str
    test: bool
    results: list[Result] = field(default_factory=list)
    outcomes: dict[str, HostOutcome] = field(default_factory=dict)
    duration_s: float = 0.0
    hosts: list[str] = field(default_factory=list)
    plan_file: str | None = None  # where this plan (a test-mode run) was saved, when it was
    journal_errors: list[str] = field(default_factory=list)  # records the journal could not take (kept aside)

    @property
    def round_trips(self) -> dict[str, int]:
        """Host -> SSH round trips used."""
        return {h: o.round_trips for h, o in self.outcomes.items() if h in self.hosts}

    @property
    def failed_hosts(self) -> list[str]:
        """Hosts that were unreachable or had a state fail (or not run), in host order."""
        return [h for h in self.hosts if h in self.outcomes and self.outcomes[h].outcome is not Outcome.OK]

    @property
    def unreachable_hosts(self) -> list[str]:
        """Hosts that could not be reached."""
        return [h for h in self.hosts if h in self.outcomes and self.outcomes[h].outcome is Outcome.UNREACHABLE]

    @property
    def ok(self) -> bool:
        """True when every host was reached and no state failed."""
        return not self.failed_hosts

    def order_hosts(self) -> None:
        """Add hosts acted on for others (e.g. the load balancer), give them outcomes, and sort the
        results by host order."""
        for result in self.results:
            if result.host not in self.hosts:
                self.hosts.append(result.host)
        for host in self.hosts:
            if host not in self.outcomes:
                bad = any(r.failed for r in self.results if r.host == host)
                self.outcomes[host] = HostOutcome(host, Outcome.FAILED if bad else Outcome.OK)
        self.results.sort(key=lambda r: self.hosts.index(r.host))

    def counts(self) -> dict[str, int]:
        """Return succeeded, changed, pending, failed, not_run and total counts."""
        rs = self.results
        return {
            "succeeded": sum(r.result is True for r in rs),
            "changed": sum(r.changed for r in rs),
            "pending": sum(r.pending for r in rs),
            "failed": sum(r.status is Status.FAILED for r in rs),
            "not_run": sum(r.status is Status.NOT_RUN for r in rs),
            "unreachable": len(self.unreachable_hosts),
            "total": len(rs),
        }

    def frame(self) -> Any:
        """Return the results as a pandas DataFrame (one row per state per host)."""
        import pandas as pd

        rows = [{c: (getattr(r, c).value if c == "status" else getattr(r, c)) for c in COLUMNS} for r in self.results]
        return pd.DataFrame(rows, columns=COLUMNS)

    def as_json(self) -> dict[str, Any]:
        """Return the JSON document `foobar-ops apply --json` prints."""
        keep = [
            "host",
            "id",
            "name",
            "state",
            "status",
            "result",
            "changed",
            "changes",
            "comment",
            "diff",
            "duration_ms",
            "idempotent",
        ]
        results = []
        for r in self.results:
            row = {k: getattr(r, k) for k in keep}
            row["status"] = r.status.value
            results.append(row)
        return {
            "run_id": self.run_id,
            "test": self.test,
            "results": results,
            "hosts": [self.outcomes[h].as_dict() for h in self.hosts if h in self.outcomes],
            "summary": dict(self.counts(), seconds=round(self.duration_s, 3), failed_hosts=self.failed_hosts),
            "round_trips": self.round_trips,
            "journal_errors": self.journal_errors,
        }

    def __str__(self) -> str:
        """One line: the run, its hosts and states, what changed or failed, its time; then any
        failed host and any record the journal could not take."""
        n = self.counts()
        parts = [plural(len(self.hosts), "host"), plural(n["total"], "state")]
        parts.append(f"{n['pending']} pending" if self.test else f"{n['changed']} changed")
        parts.append(f"{n['failed']} failed")
        if n["not_run"]:
            parts.append(f"{n['not_run']} not run")
        if n["unreachable"]:
            parts.append(f"{n['unreachable']} unreachable")
        line = f"run {self.run_id}{' (test)' if self.test else ''}: {', '.join(parts)} ({self.duration_s:.2f} s)"
        if self.failed_hosts:
            line += f"; failed hosts: {', '.join(self.failed_hosts)}"
        if self.journal_errors:
            line += f"; the journal could not take {plural(len(self.journal_errors), 'record')} (kept aside)"
        return one_line(line)

    def __repr__(self) -> str:
        return f"<Report {self}>"

    def summary(self, color: bool = False, diffs: bool = True) -> str:
        """Return a highstate-style summary: per-host state lines, then the totals.

        color: use ANSI colours.
        diffs: include the diff of each changed (or pending) file.
        """
        c: Callable[[str], str] = (lambda name: _ANSI[name]) if color else (lambda name: "")
        out: list[str | None] = []
        for host in self.hosts:
            outcome = self.outcomes.get(host)
            if outcome is not None and outcome.outcome is Outcome.UNREACHABLE:
                out.append(f"{c('cyan')}{host}:{c('off')} {c('red')}unreachable: {outcome.error}{c('off')}")
                continue
            out.append(f"{c('cyan')}{host}:{c('off')}")
            for r in (r for r in self.results if r.host == host):
                mark, tone = _mark(r)
                out.append(
                    f"  {c(tone)}{mark} {r.state:<16} {r.name}{c('off')}  {c('dim')}"
                    f"({r.duration_ms:.0f} ms){c('off')}  {r.comment}"
                )
                if diffs and r.diff and (r.changed or r.pending or r.failed):
                    out += ["      " + _color_diff_line(ln, c) for ln in r.diff.rstrip("\n").split("\n")]
        n = self.counts()
        not_run = f", not run: {n['not_run']}" if n["not_run"] else ""
        unreachable = (
            f"{c('red')}Unreachable: {', '.join(self.unreachable_hosts)}{c('off')}" if self.unreachable_hosts else None
        )
        out += [
            "",
            f"Summary for {len(self.hosts)} host(s){' (test mode: nothing changed)' if self.test else ''}",
            "-" * 40,
            f"{c('green')}Succeeded: {n['succeeded']} (changed={n['changed']}){c('off')}",
            f"{c('yellow')}Pending:   {n['pending']}{c('off')}" if self.test else None,
            f"{c('red') if n['failed'] + n['not_run'] else ''}Failed:    {n['failed']}{not_run}{c('off')}",
            unreachable,
            "-" * 40,
            f"Total states: {n['total']}",
            f"Total time:   {self.duration_s:.3f} s",
            "Round trips:  " + ", ".join(f"{h} {n_}" for h, n_ in self.round_trips.items()),
            f"{c('red')}Failed hosts: {', '.join(self.failed_hosts)}{c('off')}" if self.failed_hosts else None,
            f"{c('red')}Journal: {self.journal_errors[0]}{c('off')}" if self.journal_errors else None,
        ]
        return "\n".join(line for line in out if line is not None)

    def _repr_html_(self) -> str:
        rows = []
        for r in self.results:
            mark, tone = _mark(r)
            diff = (
                (
                    f"<pre style='margin:4px 0;text-align:left;white-space:pre;font-family:monospace;font-size:85%'>"
                    f"{_html_diff(r.diff)}</pre>"
                )
                if r.diff
                else ""
            )
            cells = [
                mark,
                html.escape(r.host),
                html.escape(r.state),
                html.escape(r.name),
                html.escape(r.comment) + diff,
                f"{r.duration_ms:.0f} ms",
            ]
            rows.append(f"<tr style='color:{_CSS[tone]}'>" + "".join(f"<td {_LEFT}>{c}</td>" for c in cells) + "</tr>")
        n = self.counts()
        head = headline(str(self), self.ok) + (
            f"<p>{n['succeeded']} ok, {n['changed']} changed, {n['pending']} pending, {n['failed']} failed, "
            f"{n['not_run']} not run{' (test mode: nothing changed)' if self.test else ''}</p>"
        )
        header = "".join(f"<th {_LEFT}>{h}</th>" for h in ("", "host", "state", "name", "comment", "time"))
        return head + f"<table><tr>{header}</tr>" + "".join(rows) + "</table>"


_LEFT = "style='text-align:left;vertical-align:top'"
_CSS = {"green": "#1a7f37", "yellow": "#9a6700", "red": "#cf222e", "dim": "#57606a", "cyan": "#0969da"}


def _mark(r: Result) -> tuple[str, str]:
    if r.failed:
        return ("-" if r.status is Status.NOT_RUN else "✗"), "red"
    if r.pending:
        return "~", "yellow"
    if r.changed:
        return "✓", "cyan"
    return "✓", "green"


def _color_diff_line(line: str, c: Callable[[str], str]) -> str:
    if line.startswith("+") and not line.startswith("+++"):
        return f"{c('green')}{line}{c('off')}"
    if line.startswith("-") and not line.startswith("---"):
        return f"{c('red')}{line}{c('off')}"
    return line


def _html_diff(diff: str) -> str:
    out = []
    for line in diff.splitlines():
        color = (
            "#1a7f37"
            if line.startswith("+") and not line.startswith("+++")
            else "#cf222e"
            if line.startswith("-") and not line.startswith("---")
            else "inherit"
        )
        out.append(f"<span style='color:{color}'>{html.escape(line)}</span>")
    return "\n".join(out)
