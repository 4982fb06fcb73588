"""The anchor's side of the benchmark: a pyinfra 3 deploy with the ops of scripts/bench_states.py.

Run by scripts/bench_anchor.py with pyinfra's own interpreter (`pyinfra -y INVENTORY THIS_FILE`), never
imported by the project. Each op mirrors one foobar_ops state, with the same owner, group, mode and
bytes, so that a host either tool has applied is a no-op for the other. The text constants are
read from bench_states.py's source (not imported: foobar_ops is not installed in pyinfra's venv).
"""

import ast
from io import StringIO
from pathlib import Path

from pyinfra import host
from pyinfra.facts.files import File
from pyinfra.operations import apt, files, server, systemd


def _constants() -> dict:
    """Return the module-level string constants of bench_states.py, next to this file."""
    tree = ast.parse((Path(__file__).resolve().parent / "bench_states.py").read_text())
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out[target.id] = node.value.value
    return out


C = _constants()
ROOT = C["ROOT"]
CONF = f"{ROOT}/conf.ini"

server.group(name="group fobench", group="fobench", system=True)
server.user(
    name="user fobench",
    user="fobench",
    group="fobench",
    system=True,
    home="/nonexistent",
    shell="/usr/sbin/nologin",
    ensure_home=False,  # a system user's home does not exist (useradd --system, as foobar_ops does)
)
files.directory(name=ROOT, path=ROOT, user="fobench", group="fobench", mode="0755")
files.directory(name=f"{ROOT}/data", path=f"{ROOT}/data", user="fobench", group="fobench", mode="0750")
files.put(
    name=f"{ROOT}/README",
    src=StringIO(C["README"]),
    dest=f"{ROOT}/README",
    user="root",
    group="root",
    mode="0644",
    create_remote_dir=False,
)
files.template(
    name=f"{ROOT}/host.conf",
    src=StringIO(C["HOST_CONF"]),
    dest=f"{ROOT}/host.conf",
    user="root",
    group="fobench",
    mode="0640",
    create_remote_dir=False,
    # the template's own variables (pyinfra also passes host, state and inventory)
    hostname=host.name,
    address=host.data.ssh_hostname,
    motto=host.data.get("fobench_motto", C["MOTTO"]),
)
files.link(name=f"{ROOT}/current", path=f"{ROOT}/current", target=f"{ROOT}/host.conf", create_remote_dir=False)
# foobar_ops' `creates=` guard: the fact is read when this file runs, so on a host that has the
# file already the op is not added at all (pyinfra's way; the fact still costs its command).
if not host.get_fact(File, path=CONF):
    server.shell(name="create conf.ini", commands=[f"printf '%s\\n' '{C['INI_HEAD']}' > {CONF}"])
files.line(name=f"{CONF}: {C['INI_LINE']}", path=CONF, line=f"^{C['INI_LINE']}$", ensure_newline=True)
apt.packages(name="curl", packages=["curl"])
apt.packages(name="procps", packages=["procps"])
systemd.service(name="ssh", service="ssh.service", running=True, enabled=True)
files.put(
    name=f"{ROOT}/data/ready",
    src=StringIO(C["READY"]),
    dest=f"{ROOT}/data/ready",
    user="fobench",
    group="fobench",
    mode="0640",
    create_remote_dir=False,
)
