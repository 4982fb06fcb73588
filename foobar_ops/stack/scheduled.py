"""Scheduled load tests: a systemd timer on a load generator host runs Locust every so often; the
runs are collected into the records, judged, and compared with a baseline (a regression of p95 or
throughput beyond a margin, or an unbalanced share, fails the run and says so)."""

from __future__ import annotations

import base64
import io
import json
import re
import tarfile
from pathlib import Path
from typing import Any

from ..core import paths
from ..core import states as s
from ..core.errors import FoobarOpsError
from ..core.shell import cmd
from ..core.ssh import Remote
from ..core.states import State
from . import loadtest as lt
from .loadgen_layout import RUNNER, RUNS
from .roles.base import template
from .topology import db_hosts, db_primary, domain, lb_hosts, read_weight, site_url, web_weight

_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,40}")
_RUN = re.compile(r"[a-z0-9][a-z0-9-]{0,40}-[0-9]{8}-[0-9]{6}")
_EVERY = re.compile(r"[0-9]{1,6}(s|m|min|h|d)")
_UNSAFE = re.compile(r"[\x00-\x1f\x7f%$]")
MARGIN = 0.5  # a run regresses when its p95 exceeds the baseline's by half, or its throughput falls by half


def unit(name: str) -> str:
    """Return the systemd unit name (without suffix) of a scheduled load test."""
    return f"foobar-loadtest-{name}"


def check_name(name: str) -> str:
    """Return a schedule's name, or refuse it naming it: it names a unit and a records folder, so
    it is a name, never a path."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise lt.LoadTestError(f"schedule name {name!r}: use lowercase letters, digits and '-' (at most 41)")
    return name


def check_schedule(name: str, kind: str, every: str) -> None:
    """Refuse a bad schedule, naming what is wrong."""
    check_name(name)
    if kind not in lt.KINDS:
        raise lt.LoadTestError(f"unknown load test {kind!r} (load tests: {', '.join(lt.KINDS)})")
    if not isinstance(every, str) or not _EVERY.fullmatch(every):
        raise lt.LoadTestError(f"--every {every!r}: give a time span such as 30s, 15m, 1h or 1d")


def unit_values(values: dict[str, Any]) -> dict[str, Any]:
    """Return the values a unit file of a schedule is rendered from, refusing any that holds a
    newline or another control character (it would add lines, such as ExecStartPre=, to a unit
    that runs as root), a '%' (a systemd specifier) or a '$' (a variable), naming the key.

    values: key -> value (each rendered with str()).
    """
    for key, value in values.items():
        text = str(value)
        if _UNSAFE.search(text):
            raise lt.LoadTestError(f"{key} {text!r}: a unit file takes no control character, '%' or '$' in a value")
    return values


def schedule_states(
    inventory: Any, name: str, kind: str, every: str, users: int, spawn_rate: float, run_time: str
) -> Any:
    """Return the function (host, inventory) -> states that installs and starts the timer."""
    check_schedule(name, kind, every)
    lt.check_load(users, spawn_rate, run_time)
    if not lb_hosts(inventory):
        raise lt.LoadTestError(f"{inventory.path}: no host has the haproxy role: nothing to send load through")
    ctx = unit_values(
        {
            "name": name,
            "kind": kind,
            "every": every,
            "users": users,
            "spawn_rate": spawn_rate,
            "run_time": run_time,
            "runner": RUNNER,
            "host": site_url(inventory),
            "site": domain(inventory),
        }
    )
    base = f"/etc/systemd/system/{unit(name)}"

    def states(host: Any, inv: Any) -> list[State[Any]]:
        return [
            s.file.managed(
                f"{base}.service", template=template("loadtest.service.j2"), context=ctx, id="schedule:service"
            ),
            s.file.managed(f"{base}.timer", template=template("loadtest.timer.j2"), context=ctx, id="schedule:timer"),
            s.cmd.run(
                "systemctl daemon-reload",
                onchanges=["schedule:service", "schedule:timer"],
                label="systemctl daemon-reload",
                id="schedule:reload",
            ),
            s.service.running(
                f"{unit(name)}.timer",
                reload=False,
                watch=["schedule:timer"],
                require=["schedule:reload"],
                id="schedule:running",
            ),
        ]

    return states


def unschedule_states(name: str) -> Any:
    """Return the function (host, inventory) -> states that stops and removes the timer."""
    check_name(name)
    base = f"/etc/systemd/system/{unit(name)}"

    def states(host: Any, inv: Any) -> list[State[Any]]:
        return [
            s.service.dead(f"{unit(name)}.timer", id="unschedule:stopped"),
            s.file.absent(f"{base}.timer", require=["unschedule:stopped"], id="unschedule:timer"),
            s.file.absent(f"{base}.service", require=["unschedule:stopped"], id="unschedule:service"),
            s.cmd.run(
                "systemctl daemon-reload",
                onchanges=["unschedule:timer", "unschedule:service"],
                label="systemctl daemon-reload",
                id="unschedule:reload",
            ),
        ]

    return states


# ---- collecting -----------------------------------------------------------------------------------


def folder() -> Path:
    """Return where collected scheduled runs are kept."""
    return paths.records_dir() / "loadtests" / "scheduled"


def baselines_path() -> Path:
    return folder() / "baselines.json"


def baselines() -> dict[str, dict[str, Any]]:
    """Return each schedule's baseline: {"run_id", "rps", "p95_ms"}."""
    path = baselines_path()
    return json.loads(path.read_text()) if path.exists() else {}


