"""Role haproxy: the load balancer for foobar.com (round robin over the web hosts)."""

from __future__ import annotations

from typing import Any

from ...core import states as s
from ...core.errors import FoobarOpsError
from ...core.states import State
from ..monitoring import PORTS
from ..monitoring import enabled as monitoring_enabled
from ..topology import (
    STATS_SOCKET,
    TopologyError,
    domain,
    host_value,
    https_port,
    ports,
    site_ca,
    stack_vars,
    web_hosts,
    web_weight,
)
from .base import Role, template
from .inputs import StackInputs

CFG = "/etc/haproxy/haproxy.cfg"
CERTS = "/etc/haproxy/certs"
#: Mozilla's intermediate profile for HAProxy 2.6 and OpenSSL 3.0 (its generator's output)
CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ]
)
CIPHERSUITES = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
CURVES = "X25519:prime256v1:secp384r1"
HSTS_MAX_AGE = 63072000
DROP_IN = "/etc/systemd/system/haproxy.service.d/foobar-server-state.conf"
SERVER_STATE = "/var/lib/haproxy/server-state"


def cert_path(inventory: Any) -> str:
    """The PEM file HAProxy serves the site's certificate from (chain and key, mode 0600)."""
    return f"{CERTS}/{domain(inventory)}.pem"


def tls_secrets(inventory: Any) -> tuple[Any, Any] | None:
    """The site's certificate chain and key (the secrets tls_cert and tls_key), or None when the
    inventory has no stack.tls; a TopologyError names a missing one."""
    if stack_vars(inventory).get("tls") is None:
        return None
    found = []
    for name in ("tls_cert", "tls_key"):
        try:
            found.append(inventory.secret(name))
        except FoobarOpsError as err:
            raise TopologyError(f"{inventory.path}: stack.tls is set, so secrets.{name} must be too: {err}") from None
    return found[0], found[1]


def tls_context(inventory: Any) -> dict[str, Any] | None:
    """The template's TLS settings (None when the inventory has no stack.tls)."""
    tls = stack_vars(inventory).get("tls")
    if tls is None:
        return None
    hsts = f"max-age={HSTS_MAX_AGE}" + ("; includeSubDomains" if tls.get("hsts_include_subdomains") else "")
    return {
        "port": https_port(inventory),
        "crt": cert_path(inventory),
        "ciphers": CIPHERS,
        "ciphersuites": CIPHERSUITES,
        "curves": CURVES,
        "hsts": hsts,
    }


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
        "tls": tls_context(inventory),
        # HAProxy's own Prometheus endpoint, with monitoring: on every address, as the site is (both load
        # balancers keep one identical config); the firewall opens it to the monitoring host only
        "metrics": {"port": PORTS["haproxy"]} if monitoring_enabled(inventory) else None,
    }


def cert_states(inventory: Any, after: tuple[str, ...] = ()) -> list[State[Any]]:
    """The site's certificate on a load balancer (none without stack.tls), checked here first
    (certs.check_pair: a bad one is refused by name and reaches no host): the chain and the key in
    one file, HAProxy's way (0600, never shown in a diff), and the running HAProxy told to serve it
    through its runtime API (`set ssl cert`, `commit ssl cert`) whenever it serves another
    certificate from that file: no reload, no connection dropped, and a push that failed or was cut
    off is made by the next apply. `after`: what the push waits for (the service, in a full apply)."""
    from ..certs import check_pair, leaf_fingerprint, site_names
    from ..lb import push_script, serves_script

    tls = tls_secrets(inventory)
    if not tls:
        return []
    check_pair(tls[0], tls[1], site_names(inventory), site_ca(inventory))
    path = cert_path(inventory)
    return [
        s.file.directory(CERTS, mode="0700", require=["haproxy:packages"] if after else [], id="haproxy:certs-dir"),
        s.file.managed(
            path,
            template="{{ cert }}\n{{ key }}\n",
            inline=True,
            context={"cert": tls[0], "key": tls[1]},
            mode="0600",
            require=["haproxy:certs-dir"],
            id="haproxy:cert",
        ),
        s.cmd.run(
            push_script(path),
            unless=serves_script(path, leaf_fingerprint(tls[0])),
            require=["haproxy:cert", *after],
            label=f"serve {path} without a reload (set ssl cert, commit ssl cert)",
            id="haproxy:cert-live",
        ),
    ]


def states(host: Any, inventory: Any, inputs: StackInputs | None = None) -> list[State[Any]]:
    """Return the haproxy role's states for a host."""
    certs = cert_states(inventory, after=("haproxy:service",))
    live = certs[2:]
    certs = certs[:2]
    return [
        s.pkg.installed(names=["haproxy", "socat"], id="haproxy:packages"),
        *certs,
        s.file.managed(
            CFG,
            template=template("haproxy.cfg.j2"),
            context=context(host, inventory),
            mode="0644",
            validate="haproxy -c -f {}",
            require=["haproxy:packages", *(["haproxy:cert"] if certs else [])],
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
        *live,
    ]


ROLE = Role("haproxy", "lb", states, "the load balancer: round robin over the web hosts, health checks on /health")
