"""Role exporters: what Prometheus scrapes on every host once the inventory has monitoring (it is
added to every host's roles, like the firewall): the node exporter everywhere (with its textfile
folder, where a load balancer writes its VRRP state), and on a database node the MySQL exporter,
logged in with its own account (made on the primary by the mysql role; the password is the secret
mysql_exporter_password). HAProxy's endpoint is part of haproxy.cfg (role haproxy)."""

from __future__ import annotations

from typing import Any

from ...core import states as s
from ...core.states import State
from ..monitoring import EXPORTER_USER, PORTS, TEXTFILE_DIR, exporter_password
from .base import Role, template
from .inputs import StackInputs

NODE_DEFAULTS = "/etc/default/prometheus-node-exporter"
MYSQLD_DEFAULTS = "/etc/default/prometheus-mysqld-exporter"
MYSQLD_CNF = "/etc/mysql/foobar-exporter.cnf"
MYSQLD_DROP_IN = "/etc/systemd/system/prometheus-mysqld-exporter.service.d/foobar.conf"
#: Filesystems the disk metrics leave out (the node exporter's own list, less overlay, plus tmpfs).
PSEUDO_FS = (
    "autofs", "binfmt_misc", "bpf", "cgroup2?", "configfs", "debugfs", "devpts", "devtmpfs", "fusectl", "hugetlbfs",
    "iso9660", "mqueue", "nsfs", "proc", "procfs", "pstore", "rpc_pipefs", "securityfs", "selinuxfs", "squashfs",
    "sysfs", "tracefs", "tmpfs", "ramfs",
)  # fmt: skip


def _defaults(what: str, args: list[str]) -> str:
    return f'# {what}: managed by foobar_ops (role exporters); edits here are overwritten.\nARGS="{" ".join(args)}"\n'


def states(host: Any, inventory: Any, inputs: StackInputs | None = None) -> list[State[Any]]:
    """Return the exporters' states for a host."""
    node_args = [
        f"--web.listen-address=:{PORTS['node']}",
        f"--collector.textfile.directory={TEXTFILE_DIR}",
        # a host's own filesystems: an overlay root (a container's) counts, a container engine's
        # layers and the kernel's pseudo filesystems do not
        "--collector.filesystem.mount-points-exclude=^/(dev|proc|run|sys|var/lib/docker/.+|var/lib/containers/.+)($|/)",
        f"--collector.filesystem.fs-types-exclude=^({'|'.join(PSEUDO_FS)})$",
    ]
    out: list[State[Any]] = [
        s.pkg.installed("prometheus-node-exporter", id="exporters:node-package"),
        s.file.directory(TEXTFILE_DIR, mode="0755", require=["exporters:node-package"], id="exporters:textfile-dir"),
        s.file.managed(
            NODE_DEFAULTS,
            content=_defaults("the node exporter", node_args),
            require=["exporters:node-package"],
            id="exporters:node-args",
        ),
        s.service.running(
            "prometheus-node-exporter", reload=False, watch=["exporters:node-args"], id="exporters:node-service"
        ),
    ]
    if "mysql" in host.roles:
        mysqld_args = [
            f"--web.listen-address=:{PORTS['mysqld']}",
            f"--config.my-cnf={MYSQLD_CNF}",
            "--collect.slave_status",
        ]
        out += [
            # before the package: the exporter the package starts (with no account yet) fails, and
            # systemd would give up on it after 5 quick restarts, refusing the restart below
            s.file.managed(
                MYSQLD_DROP_IN,
                content="# foobar_ops (role exporters): keep trying, every 5 s, until the account works\n"
                "[Unit]\nStartLimitIntervalSec=0\n\n[Service]\nRestartSec=5s\n",
                makedirs=True,
                id="exporters:mysqld-unit",
            ),
            s.cmd.run(
                "systemctl daemon-reload",
                onchanges=["exporters:mysqld-unit"],
                label="systemctl daemon-reload",
                id="exporters:mysqld-daemon-reload",
            ),
            s.pkg.installed(
                "prometheus-mysqld-exporter", require=["exporters:mysqld-daemon-reload"], id="exporters:mysqld-package"
            ),
            s.file.managed(
                MYSQLD_CNF,
                template=template("mysqld-exporter.cnf.j2"),
                context={"user": EXPORTER_USER, "password": exporter_password(inventory)},
                owner="root",
                group="prometheus",
                mode="0640",
                require=["exporters:mysqld-package"],
                id="exporters:mysqld-cnf",
            ),
            s.file.managed(
                MYSQLD_DEFAULTS,
                content=_defaults("the MySQL exporter", mysqld_args),
                require=["exporters:mysqld-package"],
                id="exporters:mysqld-args",
            ),
            s.service.running(
                "prometheus-mysqld-exporter",
                reload=False,
                watch=["exporters:mysqld-cnf", "exporters:mysqld-args"],
                id="exporters:mysqld-service",
            ),
        ]
    return out


ROLE = Role("exporters", "monitoring", states, "what Prometheus scrapes: the node exporter, the MySQL exporter")
