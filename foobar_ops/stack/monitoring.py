"""Monitoring: what Prometheus on the monitoring host scrapes, the alert rules written for this
stack, where Alertmanager sends alerts, and the blackbox probe of the site: all made from the
inventory (stack.monitoring and the hosts' roles), as the YAML each tool reads.

The inventory's `stack.monitoring` section turns it on; the host with the `monitoring` role runs
Prometheus, Alertmanager and the blackbox exporter; every host then gets the node exporter, the
database nodes the MySQL exporter, the load balancers HAProxy's own Prometheus endpoint and their
VRRP state as a metric (see roles/exporters.py, roles/haproxy.py, roles/keepalived.py). The
firewall opens the exporters' ports to the monitoring host only, and the monitoring host's ports to
the admin sources only.

    stack:
      monitoring:
        scrape_interval: 15s          # and evaluation_interval: how often rules are evaluated
        webhook: {address: 10.0.0.1, port: 9095}   # `foobar-ops alerts receive` listens here
        receivers:                    # Alertmanager's own receivers, as Alertmanager reads them
          - name: oncall
            severity: critical        # only critical alerts (default: every alert)
            email_configs: [{to: oncall@example.com}]
        alert_for: {ReplicationSQLThreadStopped: 30s}   # a rule's `for`, other than its default
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..core.errors import FoobarOpsError
from ..core.secrets import Secret
from .topology import (
    BACKEND,
    RECEIVER_KINDS,
    TopologyError,
    db_settings,
    domain,
    lb_hosts,
    site_ca,
    site_port,
    site_scheme,
    stack_vars,
    vip,
)

_FOR = re.compile(r"[0-9]{1,6}(ms|s|m|h|d)")
#: Where each part listens (the exporters' usual ports).
PORTS = {"node": 9100, "mysqld": 9104, "haproxy": 8405, "prometheus": 9090, "alertmanager": 9093, "blackbox": 9115}
DEFAULT_WEBHOOK_PORT = 9095
#: Receiver names foobar_ops's Alertmanager config uses itself.
RESERVED_RECEIVERS = ("none", "foobar-ops")
#: Files on the monitoring host.
PROMETHEUS_YML = "/etc/prometheus/prometheus.yml"
RULES_YML = "/etc/prometheus/foobar-rules.yml"
ALERTMANAGER_YML = "/etc/prometheus/alertmanager.yml"
BLACKBOX_YML = "/etc/prometheus/blackbox.yml"
SITE_CA = "/etc/prometheus/foobar-site-ca.pem"
#: The node exporter's textfile folder (Debian's default), where the VRRP state is written.
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"
#: The blackbox exporter's module that probes the site, and the instance label of that probe.
SITE_MODULE = "foobar_site"
#: The MySQL exporter's account on every database node (the password is secrets.mysql_exporter_password).
EXPORTER_USER = "foobar_exporter"
EXPORTER_GRANTS = {"*.*": ["PROCESS", "BINLOG MONITOR", "SLAVE MONITOR"]}

DEFAULTS: dict[str, Any] = {
    "scrape_interval": "15s",
    "evaluation_interval": "15s",
    "retention": "15d",
    "group_wait": "30s",
    "group_interval": "5m",
    "repeat_interval": "4h",
    "max_5xx_ratio": 0.05,
    "disk_min_free": 0.10,
}
#: Each alert's `for` unless stack.monitoring.alert_for says otherwise.
DEFAULT_FOR: dict[str, str] = {
    "TargetDown": "1m",
    "BackendServerDown": "30s",
    "NoBackendServerUp": "0s",
    "VIPHeldByNone": "10s",
    "VIPHeldByTwo": "10s",
    "DatabaseDown": "30s",
    "ReplicationIOThreadStopped": "30s",
    "ReplicationSQLThreadStopped": "30s",
    "ReplicationLagHigh": "1m",
    "ReplicaMetricsAbsent": "1m",
    "DiskNearlyFull": "5m",
    "SiteDown": "30s",
    "SiteCertificateExpiring": "0s",
    "High5xxRate": "1m",
    "ScheduledRunbookFailed": "0s",
}
RULE_NAMES = tuple(DEFAULT_FOR)
#: Days before a certificate's end at which its alert warns, and at which it is critical (the
#: same limits as `foobar-ops tls status`).
CERT_WARN_DAYS = 20
CERT_CRITICAL_DAYS = 3


@dataclass(frozen=True)
class Settings:
    """stack.monitoring, checked, with the defaults filled in.

    host: the monitoring host (the one with the monitoring role).
    webhook: (address, port) of foobar_ops's alert receiver, or None.
    receivers: Alertmanager receivers of the inventory, as written (without severity).
    severities: receiver name -> the one severity it gets (absent: every alert).
    alert_for: every rule's `for`.
    """

    host: Any
    scrape_interval: str
    evaluation_interval: str
    retention: str
    group_wait: str
    group_interval: str
    repeat_interval: str
    max_5xx_ratio: float
    disk_min_free: float
    webhook: tuple[str, int] | None
    receivers: tuple[dict[str, Any], ...] = ()
    severities: dict[str, str] = field(default_factory=dict)
    alert_for: dict[str, str] = field(default_factory=dict)


def monitoring_host(inventory: Any) -> Any | None:
    """Return the host with the monitoring role (None when there is none); two are refused."""
    found = [h for h in inventory.hosts.values() if "monitoring" in h.roles]
    if len(found) > 1:
        raise TopologyError(
            f"{inventory.path}: hosts {', '.join(h.name for h in found)} have the monitoring role; give it to one"
        )
    return found[0] if found else None


def settings(inventory: Any) -> Settings | None:
    """Return the checked monitoring settings, or None when the inventory has no stack.monitoring.
    A monitoring section without a monitoring host (or the reverse), an unknown rule name in
    alert_for, or two receivers of one name are TopologyErrors naming the key."""
    raw = stack_vars(inventory).get("monitoring")
    host = monitoring_host(inventory)
    if raw is None:
        if host is not None:
            raise TopologyError(
                f"{inventory.path}: host '{host.name}' has the monitoring role but the inventory has no "
                "stack.monitoring section (write `monitoring: {}` under stack for the defaults)"
            )
        return None
    if host is None:
        raise TopologyError(f"{inventory.path}: stack.monitoring is set but no host has the monitoring role")
    values = {k: raw.get(k) if raw.get(k) is not None else v for k, v in DEFAULTS.items()}
    wanted_for = dict(DEFAULT_FOR)
    for name, value in (raw.get("alert_for") or {}).items():
        if name not in DEFAULT_FOR:
            raise TopologyError(
                f"{inventory.path}: key 'stack.monitoring.alert_for.{name}': no alert of that name "
                f"(alerts: {', '.join(RULE_NAMES)})"
            )
        if not isinstance(value, str) or not _FOR.fullmatch(value):
            raise TopologyError(
                f"{inventory.path}: key 'stack.monitoring.alert_for.{name}': must be a time such as 0s, 30s "
                f"or 5m, not {value!r}"
            )
        wanted_for[name] = value
    hook = raw.get("webhook")
    webhook = (str(hook["address"]), int(hook.get("port") or DEFAULT_WEBHOOK_PORT)) if hook else None
    receivers: list[dict[str, Any]] = []
    severities: dict[str, str] = {}
    for item in raw.get("receivers") or ():
        name = str(item["name"])
        if name in RESERVED_RECEIVERS or name in severities or any(r["name"] == name for r in receivers):
            raise TopologyError(
                f"{inventory.path}: key 'stack.monitoring.receivers': the name {name!r} is used twice "
                f"(or is one of foobar_ops's own: {', '.join(RESERVED_RECEIVERS)})"
            )
        if not any(k in item for k in RECEIVER_KINDS):
            raise TopologyError(
                f"{inventory.path}: key 'stack.monitoring.receivers': receiver {name!r} names no way to send "
                f"(one of {', '.join(RECEIVER_KINDS)})"
            )
        if item.get("severity"):
            severities[name] = str(item["severity"])
        receivers.append({k: v for k, v in item.items() if k != "severity"})
    return Settings(
        host=host,
        webhook=webhook,
        receivers=tuple(receivers),
        severities=severities,
        alert_for=wanted_for,
        **values,
    )


def exporter_password(inventory: Any) -> Any:
    """Return the MySQL exporter's password (the secret mysql_exporter_password); a TopologyError
    names it when the inventory lacks it."""
    try:
        return inventory.secret("mysql_exporter_password")
    except FoobarOpsError as err:
        raise TopologyError(
            f"{inventory.path}: with monitoring, the MySQL exporter's password must be a secret "
            f"(secrets.mysql_exporter_password): {err}"
        ) from None


def enabled(inventory: Any) -> bool:
    """Whether the inventory has monitoring (stack.monitoring and a monitoring host)."""
    return settings(inventory) is not None


def prometheus_url(inventory: Any) -> str:
    """Return the base URL of Prometheus's HTTP API on the monitoring host."""
    found = settings(inventory)
    if found is None:
        raise TopologyError(f"{inventory.path}: the inventory has no monitoring (stack.monitoring)")
    return f"http://{found.host.address}:{PORTS['prometheus']}"


