"""Scheduled runbooks: a systemd timer per runbook on the host the inventory names to run them
(stack.scheduler). That host gets foobar_ops itself (wheels built here: it has no route out), the
runbooks, the inventory and the files the inventory names (SSH key and known hosts, secret files,
the site's CA) at the same paths, and a records folder of its own where each run's output notebook
and journal rows are kept. After every run, a node exporter metric says how it ended; the rule
ScheduledRunbookFailed alerts on one that failed or timed out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..core import states as s
from ..core.errors import ScheduleError, TopologyError
from ..core.states import State
from .build import AppBuild
from .monitoring import TEXTFILE_DIR
from .roles.base import template
from .topology import stack_vars

ROOT = "/opt/foobar-ops"
WHEELS = f"{ROOT}/wheels"
RUNBOOKS = f"{ROOT}/runbooks"
CONF = "/etc/foobar-ops/scheduler"
INVENTORY = f"{CONF}/inventory.yml"
SCHEDULES = f"{CONF}/schedules"
#: the scheduler's records folder: its journal and the output notebooks of the scheduled runs
HOME = "/var/lib/foobar-ops-scheduler"
OUTCOME = f"{ROOT}/runbook-outcome"
STATUS = f"{ROOT}/schedules-status"
#: the build every timer runs (a link to its venv)
CURRENT = f"{ROOT}/current"


def venv(release: str) -> str:
    """Return the folder of the scheduler's venv for a foobar_ops build."""
    return f"{ROOT}/{release}"


def unit(name: str) -> str:
    """Return the systemd unit name (without suffix) of a runbook's schedule."""
    return f"foobar-runbook-{name}"


def metric_file(name: str) -> str:
    """Return the node exporter textfile that says how the schedule's last run ended."""
    return f"{TEXTFILE_DIR}/foobar-runbook-{name}.prom"


def scheduler_host(inventory: Any) -> Any:
    """Return the host that runs scheduled runbooks (stack.scheduler); TopologyError without one."""
    named = stack_vars(inventory).get("scheduler")
    if not named:
        raise TopologyError(
            f"{inventory.path}: name the host that runs scheduled runbooks (a systemd host that reaches the "
            "others over SSH): stack.scheduler"
        )
    if named not in inventory.hosts:
        raise TopologyError(f"{inventory.path}: key 'stack.scheduler': {named!r} is not a host of the inventory")
    return inventory.hosts[named]


def carried(inventory: Any) -> dict[str, tuple[bytes, bool]]:
    """Return the files the inventory names that a run on the scheduler needs, by their path there
    (the same as here): path -> (content, sensitive). A secret given as env:NAME cannot go there
    (this machine's environment is not the scheduler's) and is refused, named."""
    found: dict[str, tuple[bytes, bool]] = {}

    def take(path: Any, sensitive: bool, what: str) -> None:
        where = Path(str(path))
        if not where.is_absolute():
            raise ScheduleError(f"{what} {where}: give it as an absolute path for the scheduler to find it")
        try:
            found[str(where)] = (where.read_bytes(), sensitive)
        except OSError as err:
            raise ScheduleError(f"{what} {where}: cannot read it: {err.strerror or err}") from None

    secrets = dict(inventory.secrets)
    for host in inventory.hosts.values():
        if host.ssh.identity:
            take(host.ssh.identity, True, f"host {host.name}: ssh.identity")
        if host.ssh.known_hosts:
            take(host.ssh.known_hosts, False, f"host {host.name}: ssh.known_hosts")
        if host.sudo_password is not None:
            secrets[f"{host.name}.sudo_password"] = host.sudo_password
    for name, secret in sorted(secrets.items()):
        if secret.scheme != "file":
            raise ScheduleError(
                f"secret {name} is {secret.ref}: a scheduled runbook runs on the scheduler, where this machine's "
                "environment is not; give it as file:PATH"
            )
        take(secret.target, True, f"secret {name}")
    ca = (stack_vars(inventory).get("tls") or {}).get("ca")
    if ca:
        take(ca, False, "stack.tls.ca")
    return found


