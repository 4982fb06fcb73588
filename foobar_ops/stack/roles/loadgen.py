"""Role loadgen: a host that generates load with Locust: Locust from wheels fetched on the control
machine (the host has no route out), the stack's locustfiles, and a runner that keeps each run's
CSVs, report and tallies for `foobar-ops loadtest collect`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...core import states as s
from ...core.shell import cmd
from ...core.states import State
from ..build import build_loadgen
from ..loadgen_layout import FILES, ROOT, RUNNER, RUNS, SITE_CA, WHEELS, venv
from ..loadtest import locustfiles
from ..topology import TopologyError, site_ca
from .base import Role, template
from .inputs import StackInputs

__all__ = ["ROLE", "ROOT", "RUNNER", "RUNS", "SITE_CA", "WHEELS", "states", "venv"]


def states(host: Any, inventory: Any, inputs: StackInputs | None = None) -> list[State[Any]]:
    """Return the loadgen role's states for a host.

    inputs: the run's inputs, with Locust's wheels and their bytes (made once per run); None (or
        without them): fetched here for this call, as a caller that made none needs.
    """
    build = inputs.loadgen if inputs is not None else None
    if inputs is None or build is None:
        build = build_loadgen()
        inputs = StackInputs.of(loadgen=build)
    env = venv(build.release)
    wheels = [
        s.file.managed(
            f"{WHEELS}/{w.name}",
            content=inputs.content(w),
            require=["loadgen:wheels-dir"],
            id=f"loadgen:wheel:{w.name}",
        )
        for w in build.wheels
    ]
    files = [
        s.file.managed(
            f"{FILES}/{p.name}",
            content=p.read_text(),
            require=["loadgen:files-dir"],
            id=f"loadgen:file:{p.name}",
        )
        for p in sorted(locustfiles().glob("*.py"))
    ]
    install = (
        f"rm -rf {cmd(env)} && python3 -m venv {cmd(env)} && {cmd(env + '/bin/pip')} install --quiet "
        f"--no-index --find-links {cmd(WHEELS)} {cmd('locust==' + build.version)} && touch {cmd(env + '/.installed')}"
    )
    ca = site_ca(inventory)
    if ca:
        try:
            ca_text = Path(ca).read_text()
        except OSError as err:
            raise TopologyError(f"{inventory.path}: stack.tls.ca {ca}: cannot read it: {err.strerror or err}") from None
        trust: State[Any] = s.file.managed(SITE_CA, content=ca_text, require=["loadgen:root"], id="loadgen:site-ca")
    else:
        trust = s.file.absent(SITE_CA, id="loadgen:site-ca")
    return [
        s.pkg.installed("python3-venv", id="loadgen:python"),
        s.file.directory(ROOT, id="loadgen:root"),
        s.file.directory(WHEELS, require=["loadgen:root"], id="loadgen:wheels-dir"),
        s.file.directory(FILES, require=["loadgen:root"], id="loadgen:files-dir"),
        s.file.directory(RUNS, id="loadgen:runs"),
        *wheels,
        *files,
        s.cmd.run(
            install,
            creates=f"{env}/.installed",
            label=f"install Locust {build.version}",
            require=["loadgen:python", *(w.id for w in wheels)],
            id="loadgen:venv",
        ),
        s.file.managed(
            RUNNER,
            template=template("run-loadtest.j2"),
            context={"venv": env, "runs": RUNS, "files": FILES, "site_ca": SITE_CA},
            mode="0755",
            require=["loadgen:root"],
            id="loadgen:runner",
        ),
        trust,
    ]


ROLE = Role("loadgen", "web", states, "a load generator: Locust and the stack's locustfiles, for scheduled runs")