def set_baseline(name: str, run_id: str) -> dict[str, Any]:
    """Make a collected run the baseline of its schedule; return the baseline.

    name: the schedule.
    run_id: a collected run of it.
    """
    check_name(name)
    if not isinstance(run_id, str) or not _RUN.fullmatch(run_id):
        raise lt.LoadTestError(f"run {run_id!r}: give a collected run id such as {name}-20260101-120000")
    verdict = folder() / name / run_id / "verdict.json"
    if not verdict.exists():
        raise lt.LoadTestError(f"no collected run {run_id} of {name} (see `foobar-ops loadtest history {name}`)")
    doc = json.loads(verdict.read_text())
    chosen = {"run_id": run_id, "rps": doc["rps"], "p95_ms": doc["p95_ms"]}
    found = baselines()
    found[name] = chosen
    baselines_path().parent.mkdir(parents=True, exist_ok=True)
    baselines_path().write_text(json.dumps(found, indent=2))
    return chosen


def _fetch(host: Any, inventory: Any, run: str) -> bytes:
    """Return a finished run's folder on a load generator as a gzipped tar."""
    with Remote(host, inventory) as remote:
        out = remote.run(
            cmd("sh", "-c", f"tar -C {cmd(RUNS)} -cz {cmd(run)} | base64 -w0"), sudo=host.user != "root", timeout=120
        )
    if not out.ok:
        raise FoobarOpsError(f"{host.name}: cannot fetch run {run}: {out.error}")
    return base64.b64decode(out.stdout)


def collect(inventory: Any, margin: float = MARGIN) -> list[lt.LoadTest]:
    """Bring every finished, not yet collected scheduled run from the load generators into the
    records, judge it (shares against the configured weights, failures, writes on the primary),
    compare it with its schedule's baseline (the first collected passing run is taken as the
    baseline when there is none), and mark it collected on the host. Return the runs, oldest first.

    inventory: the Inventory.
    margin: the share by which p95 may rise, or throughput fall, against the baseline.
    """
    out: list[lt.LoadTest] = []
    weights = {h.name: web_weight(h) for h in inventory.hosts.values() if "nginx" in h.roles}
    reads_weights = {h.name: read_weight(h) for h in db_hosts(inventory)}
    primary = db_primary(inventory).name if db_hosts(inventory) else None
    for host in inventory.select("role:loadgen"):
        with Remote(host, inventory) as remote:
            listing = remote.run(
                cmd(
                    "sh",
                    "-c",
                    f"cd {cmd(RUNS)} 2>/dev/null && for d in */; do "
                    '[ -e "$d/done" ] && [ ! -e "$d/collected" ] && echo "${d%/}"; done; true',
                ),
                sudo=host.user != "root",
            )
        for run in sorted(r for r in listing.stdout.split() if _RUN.fullmatch(r)):  # what the runner names
            out.append(_collect_one(host, inventory, run, weights, reads_weights, primary, margin))
    return out


def _collect_one(
    host: Any,
    inventory: Any,
    run: str,
    weights: dict[str, int],
    reads_weights: dict[str, int],
    primary: str | None,
    margin: float,
) -> lt.LoadTest:
    data = _fetch(host, inventory, run)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        meta = json.loads(tar.extractfile(f"{run}/meta.json").read())  # type: ignore[union-attr]
        name = meta.get("name") if isinstance(meta, dict) else None
        if not isinstance(name, str) or not _NAME.fullmatch(name) or not run.startswith(f"{name}-"):
            raise lt.LoadTestError(f"{host.name}: run {run!r} names no schedule of its own ({name!r}): not collected")
        target = folder() / name
        target.mkdir(parents=True, exist_ok=True)
        tar.extractall(target, filter="data")
    where = target / run
    ran = lt.read_run(where, meta.get("code", 0))
    test = lt.LoadTest(
        meta["kind"],
        run,
        parameters={k: meta[k] for k in ("users", "spawn_rate", "run_time")},
        folder=str(where),
        extra={"schedule": name, "load_generator": host.name, "started": meta.get("started")},
    )
    lt.judge(test, ran, None, weights, reads_weights, None, primary)
    base = baselines().get(name)
    lt.against_baseline(test, base, margin)
    if base is None and test.passed:
        test.extra["baseline"] = "this run is now the baseline"
        (where / "verdict.json").write_text(json.dumps(test.as_json(), indent=2, default=str))
        set_baseline(name, run)
    (where / "verdict.json").write_text(json.dumps(test.as_json(), indent=2, default=str))
    with Remote(host, inventory) as remote:
        remote.run(cmd("touch", f"{RUNS}/{run}/collected"), sudo=host.user != "root")
    return test


def history(name: str) -> Any:
    """Return a schedule's collected runs, oldest first, as a DataFrame: when, verdict, rps, p95,
    failures, the shares, and whether each was the baseline."""
    import pandas as pd

    check_name(name)
    rows = []
    base = baselines().get(name, {}).get("run_id")
    for verdict in sorted((folder() / name).glob("*/verdict.json")):
        doc = json.loads(verdict.read_text())
        rows.append(
            {
                "run_id": doc["run_id"],
                "started": doc["extra"].get("started"),
                "verdict": doc["verdict"],
                "rps": doc["rps"],
                "p95_ms": doc["p95_ms"],
                "failures": doc["failures"],
                "shares": {n: v["share"] for n, v in doc["servers"].items()},
                "baseline": doc["run_id"] == base,
                "failed": "; ".join(f"{c['name']}: {c['measured']}" for c in doc["checks"] if not c["ok"]),
            }
        )
    return pd.DataFrame(rows)