def alertmanager_url(inventory: Any) -> str:
    """Return the base URL of Alertmanager's HTTP API on the monitoring host."""
    return prometheus_url(inventory).rsplit(":", 1)[0] + f":{PORTS['alertmanager']}"


def scrape_jobs(inventory: Any) -> dict[str, list[tuple[str, str]]]:
    """Return each scrape job's targets as (instance, address:port), from the hosts' roles: the
    node exporter on every host, the MySQL exporter on the database nodes, HAProxy's endpoint on
    the load balancers. The instance label is the host's inventory name."""
    hosts = list(inventory.hosts.values())
    return {
        "node": [(h.name, f"{h.address}:{PORTS['node']}") for h in hosts],
        "mysqld": [(h.name, f"{h.address}:{PORTS['mysqld']}") for h in hosts if "mysql" in h.roles],
        "haproxy": [(h.name, f"{h.address}:{PORTS['haproxy']}") for h in hosts if "haproxy" in h.roles],
    }


def site_target(inventory: Any) -> str:
    """Return the URL the blackbox exporter probes: the site through the floating address (or the
    first load balancer when there is none), over https when the stack has it."""
    address = vip(inventory) or (lb_hosts(inventory)[0].address if lb_hosts(inventory) else None)
    if address is None:
        raise TopologyError(f"{inventory.path}: monitoring probes the site, but there is no vip nor load balancer")
    return f"{site_scheme(inventory)}://{address}:{site_port(inventory)}/health"


