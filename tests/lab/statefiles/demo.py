"""A small stack of every kind of state, for the engine's lab tests (applied to lb-01).

Host vars used: demo_balance (HAProxy balance algorithm), demo_port, demo_motd.
The inventory secret `demo_token` is written into a file to prove it is masked everywhere else.
"""

from foobar_ops import states as s

HAPROXY_CFG = """\
# managed by foobar_ops (engine demo)
global
    stats socket /run/haproxy/demo.sock mode 600 level admin
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend demo
    bind 127.0.0.1:{{ port }}
    default_backend demo
backend demo
    balance {{ balance }}
    server s1 127.0.0.1:9
"""


def states(host, inventory):
    v = host.vars
    return [
        s.group.present("demo", system=True),
        s.user.present("demo", system=True, groups=["demo"], require=["group.present:demo"]),
        s.file.directory("/srv/demo", owner="demo", group="demo", mode="0750", require=["user.present:demo"]),
        s.file.managed(
            "/srv/demo/token.conf",
            template="token = {{ token }}\n",
            inline=True,
            context={"token": inventory.secret("demo_token")},
            owner="demo",
            group="demo",
            mode="0600",
            require=["file.directory:/srv/demo"],
        ),
        s.file.symlink("/srv/demo/current", "/srv/demo/token.conf", require=["file.managed:/srv/demo/token.conf"]),
        s.file.line("/etc/motd", v.get("demo_motd", "foobar demo host")),
        s.pkg.installed("haproxy"),
        s.file.managed(
            "/etc/haproxy/haproxy.cfg",
            template=HAPROXY_CFG,
            inline=True,
            context={"port": v.get("demo_port", 8081), "balance": v.get("demo_balance", "roundrobin")},
            validate="haproxy -c -f {}",
            require=["pkg.installed:haproxy"],
        ),
        s.service.running("haproxy", watch=["file.managed:/etc/haproxy/haproxy.cfg"]),
        s.cmd.run("date +%s > /srv/demo/stamp", creates="/srv/demo/stamp", require=["file.directory:/srv/demo"]),
    ]
