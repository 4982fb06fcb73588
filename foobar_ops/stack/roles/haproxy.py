"""Role haproxy: the load balancer for foobar.com (round robin over the web hosts)."""

from __future__ import annotations

from typing import Any

from ...core import states as s
from ...core.states import State
from ..topology import STATS_SOCKET, domain, host_value, ports, web_hosts, web_weight
from .base import Role, template
from .inputs import StackInputs

CFG = "/etc/haproxy/haproxy.cfg"
DROP_IN = "/etc/systemd/system/haproxy.service.d/foobar-server-state.conf"
SERVER_STATE = "/var/lib/haproxy/server-state"


def context(host: Any, inventory: Any) -> dict[str, Any]:
    """Return the template variables of haproxy.cfg for a host."""
    p = ports(inventory)
    return {
        "domain": domain(inventory),
        "http_port": p["http"],
        "stats_socket": STATS_SOCKET,
        "server_state": SERVER_STATE,
        "servers": [
            {"name": h.name, "address": h.address, "port": p["http"], "weight": web_weight(h)}
            for h in web_hosts(inventory)
        ],
        "timeouts": {
            "connect": host_value(host, "haproxy_timeout_connect", "3s"),
            "client": host_value(host, "haproxy_timeout_client", "30s"),
            "server": host_value(host, "haproxy_timeout_server", "30s"),
            "check": host_value(host, "haproxy_timeout_check", "2s"),
        },
        "check_interval": host_value(host, "haproxy_check_interval", "1s"),
        "check_fall": host_value(host, "haproxy_check_fall", 2),
        "check_rise": host_value(host, "haproxy_check_rise", 2),
    }


def states(host: Any, inventory: Any, inputs: StackInputs | None = None) -> list[State[Any]]:
    """Return the haproxy role's states for a host."""
    return [
        s.pkg.installed(names=["haproxy", "socat"], id="haproxy:packages"),
        s.file.managed(
            CFG,
            template=template("haproxy.cfg.j2"),
            context=context(host, inventory),
            mode="0644",
            validate="haproxy -c -f {}",
            require=["haproxy:packages"],
            id="haproxy:config",
        ),
        s.file.managed(
            DROP_IN,
            template=template("haproxy-reload.conf.j2"),
            context={"stats_socket": STATS_SOCKET, "server_state": SERVER_STATE},
            makedirs=True,
            require=["haproxy:packages"],
            id="haproxy:reload-keeps-state",
        ),
        s.cmd.run(
            "systemctl daemon-reload",
            onchanges=["haproxy:reload-keeps-state"],
            label="systemctl daemon-reload",
            id="haproxy:daemon-reload",
        ),
        s.service.running("haproxy", watch=["haproxy:config"], require=["haproxy:daemon-reload"], id="haproxy:service"),
    ]


ROLE = Role("haproxy", "lb", states, "the load balancer: round robin over the web hosts, health checks on /health")
