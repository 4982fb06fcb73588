"""Role app: the foobar.com code base under gunicorn. The wheels are built on the control
machine and copied over; each release gets its own folder and venv; `current` is switched
atomically; the app is health-checked after a switch; the newest releases are kept."""

from __future__ import annotations

from typing import Any

from ...core import states as s
from ...core.shell import cmd
from ...core.states import State
from ..build import AppBuild, build_app
from ..topology import (
    APP_KEEPALIVE_S,
    APP_ROOT,
    db_hosts,
    db_primary,
    db_settings,
    host_number,
    host_switch,
    host_value,
    ports,
    read_weight,
)
from .base import Role, template
from .inputs import StackInputs

USER = "foobar"
ENV_FILE = "/etc/foobar/app.env"
UNIT = "/etc/systemd/system/foobar-app.service"
WHEELS = f"{APP_ROOT}/wheels"
RELEASES = f"{APP_ROOT}/releases"
CURRENT = f"{APP_ROOT}/current"
#: The releases deployed, one per line, the current one last; a rollback goes one step down.
HISTORY = f"{APP_ROOT}/releases.history"


def release_id(host: Any, build: AppBuild) -> str:
    """Return the release id: the build's id, plus vars.app_build when set (a forced new release)."""
    extra = host_value(host, "app_build", None)  # part of the release folder's name
    return f"{build.release}-b{extra}" if extra else build.release


def server_settings(host: Any) -> dict[str, Any]:
    """Return how gunicorn serves the app on a host: processes, threads each (the app waits on the
    database most of its time: threads are cheap concurrency), and the database pool per process
    (one connection per thread, so no request waits for one).

    vars: app_workers (default 2), app_threads (default 8), app_access_log (default false: Nginx
    already logs every request with its timings).
    """
    workers = host_number(host, "app_workers", 2, 1, 64)
    threads = host_number(host, "app_threads", 8, 1, 256)
    access_log = host_switch(host, "app_access_log", False)
    return {
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread" if threads > 1 else "sync",
        "access_log": access_log,
        "pool_size": threads,
        "keep_alive": APP_KEEPALIVE_S,
    }


def health_check(port: int, tries: int = 30) -> str:
    """Return a command that waits until the app answers /health with 200 (fails after tries s)."""
    url = f"http://127.0.0.1:{port}/health"
    return (
        f"i=0; until curl -fsS -m 2 -o /dev/null {cmd(url)}; do i=$((i+1)); "
        f"if [ $i -ge {tries} ]; then curl -sS -m 2 {cmd(url)}; exit 1; fi; sleep 1; done"
    )


