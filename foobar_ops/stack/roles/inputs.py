"""The run's inputs to the stack's roles: what is made on the control machine once per run (the
app's wheels, the load generator's wheels, and their bytes) and handed to every host's role, so a
role stays a pure function of a host and these inputs.

Only what the targeted hosts need is made: the app's build only when a targeted host has the app
role (and the app is among the roles applied), Locust's wheels only when one has the loadgen role.
A dry-run (`--test`) needs them as much as an apply does (a wheel file's state compares its content
by hash), so it makes the same: a dry-run of lb-01 alone builds nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..build import AppBuild, build_app, build_loadgen

__all__ = ["StackInputs", "inputs_for", "needed"]


@dataclass(frozen=True)
class StackInputs:
    """What the stack's roles take besides a host and the inventory, made once per run.

    app: the app's build (None: no targeted host applies the app role).
    loadgen: Locust's wheels (None: no targeted host applies the loadgen role).
    wheels: every wheel file of both builds -> its bytes, read once for all hosts.
    """

    app: AppBuild | None = None
    loadgen: AppBuild | None = None
    wheels: Mapping[Path, bytes] = field(default_factory=lambda: MappingProxyType({}), repr=False, hash=False)

    @classmethod
    def of(cls, app: AppBuild | None = None, loadgen: AppBuild | None = None) -> StackInputs:
        """Return the inputs holding these builds, each wheel file read once.

        app: the app's build.
        loadgen: Locust's wheels.
        """
        files = [w for build in (app, loadgen) if build is not None for w in build.wheels]
        return cls(app, loadgen, MappingProxyType({w: w.read_bytes() for w in files}))

    def content(self, wheel: Path) -> bytes:
        """Return a wheel file's bytes (read when the inputs were made).

        wheel: one of the builds' wheel files.
        """
        return self.wheels[wheel]


def needed(hosts: Iterable[Any], roles: Iterable[str] | None = None) -> frozenset[str]:
    """Return the roles among app and loadgen that some targeted host applies: the ones whose
    inputs must be made.

    hosts: the targeted inventory Hosts.
    roles: only these roles are applied (None or empty: every role each host has).
    """
    asked = set(roles or ())
    return frozenset(r for h in hosts for r in h.roles if r in ("app", "loadgen") and (not asked or r in asked))


def inputs_for(inventory: Any, hosts: Iterable[Any], roles: Iterable[str] | None = None) -> StackInputs:
    """Make the run's inputs for the targeted hosts, and only what they need: the app's wheels
    (built with pip when the release is not cached yet) when a host applies the app role, Locust's
    wheels (downloaded when not cached) when one applies loadgen. A dry-run makes the same (the
    wheel files' content is compared by hash); hosts with neither role (lb-01 alone) make nothing.

    inventory: the Inventory (it may name the app's sources).
    hosts: the targeted Hosts (e.g. inventory.select(pattern)).
    roles: only these roles are applied (None or empty: every role each host has).
    """
    need = needed(hosts, roles)
    app = build_app(inventory) if "app" in need else None
    loadgen = build_loadgen() if "loadgen" in need else None
    return StackInputs.of(app, loadgen)
