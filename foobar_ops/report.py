"""A run's results as a pandas DataFrame, a highstate-style terminal summary and HTML."""
from __future__ import annotations

import html
from dataclasses import dataclass, field

from .result import Result

COLUMNS = ["host", "id", "name", "state", "result", "changed", "comment", "diff", "duration_ms", "run"]
_ANSI = {"green": "\033[32m", "yellow": "\033[33m", "red": "\033[31m", "cyan": "\033[36m",
         "dim": "\033[2m", "off": "\033[0m"}


@dataclass
class Report:
    """Everything one apply produced.

    run_id: the journal's id for the run.
    test: True when nothing was changed (dry-run).
    results: one Result per state per host, hosts in inventory order.
    round_trips: host -> SSH round trips used.
    duration_s: wall time of the run.
    hosts: the hosts targeted.
    """

    run_id: str
    test: bool
    results: list[Result] = field(default_factory=list)
    round_trips: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0
    hosts: list[str] = field(default_factory=list)

    @property
    def failed_hosts(self) -> list[str]:
        return [h for h in self.hosts if any(r.result is False for r in self.results if r.host == h)]

    @property
    def failed_hosts_unreachable(self) -> list[str]:
        """Hosts that could not be reached (they are skipped by later phases)."""
        return [r.host for r in self.results if r.id == "__host__" and r.result is False]

    @property
    def ok(self) -> bool:
        return not self.failed_hosts

    def counts(self) -> dict:
        """Return succeeded, changed, pending, failed, not_run and total counts."""
        rs = self.results
        return {"succeeded": sum(r.result is True for r in rs),
                "changed": sum(r.changed for r in rs), "pending": sum(r.pending for r in rs),
                "failed": sum(r.result is False for r in rs), "not_run": sum(not r.run for r in rs),
                "total": len(rs)}

    def frame(self):
        """Return the results as a pandas DataFrame (one row per state per host)."""
        import pandas as pd
        return pd.DataFrame([{c: getattr(r, c) for c in COLUMNS} for r in self.results], columns=COLUMNS)

    def as_json(self) -> dict:
        """Return the JSON document `foobar-ops apply --json` prints."""
        keep = ["host", "id", "name", "state", "result", "changed", "changes", "comment", "diff",
                "duration_ms", "run", "idempotent"]
        return {"run_id": self.run_id, "test": self.test,
                "results": [{k: getattr(r, k) for k in keep} for r in self.results],
                "summary": dict(self.counts(), seconds=round(self.duration_s, 3),
                                failed_hosts=self.failed_hosts),
                "round_trips": self.round_trips}

    def summary(self, color: bool = False, diffs: bool = True) -> str:
        """Return a highstate-style summary: per-host state lines, then the totals.

        color: use ANSI colours.
        diffs: include the diff of each changed (or pending) file.
        """
        c = (lambda name: _ANSI[name]) if color else (lambda name: "")
        out = []
        for host in self.hosts:
            out.append(f"{c('cyan')}{host}:{c('off')}")
            for r in (r for r in self.results if r.host == host):
                mark, tone = _mark(r)
                out.append(f"  {c(tone)}{mark} {r.state:<16} {r.name}{c('off')}  {c('dim')}"
                           f"({r.duration_ms:.0f} ms){c('off')}  {r.comment}")
                if diffs and r.diff and (r.changed or r.pending or r.result is False):
                    out += ["      " + _color_diff_line(ln, c) for ln in r.diff.rstrip("\n").split("\n")]
        n = self.counts()
        not_run = f" ({n['not_run']} not run)" if n["not_run"] else ""
        out += ["", f"Summary for {len(self.hosts)} host(s){' (test mode: nothing changed)' if self.test else ''}",
                "-" * 40,
                f"{c('green')}Succeeded: {n['succeeded']} (changed={n['changed']}){c('off')}",
                f"{c('yellow')}Pending:   {n['pending']}{c('off')}" if self.test else None,
                f"{c('red') if n['failed'] else ''}Failed:    {n['failed']}"
                f"{not_run}{c('off')}",
                "-" * 40, f"Total states: {n['total']}", f"Total time:   {self.duration_s:.3f} s",
                "Round trips:  " + ", ".join(f"{h} {n_}" for h, n_ in self.round_trips.items()),
                f"{c('red')}Failed hosts: {', '.join(self.failed_hosts)}{c('off')}" if self.failed_hosts else None]
        return "\n".join(line for line in out if line is not None)

    def _repr_html_(self) -> str:
        rows = []
        for r in self.results:
            mark, tone = _mark(r)
            diff = (f"<pre style='margin:4px 0;text-align:left;white-space:pre;font-family:monospace;font-size:85%'>"
                    f"{_html_diff(r.diff)}</pre>") if r.diff else ""
            cells = [mark, html.escape(r.host), html.escape(r.state), html.escape(r.name),
                     html.escape(r.comment) + diff, f"{r.duration_ms:.0f} ms"]
            rows.append(f"<tr style='color:{_CSS[tone]}'>"
                        + "".join(f"<td {_LEFT}>{c}</td>" for c in cells) + "</tr>")
        n = self.counts()
        head = (f"<p><b>run {self.run_id}</b>{' (test mode)' if self.test else ''}: {n['succeeded']} ok, "
                f"{n['changed']} changed, {n['pending']} pending, {n['failed']} failed, "
                f"{self.duration_s:.2f} s</p>")
        header = "".join(f"<th {_LEFT}>{h}</th>" for h in ("", "host", "state", "name", "comment", "time"))
        return head + f"<table><tr>{header}</tr>" + "".join(rows) + "</table>"


_LEFT = "style='text-align:left;vertical-align:top'"
_CSS = {"green": "#1a7f37", "yellow": "#9a6700", "red": "#cf222e", "dim": "#57606a", "cyan": "#0969da"}


def _mark(r: Result) -> tuple[str, str]:
    if r.result is False:
        return ("✗" if r.run else "-"), "red"
    if r.pending or (r.result is None and r.changes):
        return "~", "yellow"
    if r.changed:
        return "✓", "cyan"
    return "✓", "green"


def _color_diff_line(line: str, c) -> str:
    if line.startswith("+") and not line.startswith("+++"):
        return f"{c('green')}{line}{c('off')}"
    if line.startswith("-") and not line.startswith("---"):
        return f"{c('red')}{line}{c('off')}"
    return line


def _html_diff(diff: str) -> str:
    out = []
    for line in diff.splitlines():
        color = ("#1a7f37" if line.startswith("+") and not line.startswith("+++") else
                 "#cf222e" if line.startswith("-") and not line.startswith("---") else "inherit")
        out.append(f"<span style='color:{color}'>{html.escape(line)}</span>")
    return "\n".join(out)
