"""Role nginx: the foobar.com server block (static files from the current release, the rest
proxied to the app), validated with `nginx -t` in context before any reload."""

from __future__ import annotations

from typing import Any

from ...core import states as s
from ...core.states import State
from ..topology import APP_ROOT, NGINX_APP_IDLE_S, domain, lb_hosts, ports
from .base import Role, template
from .inputs import StackInputs

SITE = "/etc/nginx/sites-enabled/foobar.conf"
LOG_FORMAT = "/etc/nginx/conf.d/foobar-log.conf"


def states(host: Any, inventory: Any, inputs: StackInputs | None = None) -> list[State[Any]]:
    """Return the nginx role's states for a host."""
    p = ports(inventory)
    ctx = {
        "host": host.name,
        "domain": domain(inventory),
        "http_port": p["http"],
        "app_port": p["app"],
        "app_idle_s": NGINX_APP_IDLE_S,
        "app_root": APP_ROOT,
        "address": host.address,
        "lb_addresses": [lb.address for lb in lb_hosts(inventory)],
    }
    return [
        s.pkg.installed("nginx", id="nginx:package"),
        s.file.absent("/etc/nginx/sites-enabled/default", require=["nginx:package"], id="nginx:no-default"),
        s.file.managed(
            LOG_FORMAT,
            template=template("nginx-log.conf.j2"),
            context=ctx,
            validate="nginx -t",
            validate_in_context=True,
            require=["nginx:package"],
            id="nginx:log-format",
        ),
        s.file.managed(
            SITE,
            template=template("nginx-foobar.conf.j2"),
            context=ctx,
            validate="nginx -t",
            validate_in_context=True,
            require=["nginx:log-format"],
            id="nginx:site",
        ),
        s.service.running(
            "nginx",
            watch=["nginx:no-default", "nginx:log-format", "nginx:site"],
            reload_with=RELOAD,
            id="nginx:service",
        ),
    ]


#: nginx answers a reload signal before it has tried the new configuration, and keeps the old one
#: when it cannot apply it (e.g. a listen address it cannot bind while the old socket holds the
#: port): a reload took only when new worker processes appear. When none do, nginx is restarted
#: (its configuration was validated before it was installed), and the output says why.
RELOAD = """m=$(cat /run/nginx.pid 2>/dev/null); old=" $(pgrep -P "$m" | tr '\\n' ' ') "
systemctl reload nginx
i=0
while [ $i -lt 50 ]; do
    for p in $(pgrep -P "$m"); do case "$old" in *" $p "*) ;; *) exit 0;; esac; done
    i=$((i + 1)); sleep 0.1
done
echo "nginx kept its old configuration after the reload ($(tail -n 1 /var/log/nginx/error.log)): restarting it"
systemctl restart nginx"""


ROLE = Role("nginx", "web", states, "the foobar.com server block: static files, the rest proxied to the app")