def _dump(doc: dict[str, Any], header: str) -> str:
    return header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=120)


HEADER = "# {what}: made by foobar_ops (role monitoring) from the inventory; edits here are overwritten.\n"


def prometheus_config(inventory: Any) -> str:
    """Return prometheus.yml for the inventory."""
    found = settings(inventory)
    assert found is not None
    host = found.host
    local = "127.0.0.1"
    jobs: list[dict[str, Any]] = [
        {
            "job_name": job,
            "static_configs": [{"targets": [target], "labels": {"instance": name}} for name, target in targets],
        }
        for job, targets in scrape_jobs(inventory).items()
        if targets
    ]
    jobs += [
        {
            "job_name": "prometheus",
            "static_configs": [
                {"targets": [f"{host.address}:{PORTS['prometheus']}"], "labels": {"instance": host.name}}
            ],
        },
        {
            "job_name": "alertmanager",
            "static_configs": [
                {"targets": [f"{host.address}:{PORTS['alertmanager']}"], "labels": {"instance": host.name}}
            ],
        },
        {
            "job_name": "site",
            "metrics_path": "/probe",
            "params": {"module": [SITE_MODULE]},
            "static_configs": [{"targets": [site_target(inventory)], "labels": {"instance": domain(inventory)}}],
            "relabel_configs": [
                {"source_labels": ["__address__"], "target_label": "__param_target"},
                {"target_label": "__address__", "replacement": f"{local}:{PORTS['blackbox']}"},
            ],
        },
    ]
    doc = {
        "global": {
            "scrape_interval": found.scrape_interval,
            "evaluation_interval": found.evaluation_interval,
            "external_labels": {"stack": domain(inventory)},
        },
        "rule_files": [RULES_YML],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"{host.address}:{PORTS['alertmanager']}"]}]}]},
        "scrape_configs": jobs,
    }
    return _dump(doc, HEADER.format(what="Prometheus"))


def _rule(name: str, expr: str, severity: str, summary: str, wait: str) -> dict[str, Any]:
    out: dict[str, Any] = {"alert": name, "expr": expr}
    if wait not in ("0s", "0m", "0"):
        out["for"] = wait
    out["labels"] = {"severity": severity}
    out["annotations"] = {"summary": summary}
    return out


