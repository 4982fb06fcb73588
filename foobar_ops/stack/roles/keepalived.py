"""Role keepalived: the floating address (stack.vip) over VRRP between the load balancers, held by
one at a time and moved when HAProxy or its host fails (see keepalived.conf.j2 for the policy)."""

from __future__ import annotations

from typing import Any

from ...core import states as s
from ...core.states import State
from ..monitoring import TEXTFILE_DIR
from ..monitoring import enabled as monitoring_enabled
from ..pair import HANDOVER, HAPROXY_DOWN, TRACK_DIR
from ..topology import TopologyError, host_value, lb_hosts, stack_vars, vip
from .base import Role, template
from .inputs import StackInputs

CFG = "/etc/keepalived/keepalived.conf"
HAPROXY_HOOK = "/etc/systemd/system/haproxy.service.d/foobar-keepalived.conf"
UNIT_DROP_IN = "/etc/systemd/system/keepalived.service.d/foobar.conf"
DEFAULT_ROUTER_ID = 51
#: With monitoring: the script that writes the VRRP state as metrics, and its timer.
VRRP_METRICS = "/usr/local/sbin/foobar-vrrp-metrics"
VRRP_UNIT = "/etc/systemd/system/foobar-vrrp-metrics"
VRRP_EVERY_S = 5


def priority(host: Any, inventory: Any) -> int:
    """Return a load balancer's VRRP priority: vars.keepalived_priority, else 150 for the first load
    balancer of the inventory, 100 for the second, 50 for the third (and 1 after): the first holds
    the VIP when both start together."""
    given = host_value(host, "keepalived_priority", None)
    if given is not None:
        return int(given)
    names = [h.name for h in lb_hosts(inventory)]
    index = names.index(host.name) if host.name in names else len(names)
    return max(1, 150 - 50 * index)


def context(host: Any, inventory: Any) -> dict[str, Any]:
    """Return the template variables of keepalived.conf for a host; a TopologyError names what the
    inventory lacks (stack.vip, vars.keepalived_interface, a peer)."""
    address = vip(inventory)
    if not address:
        raise TopologyError(f"{inventory.path}: host '{host.name}' has the keepalived role but stack.vip is not set")
    interface = host_value(host, "keepalived_interface", None)
    if interface is None:
        raise TopologyError(
            f"{inventory.path}: host '{host.name}': key 'vars.keepalived_interface' must name the interface "
            "that carries the floating address (e.g. eth0)"
        )
    peers = [h.address for h in lb_hosts(inventory) if h.name != host.name and "keepalived" in h.roles]
    if not peers:
        raise TopologyError(
            f"{inventory.path}: host '{host.name}' has the keepalived role but no other load balancer has it "
            "(VRRP needs a peer)"
        )
    return {
        "host": host.name,
        "vip": address,
        "interface": str(interface),
        "router_id": stack_vars(inventory).get("vrrp_router_id") or DEFAULT_ROUTER_ID,
        "priority": priority(host, inventory),
        "address": host.address,
        "peers": peers,
        "haproxy_down": HAPROXY_DOWN,
        "handover": HANDOVER,
        "track_dir": TRACK_DIR,
        "notify": VRRP_METRICS if monitoring_enabled(inventory) else None,
    }


def states(host: Any, inventory: Any, inputs: StackInputs | None = None) -> list[State[Any]]:
    """Return the keepalived role's states for a host."""
    ctx = context(host, inventory)
    return [*_metrics_states(ctx), *_states(ctx)]


def _metrics_states(ctx: dict[str, Any]) -> list[State[Any]]:
    """With monitoring: the VRRP state as node exporter metrics (foobar_vrrp_state,
    foobar_vip_held), written on every state change and every VRRP_EVERY_S seconds."""
    if not ctx["notify"]:
        return []
    mctx = {**ctx, "textfile_dir": TEXTFILE_DIR, "script": VRRP_METRICS, "every": f"{VRRP_EVERY_S}s"}
    return [
        s.file.managed(
            VRRP_METRICS, template=template("vrrp-metrics.sh.j2"), context=mctx, mode="0755", id="keepalived:metrics"
        ),
        *(
            s.file.managed(
                f"{VRRP_UNIT}.{kind}",
                template=template(f"vrrp-metrics.{kind}.j2"),
                context=mctx,
                id=f"keepalived:metrics-{kind}",
            )
            for kind in ("service", "timer")
        ),
        s.cmd.run(
            "systemctl daemon-reload",
            onchanges=["keepalived:metrics-service", "keepalived:metrics-timer"],
            label="systemctl daemon-reload",
            id="keepalived:metrics-daemon-reload",
        ),
        s.service.running(
            "foobar-vrrp-metrics.timer",
            reload=False,
            watch=["keepalived:metrics-timer"],
            require=["keepalived:metrics-daemon-reload", "keepalived:metrics"],
            id="keepalived:metrics-timer-active",
        ),
    ]


def _states(ctx: dict[str, Any]) -> list[State[Any]]:
    return [
        s.pkg.installed("keepalived", id="keepalived:package"),
        *(
            s.file.managed(path, template=template(name), context=ctx, makedirs=True, id=f"keepalived:{part}")
            for path, name, part in (
                (HAPROXY_HOOK, "keepalived-haproxy.conf.j2", "haproxy-hooks"),
                (UNIT_DROP_IN, "keepalived-unit.conf.j2", "unit"),
            )
        ),
        s.cmd.run(
            "systemctl daemon-reload",
            onchanges=["keepalived:haproxy-hooks", "keepalived:unit"],
            label="systemctl daemon-reload",
            id="keepalived:daemon-reload",
        ),
        s.file.managed(
            CFG,
            template=template("keepalived.conf.j2"),
            context=ctx,
            mode="0644",
            validate="keepalived -t -f {}",
            require=["keepalived:package"],
            id="keepalived:config",
        ),
        s.service.running(
            "keepalived",
            watch=["keepalived:config"],
            require=["keepalived:daemon-reload"],
            id="keepalived:service",
        ),
    ]


ROLE = Role(
    "keepalived", "lb", states, "the floating address: VRRP between the load balancers, HAProxy's state tracked"
)