def runner_states(inventory: Any, build: AppBuild, runbooks: dict[str, str]) -> list[State[Any]]:
    """Return the states that make the scheduler able to run runbooks: foobar_ops in a venv, the
    runbooks, the inventory and the files it names, the scripts the timers use.

    inventory: the Inventory.
    build: foobar_ops's wheels (stack.build.build_runner).
    runbooks: file name -> text of every runbook file (the catalog's folder).
    """
    env = venv(build.release)
    wheels = [
        s.file.managed(
            f"{WHEELS}/{w.name}", content=w.read_bytes(), require=["runner:wheels-dir"], id=f"runner:{w.name}"
        )
        for w in build.wheels
    ]
    own = build.wheels[0].name  # foobar_ops's own wheel comes first
    # a new build: a venv of its own; `current` points at it (every timer runs current), and the
    # builds before it go (each holds the whole dependency set)
    install = (
        f"rm -rf {env} && python3 -m venv {env} && {env}/bin/pip install --quiet --no-index --find-links {WHEELS} "
        f"{WHEELS}/{own} && touch {env}/.installed && ln -sfn {env} {CURRENT}.new && mv -Tf {CURRENT}.new {CURRENT} "
        f"&& find {ROOT} -mindepth 1 -maxdepth 1 -type d -name 'foobar_ops-*' ! -name {build.release} "
        f"-exec rm -rf {{}} + && find {WHEELS} -name 'foobar_ops-*.whl' ! -name {own} -delete"
    )
    files = [
        s.file.managed(
            path,
            content=content,
            mode="0600" if sensitive else "0644",
            sensitive=sensitive,
            makedirs=True,
            id=f"runner:carried:{path}",
        )
        for path, (content, sensitive) in sorted(carried(inventory).items())
    ]
    books = [
        s.file.managed(f"{RUNBOOKS}/{name}", content=text, require=["runner:runbooks-dir"], id=f"runner:book:{name}")
        for name, text in sorted(runbooks.items())
    ]
    return [
        s.pkg.installed("python3-venv", id="runner:python"),
        s.file.directory(ROOT, id="runner:root"),
        s.file.directory(WHEELS, require=["runner:root"], id="runner:wheels-dir"),
        s.file.directory(RUNBOOKS, require=["runner:root"], id="runner:runbooks-dir"),
        s.file.directory(CONF, mode="0700", id="runner:conf"),
        s.file.directory(SCHEDULES, mode="0700", require=["runner:conf"], id="runner:schedules-dir"),
        s.file.directory(HOME, mode="0700", id="runner:home"),
        *wheels,
        s.cmd.run(
            install,
            creates=f"{env}/.installed",
            label=f"install {build.release}",
            require=["runner:python", *(w.id for w in wheels)],
            id="runner:venv",
        ),
        s.file.symlink(CURRENT, env, force=True, require=["runner:venv"], id="runner:current"),
        s.file.managed(
            INVENTORY,
            content=Path(str(inventory.path)).read_bytes(),
            mode="0600",
            require=["runner:conf"],
            id="runner:inventory",
        ),
        *files,
        *books,
        s.file.managed(
            OUTCOME,
            template=template("runbook-outcome.j2"),
            context={"textfile_dir": TEXTFILE_DIR},
            mode="0755",
            require=["runner:root"],
            id="runner:outcome",
        ),
        s.file.managed(
            STATUS,
            template=template("schedules-status.j2"),
            context={"schedules": SCHEDULES, "journal": f"{HOME}/journal.sqlite"},
            mode="0755",
            require=["runner:root"],
            id="runner:status",
        ),
    ]


def schedule_states(
    name: str, every: str, timeout: str, values: dict[str, Any], release: str, inventory_sha256: str
) -> list[State[Any]]:
    """Return the states of one runbook's timer (after runner_states).

    name: the runbook.
    every: how often (systemd's time span: 30s, 15m, 1h, 1d).
    timeout: how long a run may take before systemd stops it (a timed-out run).
    values: its parameters (checked), written to a YAML file the run reads with -f.
    release: the scheduler's foobar_ops build (recorded with the schedule; the timer runs `current`).
    inventory_sha256: the inventory's hash (recorded with the schedule).
    """
    base = f"/etc/systemd/system/{unit(name)}"
    ctx = {
        "name": name,
        "every": every,
        "timeout": timeout,
        "venv": CURRENT,
        "inventory": INVENTORY,
        "values": f"{SCHEDULES}/{name}.json",
        "home": HOME,
        "runbooks": RUNBOOKS,
        "outcome": OUTCOME,
        "root": ROOT,
    }
    meta = {
        "runbook": name,
        "every": every,
        "timeout": timeout,
        "parameters": values,
        "inventory": inventory_sha256,
        "release": release,
    }
    return [
        s.file.managed(
            f"{SCHEDULES}/{name}.json",
            content=json.dumps(values, indent=2, sort_keys=True, default=str) + "\n",
            mode="0600",
            require=["runner:schedules-dir"],
            id="schedule:values",
        ),
        s.file.managed(
            f"{SCHEDULES}/{name}.meta.json",
            content=json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n",
            mode="0600",
            require=["runner:schedules-dir"],
            id="schedule:meta",
        ),
        s.file.managed(f"{base}.service", template=template("runbook.service.j2"), context=ctx, id="schedule:service"),
        s.file.managed(f"{base}.timer", template=template("runbook.timer.j2"), context=ctx, id="schedule:timer"),
        s.cmd.run(
            "systemctl daemon-reload",
            onchanges=["schedule:service", "schedule:timer"],
            label="systemctl daemon-reload",
            id="schedule:reload",
        ),
        s.service.running(
            f"{unit(name)}.timer", reload=False, watch=["schedule:timer"], require=["schedule:reload"], id="schedule:on"
        ),
    ]


def unschedule_states(name: str) -> list[State[Any]]:
    """Return the states that stop and remove a runbook's timer, its files and its metric."""
    base = f"/etc/systemd/system/{unit(name)}"
    return [
        s.service.dead(f"{unit(name)}.timer", id="unschedule:timer-stopped"),
        s.file.absent(f"{base}.timer", require=["unschedule:timer-stopped"], id="unschedule:timer"),
        s.file.absent(f"{base}.service", require=["unschedule:timer-stopped"], id="unschedule:service"),
        s.file.absent(f"{SCHEDULES}/{name}.json", id="unschedule:values"),
        s.file.absent(f"{SCHEDULES}/{name}.meta.json", id="unschedule:meta"),
        s.file.absent(metric_file(name), id="unschedule:metric"),
        s.cmd.run(
            "systemctl daemon-reload",
            onchanges=["unschedule:timer", "unschedule:service"],
            label="systemctl daemon-reload",
            id="unschedule:reload",
        ),
    ]
