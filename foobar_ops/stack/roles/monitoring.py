"""Role monitoring: Prometheus, Alertmanager and the blackbox exporter (Debian's packages) on the
monitoring host, configured from the inventory (see stack/monitoring.py). Each file is checked by
its own tool before it replaces the live one (promtool check rules, promtool check config, amtool
check-config, the blackbox exporter's --config.check); Prometheus and Alertmanager reload on a
change, and restart only when their command line changes. Prometheus and Alertmanager listen on
the host's address (the firewall opens them to the admin sources); the blackbox exporter only on
loopback, for Prometheus."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...core import states as s
from ...core.states import State
from .. import monitoring as mon
from ..topology import site_ca
from .base import Role
from .inputs import StackInputs

DEFAULTS = {
    "prometheus": "/etc/default/prometheus",
    "alertmanager": "/etc/default/prometheus-alertmanager",
    "blackbox": "/etc/default/prometheus-blackbox-exporter",
}


def _defaults(what: str, args: list[str]) -> str:
    return f'# {what}: managed by foobar_ops (role monitoring); edits here are overwritten.\nARGS="{" ".join(args)}"\n'


def states(host: Any, inventory: Any, inputs: StackInputs | None = None) -> list[State[Any]]:
    """Return the monitoring role's states for the monitoring host."""
    found = mon.settings(inventory)
    assert found is not None  # the inventory has the monitoring role, so stack.monitoring is set
    ports = mon.PORTS
    out: list[State[Any]] = [
        s.pkg.installed(
            names=["prometheus", "prometheus-alertmanager", "prometheus-blackbox-exporter"], id="monitoring:packages"
        ),
    ]
    ca = site_ca(inventory)
    after_ca: list[str] = []
    if ca:
        try:
            pem = Path(ca).read_bytes()
        except OSError as err:
            raise mon.TopologyError(f"{inventory.path}: stack.tls.ca {ca}: cannot read it: {err.strerror}") from None
        out.append(
            s.file.managed(
                mon.SITE_CA, content=pem, mode="0644", require=["monitoring:packages"], id="monitoring:site-ca"
            )
        )
        after_ca = ["monitoring:site-ca"]
    out += [
        s.file.managed(
            mon.BLACKBOX_YML,
            content=mon.blackbox_config(inventory),
            validate="prometheus-blackbox-exporter --config.check --config.file={}",
            require=["monitoring:packages", *after_ca],
            id="monitoring:blackbox-config",
        ),
        s.file.managed(
            DEFAULTS["blackbox"],
            content=_defaults(
                "the blackbox exporter",
                [f"--config.file={mon.BLACKBOX_YML}", f"--web.listen-address=127.0.0.1:{ports['blackbox']}"],
            ),
            require=["monitoring:packages"],
            id="monitoring:blackbox-args",
        ),
        s.service.running(
            "prometheus-blackbox-exporter",
            reload=False,
            watch=["monitoring:blackbox-config", "monitoring:blackbox-args"],
            id="monitoring:blackbox-service",
        ),
        s.file.managed(
            mon.ALERTMANAGER_YML,
            content=mon.alertmanager_config(inventory),
            validate="amtool check-config {}",
            sensitive=mon.receivers_sensitive(inventory),
            group="prometheus",
            mode="0640",
            require=["monitoring:packages"],
            id="monitoring:alertmanager-config",
        ),
        s.file.managed(
            DEFAULTS["alertmanager"],
            content=_defaults(
                "Alertmanager",
                [
                    f"--config.file={mon.ALERTMANAGER_YML}",
                    f"--web.listen-address={host.address}:{ports['alertmanager']}",
                    # one Alertmanager: no cluster port
                    "--cluster.listen-address=",
                ],
            ),
            require=["monitoring:packages"],
            id="monitoring:alertmanager-args",
        ),
        s.service.running(
            "prometheus-alertmanager",
            reload=False,
            watch=["monitoring:alertmanager-args"],
            id="monitoring:alertmanager-args-restart",
        ),
        s.service.running(
            "prometheus-alertmanager", watch=["monitoring:alertmanager-config"], id="monitoring:alertmanager-service"
        ),
        s.file.managed(
            mon.RULES_YML,
            content=mon.rules_file(inventory),
            validate="promtool check rules {}",
            require=["monitoring:packages"],
            id="monitoring:rules",
        ),
        s.file.managed(
            mon.PROMETHEUS_YML,
            content=mon.prometheus_config(inventory),
            validate="promtool check config {}",
            require=["monitoring:rules"],
            id="monitoring:prometheus-config",
        ),
        s.file.managed(
            DEFAULTS["prometheus"],
            content=_defaults(
                "Prometheus",
                [
                    f"--config.file={mon.PROMETHEUS_YML}",
                    f"--web.listen-address={host.address}:{ports['prometheus']}",
                    f"--storage.tsdb.retention.time={found.retention}",
                ],
            ),
            require=["monitoring:packages"],
            id="monitoring:prometheus-args",
        ),
        s.service.running(
            "prometheus", reload=False, watch=["monitoring:prometheus-args"], id="monitoring:prometheus-args-restart"
        ),
        s.service.running(
            "prometheus", watch=["monitoring:prometheus-config", "monitoring:rules"], id="monitoring:prometheus-service"
        ),
    ]
    return out


ROLE = Role(
    "monitoring", "monitoring", states, "Prometheus, Alertmanager and the blackbox exporter, from the inventory"
)