def rules(inventory: Any | None = None, alert_for: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Return the alert rules written for this stack (see RULE_NAMES), with the inventory's limits
    (stack.database.max_lag_s, stack.monitoring.max_5xx_ratio, disk_min_free) and `for` times.

    inventory: the Inventory (None: the defaults, as `promtool test rules` tests them).
    alert_for: every rule's `for` (default: the inventory's, else DEFAULT_FOR).
    """
    found = settings(inventory) if inventory is not None else None
    wait = dict(alert_for or (found.alert_for if found else DEFAULT_FOR))
    max_lag = db_settings(inventory)["max_lag_s"] if inventory is not None else 5.0
    ratio = found.max_5xx_ratio if found else DEFAULTS["max_5xx_ratio"]
    free = found.disk_min_free if found else DEFAULTS["disk_min_free"]
    lag = f"{max_lag:g}"
    server = f'proxy="{BACKEND}"'
    out = [
        _rule(
            "TargetDown",
            "up == 0",
            "warning",
            "{{ $labels.job }} on {{ $labels.instance }} does not answer Prometheus",
            wait["TargetDown"],
        ),
        _rule(
            "BackendServerDown",
            f'haproxy_server_status{{{server},state="DOWN"}} == 1',
            "warning",
            "{{ $labels.server }} is down in HAProxy on {{ $labels.instance }}",
            wait["BackendServerDown"],
        ),
        _rule(
            "NoBackendServerUp",
            f"haproxy_backend_active_servers{{{server}}} == 0",
            "critical",
            "no web server is up in HAProxy on {{ $labels.instance }}: the site answers 503",
            wait["NoBackendServerUp"],
        ),
        _rule(
            "DatabaseDown",
            'mysql_up == 0 or up{job="mysqld"} == 0',
            "critical",
            "MariaDB on {{ $labels.instance }} does not answer (or its host or exporter cannot be reached)",
            wait["DatabaseDown"],
        ),
        _rule(
            "ReplicationIOThreadStopped",
            "mysql_slave_status_slave_io_running == 0",
            "critical",
            "the replica {{ $labels.instance }} does not receive from its primary (IO thread stopped)",
            wait["ReplicationIOThreadStopped"],
        ),
        _rule(
            "ReplicationSQLThreadStopped",
            "mysql_slave_status_slave_sql_running == 0",
            "critical",
            "the replica {{ $labels.instance }} does not apply what it receives (SQL thread stopped)",
            wait["ReplicationSQLThreadStopped"],
        ),
        _rule(
            "ReplicationLagHigh",
            f"mysql_slave_status_seconds_behind_master > {lag}",
            "warning",
            f"the replica {{{{ $labels.instance }}}} is {{{{ $value }}}} s behind (limit {lag} s)",
            wait["ReplicationLagHigh"],
        ),
        _rule(
            "ReplicaMetricsAbsent",
            "count(mysql_up == 1) - 1 > (count(mysql_slave_status_slave_sql_running) or vector(0))",
            "warning",
            "a database node answers but reports no replica status (its exporter lacks SLAVE MONITOR?)",
            wait["ReplicaMetricsAbsent"],
        ),
        _rule(
            "DiskNearlyFull",
            'node_filesystem_avail_bytes{fstype!~"tmpfs|ramfs|squashfs"}'
            f' / node_filesystem_size_bytes{{fstype!~"tmpfs|ramfs|squashfs"}} < {free:g}',
            "warning",
            "{{ $labels.mountpoint }} on {{ $labels.instance }} has under " + f"{free * 100:g}% free",
            wait["DiskNearlyFull"],
        ),
        _rule(
            "SiteDown",
            'probe_success{job="site"} == 0',
            "critical",
            "the site {{ $labels.instance }} fails its probe through the floating address",
            wait["SiteDown"],
        ),
        _rule(
            "SiteCertificateExpiring",
            f'(probe_ssl_earliest_cert_expiry{{job="site"}} - time()) / 86400 < {CERT_WARN_DAYS}',
            "warning",
            "the certificate of {{ $labels.instance }} ends in {{ $value | humanize }} days",
            wait["SiteCertificateExpiring"],
        ),
        _rule(
            "SiteCertificateExpiring",
            f'(probe_ssl_earliest_cert_expiry{{job="site"}} - time()) / 86400 < {CERT_CRITICAL_DAYS}',
            "critical",
            "the certificate of {{ $labels.instance }} ends in {{ $value | humanize }} days",
            wait["SiteCertificateExpiring"],
        ),
        _rule(
            "High5xxRate",
            f'sum by (instance) (rate(haproxy_backend_http_responses_total{{{server},code="5xx"}}[1m]))'
            f" / sum by (instance) (rate(haproxy_backend_http_responses_total{{{server}}}[1m])) > {ratio:g}",
            "warning",
            "{{ $value | humanizePercentage }} of the answers through {{ $labels.instance }} are 5xx",
            wait["High5xxRate"],
        ),
        _rule(
            "ScheduledRunbookFailed",
            "foobar_runbook_schedule_failed == 1",
            "warning",
            "the scheduled runbook {{ $labels.runbook }} on {{ $labels.instance }} did not end ok "
            "({{ $labels.result }})",
            wait["ScheduledRunbookFailed"],
        ),
    ]
    # the floating address: only when the inventory has one, held by keepalived hosts (None: two)
    pair = (
        2
        if inventory is None
        else (len([h for h in lb_hosts(inventory) if "keepalived" in h.roles]) if vip(inventory) else 0)
    )
    if pair:
        out[3:3] = [
            _rule(
                "VIPHeldByNone",
                # counted only while every load balancer reports: one that cannot be scraped says
                # nothing about the address (TargetDown names it; SiteDown tells whether users see it)
                f"sum(foobar_vip_held) == 0 and on() count(foobar_vip_held) >= {pair}",
                "critical",
                "no load balancer holds the floating address",
                wait["VIPHeldByNone"],
            ),
            _rule(
                "VIPHeldByTwo",
                "sum(foobar_vip_held) > 1",
                "critical",
                "{{ $value }} load balancers hold the floating address at once (split brain)",
                wait["VIPHeldByTwo"],
            ),
        ]
    return out


def rules_file(inventory: Any | None = None, alert_for: dict[str, str] | None = None) -> str:
    """Return the rules file Prometheus loads (see rules)."""
    doc = {"groups": [{"name": "foobar", "rules": rules(inventory, alert_for)}]}
    return _dump(doc, HEADER.format(what="Alert rules"))


def alertmanager_config(inventory: Any) -> str:
    """Return alertmanager.yml: every alert to foobar_ops's journal webhook (when set, with its
    resolution) and to each receiver of the inventory (only its severity, when it names one)."""
    found = settings(inventory)
    assert found is not None
    receivers: list[dict[str, Any]] = [{"name": "none"}]
    routes: list[dict[str, Any]] = []
    if found.webhook is not None:
        address, port = found.webhook
        receivers.append(
            {
                "name": "foobar-ops",
                "webhook_configs": [{"url": f"http://{address}:{port}/alerts", "send_resolved": True}],
            }
        )
        routes.append({"receiver": "foobar-ops", "continue": True})
    for item in found.receivers:
        receivers.append(_revealed(item))
        route: dict[str, Any] = {"receiver": item["name"], "continue": True}
        if item["name"] in found.severities:
            route["matchers"] = [f'severity="{found.severities[item["name"]]}"']
        routes.append(route)
    doc = {
        "route": {
            "receiver": "none",
            "group_by": ["alertname", "instance"],
            "group_wait": found.group_wait,
            "group_interval": found.group_interval,
            "repeat_interval": found.repeat_interval,
            "routes": routes,
        },
        # a critical alert silences the warning of the same name on the same instance
        "inhibit_rules": [
            {
                "source_matchers": ['severity="critical"'],
                "target_matchers": ['severity="warning"'],
                "equal": ["alertname", "instance"],
            }
        ],
        "receivers": receivers,
    }
    return _dump(doc, HEADER.format(what="Alertmanager"))


def _revealed(value: Any) -> Any:
    """A receiver's config with its secret references (e.g. auth_password: env:SMTP_PW) as their
    values, for the file only (the file is never shown: see receivers_sensitive)."""
    if isinstance(value, Secret):
        return value.reveal()
    if isinstance(value, dict):
        return {k: _revealed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_revealed(v) for v in value]
    return value


def receivers_sensitive(inventory: Any) -> bool:
    """Whether alertmanager.yml may hold credentials (any receiver of the inventory: a chat URL is
    one), so that its content is never shown in a diff, the journal or a notebook."""
    found = settings(inventory)
    return bool(found and found.receivers)


def blackbox_config(inventory: Any) -> str:
    """Return blackbox.yml: the site's probe (its status, latency and certificate), with the site's
    name as Host and as the name the certificate must carry, trusting stack.tls.ca when set."""
    http: dict[str, Any] = {
        "method": "GET",
        "valid_status_codes": [200],
        "preferred_ip_protocol": "ip4",
        "headers": {"Host": domain(inventory)},
        "follow_redirects": False,
    }
    if site_scheme(inventory) == "https":
        http["fail_if_not_ssl"] = True
        tls: dict[str, Any] = {"server_name": domain(inventory)}
        if site_ca(inventory):
            tls["ca_file"] = SITE_CA
        http["tls_config"] = tls
    doc = {"modules": {SITE_MODULE: {"prober": "http", "timeout": "5s", "http": http}}}
    return _dump(doc, HEADER.format(what="Blackbox exporter"))