def states(host: Any, inventory: Any, inputs: StackInputs | None = None) -> list[State[Any]]:
    """Return the app role's states for a host.

    inputs: the run's inputs, with the app's build and its wheels' bytes (made once per run); None
        (or without the app's build): built here for this call, as a caller that made none needs.
    """
    build = inputs.app if inputs is not None else None
    if inputs is None or build is None:
        build = build_app(inventory)
        inputs = StackInputs.of(app=build)
    release = release_id(host, build)
    target = f"{RELEASES}/{release}"
    p, db = ports(inventory), db_settings(inventory)
    db_primary(inventory)  # the app needs a database: refuse an inventory with none
    keep = host_number(host, "app_keep_releases", 3, 1, 100)
    serving = server_settings(host)
    wheel_states = [
        s.file.managed(
            f"{WHEELS}/{w.name}", content=inputs.content(w), require=["app:wheels-dir"], id=f"app:wheel:{w.name}"
        )
        for w in build.wheels
    ]
    install = (
        f"rm -rf {cmd(target)} && mkdir -p {cmd(target)} && python3 -m venv {cmd(target + '/venv')} && "
        f"{cmd(target + '/venv/bin/pip')} install --quiet --no-index --find-links {cmd(WHEELS)} "
        f"{cmd('foobar-app==' + build.version)} && cp -r {cmd(target)}/venv/lib/python3*/site-packages/"
        f"foobar_app/static {cmd(target + '/static')} && touch {cmd(target + '/.installed')}"
    )
    env = {
        "host": host.name,
        "release": release,
        "db_name": db["name"],
        "db_user": db["user"],
        "db_password": db["password"],
        # every database node with its read weight; the app finds the primary itself (the one
        # writable node), so a switchover changes nothing here
        "db_nodes": [f"{h.name}={h.address}:{p['mysql']}:{read_weight(h)}" for h in db_hosts(inventory)],
        "max_lag_s": db["max_lag_s"],
        "pool_size": serving["pool_size"],
    }
    unit = {
        "user": USER,
        "env_file": ENV_FILE,
        "app_root": APP_ROOT,
        "app_port": p["app"],
        **serving,
    }
    # kept: the current release, then the ones deployed most recently before it (the deploy
    # history, newest first: what a rollback goes back to), then the newest folders
    prune = (
        f"cd {cmd(RELEASES)} && kept=$({{ echo {cmd(release)}; tac {cmd(HISTORY)} 2>/dev/null; ls -1t; }} "
        "| awk '!seen[$0]++' | while IFS= read -r r; do [ -d \"$r\" ] && printf '%s\\n' \"$r\"; done "
        f"| head -n {keep}) && ls -1A | grep -vxF \"$kept\" | xargs -r -d '\\n' rm -rf --"
    )
    return [
        s.pkg.installed("python3-venv", id="app:python"),
        s.group.present(USER, system=True, id="app:group"),
        s.user.present(USER, system=True, home=APP_ROOT, require=["app:group"], id="app:user"),
        s.file.directory(APP_ROOT, id="app:root"),
        s.file.directory(WHEELS, require=["app:root"], id="app:wheels-dir"),
        s.file.directory(RELEASES, require=["app:root"], id="app:releases-dir"),
        *wheel_states,
        s.cmd.run(
            install,
            creates=f"{target}/.installed",
            label=f"install release {release}",
            require=["app:python", "app:releases-dir", *(w.id for w in wheel_states)],
            id="app:release",
        ),
        s.file.directory("/etc/foobar", id="app:etc"),
        s.file.managed(
            ENV_FILE, template=template("app.env.j2"), context=env, mode="0600", require=["app:etc"], id="app:env"
        ),
        s.file.managed(UNIT, template=template("foobar-app.service.j2"), context=unit, id="app:unit"),
        s.cmd.run(
            "systemctl daemon-reload", onchanges=["app:unit"], label="systemctl daemon-reload", id="app:daemon-reload"
        ),
        s.file.symlink(CURRENT, target, require=["app:release"], id="app:current"),
        s.cmd.run(
            f"echo {cmd(release)} >> {cmd(HISTORY)}",
            unless=f'[ "$(tail -n 1 {cmd(HISTORY)} 2>/dev/null)" = {cmd(release)} ]',
            require=["app:current"],
            label="record the release in the deploy history",
            id="app:history",
        ),
        s.service.running(
            "foobar-app",
            reload=False,
            require=["app:daemon-reload", "app:user"],
            watch=["app:current", "app:env", "app:unit"],
            id="app:service",
        ),
        s.cmd.run(
            health_check(p["app"]),
            onchanges=["app:service", "app:current"],
            require=["app:service"],
            label="app answers /health",
            id="app:health",
        ),
        s.cmd.run(
            prune,
            onchanges=["app:current"],
            require=["app:health"],
            label=f"keep the {keep} releases deployed last",
            id="app:prune",
        ),
    ]


def rollback_states(host: Any, inventory: Any) -> list[State[Any]]:
    """Return the states that switch `current` back to the release deployed before it, restart,
    and check. The deploy history is a stack: a rollback takes the current release off it, so a
    second rollback goes one release further back (never back to the one rolled back from); the
    next apply pushes the inventory's release again. Hosts without the app role get no states.
    """
    if "app" not in host.roles:
        return []
    p = ports(inventory)
    h = cmd(HISTORY)
    switch = (
        f'cur=$(basename "$(readlink {cmd(CURRENT)})"); '
        f'[ -s {h} ] || {{ echo "no deploy history {HISTORY}: nothing to roll back to (current: $cur)" >&2; '
        "exit 1; }; "
        f't=$(mktemp); cp {h} "$t"; '
        f'while [ -s "$t" ] && [ "$(tail -n 1 "$t")" = "$cur" ]; do sed -i \'$ d\' "$t"; done; '
        f'prev=; while [ -s "$t" ]; do r=$(tail -n 1 "$t"); '
        f'if [ -e {cmd(RELEASES)}/"$r"/.installed ]; then prev=$r; break; fi; sed -i \'$ d\' "$t"; done; '
        f'[ -n "$prev" ] || {{ rm -f "$t"; echo "no earlier release to roll back to (current: $cur)" >&2; exit 1; }}; '
        f'ln -sfn {cmd(RELEASES)}/"$prev" {cmd(CURRENT)}.rollback && mv -Tf {cmd(CURRENT)}.rollback {cmd(CURRENT)} && '
        f'mv "$t" {h} && chmod 0644 {h} && '
        f'sed -i "s/^FOOBAR_RELEASE=.*/FOOBAR_RELEASE=\\"$prev\\"/" {cmd(ENV_FILE)} && '
        f'systemctl restart foobar-app && echo "rolled back: $cur -> $prev"'
    )
    return [
        s.cmd.run(switch, label="switch current to the release deployed before it", id="app:rollback"),
        s.cmd.run(health_check(p["app"]), require=["app:rollback"], label="app answers /health", id="app:health"),
    ]


ROLE = Role("app", "app", states, "the foobar.com code base under gunicorn, one release folder each")
