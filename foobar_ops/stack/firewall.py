"""The firewall of every host, derived from the topology: which ports each host opens, to whom
(openings), the nftables table that says so, the commit-confirm around its load (the phase's guard),
and the check that proves the rules from the hosts themselves.

    stack:
      firewall:
        admin_sources: [10.77.0.1]     # SSH (and ping) only from these addresses or networks
        confirm_timeout: 30            # seconds before a host puts its old rules back on its own
        allow:                         # openings of your own, beyond the topology's
          - {port: 3306, from: [10.77.0.1], to: [web-01]}

Every host gets the firewall when stack.firewall is set (a host leaves it out with vars.firewall:
false). Input is dropped unless an opening lets it in; what a host sends out is not filtered.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..core.engine import Phase
from ..core.errors import FirewallError, FoobarOpsError
from ..core.result import Result
from ..core.run import Run
from ..core.shell import cmd
from ..core.states.nft import confirm_script, rollback_script
from .monitoring import PORTS as MON_PORTS
from .monitoring import settings as monitoring_settings
from .topology import (
    TopologyError,
    app_hosts,
    db_hosts,
    host_value,
    https_port,
    lb_hosts,
    ports,
    stack_vars,
)

TABLE = "inet foobar"
PERSIST = "/etc/foobar-ops/firewall.nft"
BOOT_UNIT = "foobar-firewall.service"
TIMER = "foobar-firewall-rollback"
DEFAULT_CONFIRM_TIMEOUT = 30.0


@dataclass(frozen=True)
class Opening:
    """One way into a host.

    proto: tcp, or vrrp (IP protocol 112).
    port: the TCP port (None for vrrp).
    sources: the addresses or networks let in; None: anywhere.
    why: what it is for (the rule's comment).
    """

    proto: str
    port: int | None
    sources: tuple[str, ...] | None
    why: str

    def admits(self, address: str) -> bool:
        """Whether a packet from `address` passes this opening."""
        if self.sources is None:
            return True
        ip = ipaddress.ip_address(address)
        return any(ip in ipaddress.ip_network(s, strict=False) for s in self.sources)


@dataclass(frozen=True)
class Settings:
    """stack.firewall, checked.

    admin_sources: who may reach SSH (addresses or networks, as written).
    confirm_timeout: seconds before a host puts its old rules back on its own.
    allow: extra openings: (port, sources, host names or groups they open on).
    """

    admin_sources: tuple[str, ...]
    confirm_timeout: float
    allow: tuple[tuple[int, tuple[str, ...], tuple[str, ...]], ...]


def settings(inventory: Any) -> Settings | None:
    """Return stack.firewall checked, or None when the inventory has no firewall; a TopologyError
    names a missing or wrong value (an empty admin_sources would lock every admin out)."""
    raw = stack_vars(inventory).get("firewall")
    if raw is None:
        return None
    where = f"{inventory.path}: key 'stack.firewall"
    sources = tuple(str(s) for s in raw.get("admin_sources") or ())
    if not sources:
        raise TopologyError(f"{where}.admin_sources' must list the addresses or networks SSH is allowed from")
    allow = []
    for n, item in enumerate(raw.get("allow") or ()):
        targets = tuple(str(t) for t in item["to"])
        for target in targets:
            if target not in inventory.hosts and target not in inventory.groups:
                raise TopologyError(
                    f"{where}.allow[{n}].to': {target!r} is neither a host nor a group of the inventory"
                )
        allow.append((int(item["port"]), tuple(str(s) for s in item["from"]), targets))
    timeout = raw.get("confirm_timeout")
    return Settings(sources, DEFAULT_CONFIRM_TIMEOUT if timeout is None else float(timeout), tuple(allow))


def enabled(host: Any, inventory: Any) -> bool:
    """Whether a host gets the firewall: the inventory has stack.firewall and the host does not say
    vars.firewall: false."""
    return settings(inventory) is not None and bool(host_value(host, "firewall", True))


def _ip(host: Any, inventory: Any) -> str:
    try:
        if "%" in str(host.address):  # an IPv6 zone is no address a rule can name
            raise ValueError(host.address)
        return str(ipaddress.ip_address(host.address))
    except ValueError:
        raise TopologyError(
            f"{inventory.path}: host '{host.name}': the firewall needs its address as an IP address, "
            f"not {host.address!r}"
        ) from None


def _addresses(hosts: list[Any], inventory: Any, but: Any = None) -> tuple[str, ...]:
    return tuple(_ip(h, inventory) for h in hosts if but is None or h.name != but.name)


def openings(host: Any, inventory: Any) -> list[Opening]:
    """Return the ways into a host that its roles and the topology call for (SSH from the admin
    sources on every host, the site on load balancers, VRRP from the peers, HTTP from the load
    balancers on web servers, MariaDB from the app hosts and the other database nodes; with
    monitoring, the exporters from the monitoring host and Prometheus and Alertmanager from the
    admin sources; with a scheduler host (stack.scheduler), SSH from it on the others: it runs the
    scheduled runbooks) and the inventory's own `allow` entries for it."""
    found = settings(inventory)
    if found is None:
        return []
    out = [Opening("tcp", int(host.port), found.admin_sources, "ssh from the admin sources")]
    named = stack_vars(inventory).get("scheduler")
    if named and named in inventory.hosts and named != host.name:
        out.append(Opening("tcp", int(host.port), (_ip(inventory.hosts[named], inventory),), "ssh from the scheduler"))
    roles = set(host.roles)
    http = ports(inventory)["http"]
    if "haproxy" in roles:
        out += [
            Opening("tcp", http, None, "the site over http"),
            Opening("tcp", https_port(inventory), None, "the site over https"),
        ]
    if "keepalived" in roles:
        peers = [h for h in lb_hosts(inventory) if "keepalived" in h.roles]
        sources = _addresses(peers, inventory, but=host)
        if sources:
            out.append(Opening("vrrp", None, sources, "vrrp from the peer load balancers"))
    if "nginx" in roles:
        lbs = _addresses(lb_hosts(inventory), inventory)
        if lbs:
            out.append(Opening("tcp", http, lbs, "http from the load balancers"))
    if "mysql" in roles:
        clients = sorted(set(_addresses(app_hosts(inventory), inventory) + _addresses(db_hosts(inventory), inventory)))
        clients = [a for a in clients if a != _ip(host, inventory)]
        if clients:
            out.append(
                Opening("tcp", ports(inventory)["mysql"], tuple(clients), "mariadb from the app and database hosts")
            )
    watch = monitoring_settings(inventory)
    if watch is not None:
        # the exporters answer the monitoring host only; Prometheus and Alertmanager the admins only
        scraper = (_ip(watch.host, inventory),)
        out.append(Opening("tcp", MON_PORTS["node"], scraper, "the node exporter to the monitoring host"))
        if "mysql" in roles:
            out.append(Opening("tcp", MON_PORTS["mysqld"], scraper, "the mysql exporter to the monitoring host"))
        if "haproxy" in roles:
            out.append(Opening("tcp", MON_PORTS["haproxy"], scraper, "haproxy's metrics to the monitoring host"))
        if host.name == watch.host.name:
            out += [
                Opening("tcp", MON_PORTS["prometheus"], found.admin_sources, "prometheus from the admin sources"),
                Opening("tcp", MON_PORTS["alertmanager"], found.admin_sources, "alertmanager from the admin sources"),
            ]
    for port, sources, targets in found.allow:
        if host.name in targets or any(host.name in inventory.groups.get(t, ()) for t in targets):
            out.append(Opening("tcp", port, sources, "allowed in stack.firewall.allow"))
    return out


def _family(sources: tuple[str, ...]) -> tuple[list[str], list[str]]:
    v4 = [s for s in sources if ipaddress.ip_network(s, strict=False).version == 4]
    return v4, [s for s in sources if s not in v4]


def _rule(opening: Opening) -> list[str]:
    # VRRP by number: a minimal host has no /etc/protocols to name it by
    match = f"tcp dport {opening.port}" if opening.proto == "tcp" else "ip protocol 112"
    comment = f'comment "{opening.why}"'
    if opening.sources is None:
        return [f"{match} accept {comment}"]
    v4, v6 = _family(opening.sources)
    lines = [f"ip saddr {{ {', '.join(v4)} }} {match} accept {comment}"] if v4 else []
    if v6 and opening.proto == "tcp":
        lines.append(f"ip6 saddr {{ {', '.join(v6)} }} {match} accept {comment}")
    return lines


def render(host: Any, inventory: Any) -> str:
    """Return the table a host loads (`table inet foobar { ... }`)."""
    found = settings(inventory)
    if found is None:
        raise TopologyError(f"{inventory.path}: stack.firewall is not set: there is no firewall to render")
    v4, v6 = _family(found.admin_sources)
    rules = [
        "ct state established,related accept",
        "ct state invalid drop",
        'iif "lo" accept',
        "icmp type { destination-unreachable, time-exceeded, parameter-problem } accept",
        "icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem, "
        "nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert } accept",
    ]
    if v4:
        rules.append(
            f'ip saddr {{ {", ".join(v4)} }} icmp type echo-request accept comment "ping from the admin sources"'
        )
    if v6:
        rules.append(
            f'ip6 saddr {{ {", ".join(v6)} }} icmpv6 type echo-request accept comment "ping from the admin sources"'
        )
    for opening in openings(host, inventory):
        rules += _rule(opening)
    body = "\n".join(f"\t\t{line}" for line in rules)
    return (
        f"table {TABLE} {{\n"
        '\tcomment "foobar-ops firewall, replaced whole by every change"\n'
        "\tchain input {\n"
        "\t\ttype filter hook input priority filter; policy drop;\n"
        f"{body}\n"
        "\t}\n"
        "}\n"
    )


# ---- the commit-confirm: the firewall phase's guard ----------------------------------------------


def _result(host: Any, ok: bool, comment: str, started: float) -> Result:
    return Result.check(
        host.name, "firewall:confirm", "a new SSH connection gets in", "nft.confirm", ok, comment, started
    )


def _new_connection(host: Any, inventory: Any) -> str | None:
    """Open a new SSH connection to the host and run a command through sudo on it; None when it
    worked, else why not."""
    from ..core.ssh import Remote  # paramiko: imported by what connects

    try:
        with Remote(host, inventory) as fresh:
            got = fresh.run("true", sudo=host.user != "root", timeout=float(host.ssh.connect_timeout) * 2)
    except FoobarOpsError as err:
        return str(err)
    return None if got.ok else (got.error or f"exit {got.exit_code}")


@contextmanager
def confirmed(run: Run, host: Any, emit: Any) -> Iterator[None]:
    """Around a host's firewall change: after it, a new SSH connection must get in; then the rules
    are kept (persisted, the rollback disarmed), else they are put back at once over the run's own
    connection (the armed timer does it within confirm_timeout when that connection is gone too)
    and the host fails, saying the rules would have locked it out."""
    yield
    started = time.perf_counter()
    found = settings(run.inventory)
    timeout = found.confirm_timeout if found else DEFAULT_CONFIRM_TIMEOUT
    sudo = host.user != "root"
    own = run.remote(host)
    why = _new_connection(host, run.inventory)
    if why is None:
        out = own.run(cmd("sh", "-c", confirm_script(TABLE, PERSIST, BOOT_UNIT, TIMER)), sudo=sudo)
        said = (out.stdout.strip().splitlines() or [""])[-1] if out.ok else ""
        if said in ("confirmed", "nothing"):
            word = "kept for boot" if said == "confirmed" else "nothing was loaded"
            emit(_result(host, True, f"a new SSH connection got in: {word}", started))
            return
        text = (
            f"the host put its old rules back before the change was confirmed (is confirm_timeout {timeout:g} s "
            "too short?)"
            if said == "late"
            else f"the confirm failed: {out.error or out.stderr.strip()[-300:]}"
        )
        emit(_result(host, False, text, started))
        raise FirewallError(f"{host.name}: {text}")
    try:
        back = own.run(cmd("sh", "-c", rollback_script(TABLE, TIMER)), sudo=sudo)
        undone = (
            "its old rules were put back at once"
            if back.ok
            else f"the host puts its old rules back within {timeout:g} s"
        )
    except FoobarOpsError:
        undone = f"the host puts its old rules back within {timeout:g} s"
    text = f"the new rules would have locked foobar-ops out (a new SSH connection failed: {why}); {undone}"
    emit(_result(host, False, text, started))
    raise FirewallError(f"{host.name}: {text}")


def firewall_phase(name: str, states_for: Any) -> Phase:
    """Return the phase that changes the firewalls one host at a time, each confirmed by a new SSH
    connection before the next (the first host whose rules would lock us out stops the phase)."""
    return Phase(name, states_for, serial=True, guard=confirmed)
