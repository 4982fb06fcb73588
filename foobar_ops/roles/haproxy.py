"""Role haproxy: the load balancer for foobar.com (round robin over the web hosts)."""
from __future__ import annotations

from .. import states as s
from .topology import domain, ports, web_hosts

CFG = "/etc/haproxy/haproxy.cfg"
STATS_SOCKET = "/run/haproxy/admin.sock"


def context(host, inventory) -> dict:
    """Return the template variables of haproxy.cfg for a host."""
    v = host.vars
    p = ports(inventory)
    return {
        "domain": domain(inventory), "http_port": p["http"], "stats_socket": STATS_SOCKET,
        "servers": [{"name": h.name, "address": h.address, "port": p["http"]} for h in web_hosts(inventory)],
        "timeouts": {"connect": v.get("haproxy_timeout_connect", "3s"),
                     "client": v.get("haproxy_timeout_client", "30s"),
                     "server": v.get("haproxy_timeout_server", "30s")},
        "check_interval": v.get("haproxy_check_interval", "1s"),
        "check_fall": v.get("haproxy_check_fall", 2), "check_rise": v.get("haproxy_check_rise", 2),
    }


def states(host, inventory) -> list:
    """Return the haproxy role's states for a host."""
    return [
        s.pkg.installed(names=["haproxy", "socat"], id="haproxy:packages"),
        s.file.managed(CFG, template="haproxy.cfg.j2", context=context(host, inventory), mode="0644",
                       validate="haproxy -c -f {}", require=["haproxy:packages"], id="haproxy:config"),
        s.service.running("haproxy", watch=["haproxy:config"], id="haproxy:service"),
    ]
