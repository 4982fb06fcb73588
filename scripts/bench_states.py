"""The benchmark's own states (13 per host), the same ops as scripts/bench_anchor_deploy.py.

They act only on things of their own: a group and a user `fobench`, the folder /srv/fobench and
what is in it, and things the lab image already has (curl, procps, a running sshd), so they can
be applied next to the stack without touching it. Files are byte-identical in both tools (same
content, owner, group and mode), so that after either tool has applied them the other finds
nothing to change.
Host var used: fobench_motto (the templated file's motto; both tools default to MOTTO).
"""

from foobar_ops import states as s

ROOT = "/srv/fobench"
MOTTO = "same ops, same hosts"
README = "Made by scripts/bench_anchor.py (foobar_ops against pyinfra); safe to remove.\n"
HOST_CONF = """\
# fobench: rendered from a template
host = {{ hostname }}
address = {{ address }}
motto = {{ motto }}
"""
INI_HEAD = "[fobench]"
INI_LINE = "answer = 42"
READY = "ok\n"


def states(host, inventory):
    return [
        s.group.present("fobench", system=True),
        s.user.present("fobench", system=True, require=["group.present:fobench"]),
        s.file.directory(ROOT, owner="fobench", group="fobench", mode="0755", require=["user.present:fobench"]),
        s.file.directory(
            f"{ROOT}/data", owner="fobench", group="fobench", mode="0750", require=[f"file.directory:{ROOT}"]
        ),
        s.file.managed(f"{ROOT}/README", README, mode="0644", require=[f"file.directory:{ROOT}"]),
        s.file.managed(
            f"{ROOT}/host.conf",
            template=HOST_CONF,
            inline=True,
            context={"hostname": host.name, "address": host.address, "motto": host.vars.get("fobench_motto", MOTTO)},
            owner="root",
            group="fobench",
            mode="0640",
            require=[f"file.directory:{ROOT}"],
        ),
        s.file.symlink(f"{ROOT}/current", f"{ROOT}/host.conf", require=[f"file.managed:{ROOT}/host.conf"]),
        s.cmd.run(
            f"printf '%s\\n' '{INI_HEAD}' > {ROOT}/conf.ini",
            creates=f"{ROOT}/conf.ini",
            label="create conf.ini",
            id="cmd.run:conf.ini",
            require=[f"file.directory:{ROOT}"],
        ),
        s.file.line(f"{ROOT}/conf.ini", INI_LINE, require=["cmd.run:conf.ini"]),
        s.pkg.installed("curl"),
        s.pkg.installed("procps"),
        s.service.running("ssh"),
        s.file.managed(
            f"{ROOT}/data/ready",
            READY,
            owner="fobench",
            group="fobench",
            mode="0640",
            require=[f"file.directory:{ROOT}/data"],
        ),
    ]
