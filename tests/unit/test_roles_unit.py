"""Roles without hosts: the real lab inventory (secrets from env vars instead of the lab's files),
a fake app build (no pip), the states each role declares for each host, and the one registry of
roles and phases."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

import foobar_ops.stack
from foobar_ops.core import secrets as secrets_mod
from foobar_ops.core.engine import Phase
from foobar_ops.core.engine.host import check_states
from foobar_ops.core.errors import FoobarOpsError, InventoryError
from foobar_ops.core.facts import Peer
from foobar_ops.core.inventory import load_inventory as core_load_inventory
from foobar_ops.core.states.mysql import native_hash
from foobar_ops.stack import firewall, load_inventory, pair, roles, rolling, topology
from foobar_ops.stack.build import AppBuild
from foobar_ops.stack.roles import ROLES, Role, RoleError, check_roles, names, phases, states_for
from foobar_ops.stack.roles import app as app_role
from foobar_ops.stack.roles import mysql as mysql_role
from foobar_ops.stack.roles.base import template
from foobar_ops.stack.topology import TopologyError
from tests.unit.inventories import ROOT, lab_doc, write_doc

MIGRATIONS = ROOT / "app" / "foobar_app" / "migrations"
DB_PW = "t3st-db-pw-9f8e7d"
REPL_PW = "t3st-repl-pw-5c4b3a"
SUDO_PW = "t3st-sudo-pw-1a2b3c"


@pytest.fixture(autouse=True)
def _env_secrets(monkeypatch):
    monkeypatch.setenv("TEST_DB_PW", DB_PW)
    monkeypatch.setenv("TEST_REPL_PW", REPL_PW)
    monkeypatch.setenv("TEST_SUDO", SUDO_PW)


@pytest.fixture
def fake_build(tmp_path, monkeypatch):
    """A fake AppBuild with two small wheel files; build_app never runs pip."""
    wheels = []
    for name in ("foobar_app-1.0.0-py3-none-any.whl", "PyMySQL-1.2.4-py3-none-any.whl"):
        path = tmp_path / "wheels" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"PK\x05\x06" + name.encode() + b"\0" * 18)
        wheels.append(path)
    build = AppBuild(version="1.0.0", release="1.0.0-abc", wheels=tuple(wheels))
    calls = []

    def fake(inventory=None, app_dir=None, out_dir=None):
        calls.append(inventory)
        return build

    monkeypatch.setattr(app_role, "build_app", fake)
    return build, calls


def write_inventory(tmp_path: Path, doc: dict, name: str = "lab.yml", load=load_inventory):
    """Write the inventory and load it (with the stack's loader, which knows its role names)."""
    return load(write_doc(tmp_path, doc, name))


@pytest.fixture
def inv(tmp_path):
    return write_inventory(tmp_path, lab_doc())


def by_id(states) -> dict:
    return {st.id: st for st in states}


# --- the inventory copy -----------------------------------------------------------------------


def test_inventory_copy_uses_env_secrets(inv):
    assert inv.secret("mysql_app_password").reveal() == DB_PW
    assert inv.secret("mysql_repl_password").reveal() == REPL_PW
    assert inv.host("web-01").sudo_password.reveal() == SUDO_PW
    assert list(inv.hosts) == ["lb-01", "lb-02", "web-01", "web-02", "loadgen-01", "loadgen-02"]


def test_topology_of_the_lab(inv):
    assert [h.name for h in topology.web_hosts(inv)] == ["web-01", "web-02"]
    assert [h.name for h in topology.app_hosts(inv)] == ["web-01", "web-02"]
    assert [h.name for h in topology.db_hosts(inv)] == ["web-01", "web-02"]
    assert topology.db_primary(inv).name == "web-01"
    assert [h.name for h in topology.db_replicas(inv)] == ["web-02"]
    assert [topology.db_role(h, inv) for h in topology.db_hosts(inv)] == ["primary", "replica"]
    assert [h.name for h in topology.db_read_pool(inv)] == ["web-01", "web-02"]
    assert topology.ports(inv) == {"http": 80, "app": 8000, "mysql": 3306}
    assert topology.domain(inv) == "foobar.com"


# --- haproxy ----------------------------------------------------------------------------------


def haproxy_cfg(inv) -> str:
    states = by_id(states_for(inv.host("lb-01"), inv))
    return states["haproxy:config"].content.decode()


def test_haproxy_backend_lists_exactly_the_nginx_hosts(inv):
    cfg = haproxy_cfg(inv)
    backend = cfg.split("backend bk_web", 1)[1]
    servers = re.findall(r"^\s*server\s+(\S+)\s+(\S+)\s+check\s+weight\s+(\d+)\s*$", backend, re.M)
    assert servers == [("web-01", "10.77.0.11:80", "1"), ("web-02", "10.77.0.12:80", "1")]
    assert re.search(r"^\s*balance roundrobin\s*$", backend, re.M)
    assert "lb-01" not in backend


def test_haproxy_backend_follows_the_inventory(tmp_path):
    doc = lab_doc()
    doc["hosts"]["web-03"] = {"address": "10.77.0.13", "roles": ["nginx", "app"]}
    doc["hosts"]["web-02"]["roles"] = ["app"]
    inv = write_inventory(tmp_path, doc)
    backend = haproxy_cfg(inv).split("backend bk_web", 1)[1]
    assert re.findall(r"^\s*server\s+(\S+)\s+(\S+)", backend, re.M) == [
        ("web-01", "10.77.0.11:80"),
        ("web-03", "10.77.0.13:80"),
    ]


def test_haproxy_health_check_stats_socket_and_validation(inv):
    states = by_id(states_for(inv.host("lb-01"), inv))
    cfg = states["haproxy:config"].content.decode()
    assert "option httpchk" in cfg
    assert re.search(r"http-check send meth GET uri /health ver HTTP/1.1 hdr Host foobar\.com\s*$", cfg, re.M)
    assert "http-check expect status 200" in cfg
    assert re.search(r"^\s*stats socket /run/haproxy/admin\.sock mode 600 level admin\b", cfg, re.M)
    assert "bind :80" in cfg
    config = states["haproxy:config"]
    assert config.validate == "haproxy -c -f {}"
    assert config.mode == "0644" and config.name == "/etc/haproxy/haproxy.cfg"
    assert states["haproxy:service"].watch == ("haproxy:config",)
    assert {name for name in states if name.startswith("haproxy:")} == {
        "haproxy:packages",
        "haproxy:config",
        "haproxy:reload-keeps-state",
        "haproxy:daemon-reload",
        "haproxy:service",
    }


def test_haproxy_context_vars(tmp_path):
    doc = lab_doc()
    doc["hosts"]["lb-01"]["vars"] = {
        "haproxy_timeout_server": "45s",
        "haproxy_check_interval": "2s",
        "haproxy_check_fall": 3,
    }
    inv = write_inventory(tmp_path, doc)
    cfg = haproxy_cfg(inv)
    assert "timeout server 45s" in cfg and "timeout client 30s" in cfg
    assert (
        "default-server inter 2s fastinter 200ms fall 3 rise 2 observe layer7 error-limit 3 on-error fastinter" in cfg
    )


# --- nginx ------------------------------------------------------------------------------------


def test_nginx_site(inv):
    states = by_id(states_for(inv.host("web-02"), inv, ["nginx"]))
    site = states["nginx:site"]
    text = site.content.decode()
    assert re.search(r"^\s*server_name foobar\.com www\.foobar\.com;\s*$", text, re.M)
    assert re.search(r"location /static/ \{\s*alias /srv/foobar/current/static/;", text)
    assert re.search(r"upstream foobar_app \{\s*server 127\.0\.0\.1:8000;", text)
    assert "proxy_pass http://foobar_app;" in text
    # only on the host's own address, and any Host but the site's is refused (444)
    assert re.search(r"listen 10\.77\.0\.12:80 default_server;\s*server_name _;\s*return 444;", text)
    assert re.search(r"listen 10\.77\.0\.12:80;\s*server_name foobar\.com", text)
    assert "listen 80" not in text and "0.0.0.0" not in text
    assert "set_real_ip_from 10.77.0.10;" in text
    assert "access_log /var/log/nginx/foobar.access.log foobar_timed;" in text
    assert "add_header X-Served-By web-02 always;" in text
    assert site.validate == "nginx -t" and site.validate_in_context is True
    assert site.name == "/etc/nginx/sites-enabled/foobar.conf"


def test_nginx_log_format(inv):
    states = by_id(states_for(inv.host("web-01"), inv, ["nginx"]))
    log = states["nginx:log-format"]
    text = log.content.decode()
    assert "log_format foobar_timed" in text
    assert "$upstream_response_time" in text and "$request_time" in text
    assert log.validate == "nginx -t" and log.validate_in_context is True
    # the site uses the format, so the format must come first
    ids = list(states)
    assert ids.index("nginx:log-format") < ids.index("nginx:site")
    assert "nginx:site" in states["nginx:service"].watch
    assert "/etc/nginx/sites-enabled/default" in states["nginx:no-default"].name


def test_nginx_follows_stack_ports_and_domain(tmp_path):
    doc = lab_doc()
    doc["stack"]["ports"] = {"http": 8080, "app": 9000}
    doc["stack"]["domain"] = "example.org"
    inv = write_inventory(tmp_path, doc)
    text = by_id(states_for(inv.host("web-01"), inv, ["nginx"]))["nginx:site"].content.decode()
    assert "server_name example.org www.example.org;" in text
    assert "server 127.0.0.1:9000;" in text and re.search(r"listen [0-9.]+:8080 default_server;", text)


# --- app --------------------------------------------------------------------------------------


def test_app_env_file(inv, fake_build):
    states = by_id(states_for(inv.host("web-02"), inv, ["app"]))
    env = states["app:env"]
    assert env.name == "/etc/foobar/app.env"
    assert env.mode == "0600"
    lines = dict(ln.split("=", 1) for ln in env.content.decode().splitlines() if ln and not ln.startswith("#"))
    # values are double-quoted for systemd (the quoting itself: test_replication_unit)
    assert lines["FOOBAR_DB_PASSWORD"] == f'"{DB_PW}"'
    # every database node with its read weight; the app finds the primary itself
    assert lines["FOOBAR_DB_NODES"] == '"web-01=10.77.0.11:3306:1,web-02=10.77.0.12:3306:1"'
    assert lines["FOOBAR_DB_MAX_LAG"] == "5.0"
    assert lines["FOOBAR_SERVED_BY"] == '"web-02"'
    assert lines["FOOBAR_RELEASE"] == '"1.0.0-abc"'
    assert (lines["FOOBAR_DB_NAME"], lines["FOOBAR_DB_USER"]) == ('"foobar"', '"foobar"')
    assert "FOOBAR_DB_PRIMARY" not in lines and "FOOBAR_DB_READ" not in lines
    assert REPL_PW not in env.content.decode()  # the app never holds the replication password
    # the revealed password is remembered, so every other output masks it
    assert secrets_mod.mask_known(f"pw={DB_PW}") == f"pw={secrets_mod.MASK}"


def test_app_release_and_symlink(inv, fake_build):
    states = by_id(states_for(inv.host("web-01"), inv, ["app"]))
    assert states["app:current"].name == "/srv/foobar/current"
    assert states["app:current"].target == "/srv/foobar/releases/1.0.0-abc"
    release = states["app:release"]
    assert release.creates == "/srv/foobar/releases/1.0.0-abc/.installed"
    assert "foobar-app==1.0.0" in release.command
    assert "--no-index" in release.command
    build, _ = fake_build
    for wheel in build.wheels:
        st = states[f"app:wheel:{wheel.name}"]
        assert st.name == f"/srv/foobar/wheels/{wheel.name}"
        assert st.content == wheel.read_bytes()
        assert st.id in release.require


def test_app_build_var_forces_a_new_release(tmp_path, fake_build):
    doc = lab_doc()
    doc["hosts"]["web-01"]["vars"]["app_build"] = 7
    inv = write_inventory(tmp_path, doc)
    states = by_id(states_for(inv.host("web-01"), inv, ["app"]))
    assert states["app:current"].target == "/srv/foobar/releases/1.0.0-abc-b7"
    assert states["app:release"].creates == "/srv/foobar/releases/1.0.0-abc-b7/.installed"
    env = states["app:env"].content.decode()
    assert 'FOOBAR_RELEASE="1.0.0-abc-b7"\n' in env
    other = by_id(states_for(inv.host("web-02"), inv, ["app"]))
    assert other["app:current"].target == "/srv/foobar/releases/1.0.0-abc"


def test_app_prune_keeps_the_newest_releases_and_the_current_one_in_a_real_shell(tmp_path, fake_build):
    doc = lab_doc()
    doc["hosts"]["web-01"]["vars"]["app_keep_releases"] = 2
    inv = write_inventory(tmp_path, doc)
    prune = by_id(states_for(inv.host("web-01"), inv, ["app"]))["app:prune"].command
    releases = tmp_path / "releases"
    names = ["1.0.0-abc", "r1", "r2", "r3", "r4", "r5"]  # the current release oldest of all (a rollback)
    for age, name in enumerate(names):
        (releases / name).mkdir(parents=True)
        os.utime(releases / name, (1_000_000 - age * 1000, 1_000_000 - age * 1000))
    script = prune.replace(app_role.RELEASES, str(releases))
    for _ in range(2):  # and again: nothing more goes
        done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=10)
        assert done.returncode == 0, done.stderr
        assert sorted(p.name for p in releases.iterdir()) == ["1.0.0-abc", "r1"]


def test_app_prune_keeps_what_a_rollback_goes_back_to_not_the_newest_folders(tmp_path, fake_build):
    """base, then pair1 and pair2, then base again (an apply back to the inventory's release), then
    a new release: the folders' ages say pair1 and pair2 are newer than base, but a rollback goes
    back to base, so base stays and pair1 (deployed longest ago) goes."""
    inv = write_inventory(tmp_path, lab_doc())  # app_keep_releases: 3 (the default)
    states = by_id(states_for(inv.host("web-01"), inv, ["app"]))
    current = states["app:current"].target.rsplit("/", 1)[-1]
    releases = tmp_path / "releases"
    for age, name in enumerate([current, "pair2", "pair1", "base"]):  # base's folder the oldest
        (releases / name).mkdir(parents=True)
        os.utime(releases / name, (1_000_000 - age * 1000, 1_000_000 - age * 1000))
    Path(f"{releases}.history").write_text("\n".join(["base", "pair1", "pair2", "base", current]) + "\n")
    script = states["app:prune"].command.replace(app_role.RELEASES, str(releases))
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=10)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in releases.iterdir()) == sorted([current, "base", "pair2"])


def test_app_unit_file(inv, fake_build):
    unit = by_id(states_for(inv.host("web-01"), inv, ["app"]))["app:unit"].content.decode()
    assert "EnvironmentFile=/etc/foobar/app.env" in unit
    assert "--bind 127.0.0.1:8000" in unit
    assert "User=foobar" in unit
    assert "foobar_app.wsgi:application" in unit


def test_app_service_watches_release_env_and_unit(inv, fake_build):
    states = by_id(states_for(inv.host("web-01"), inv, ["app"]))
    assert set(states["app:service"].watch) == {"app:current", "app:env", "app:unit"}
    assert set(states["app:health"].onchanges) == {"app:service", "app:current"}
    assert "http://127.0.0.1:8000/health" in states["app:health"].command


@pytest.mark.parametrize("host", ["lb-01", "web-01", "web-02"])
def test_requisites_reference_earlier_ids(inv, fake_build, host):
    h = inv.host(host)
    check_states(host, states_for(h, inv))
    for phase in phases():
        check_states(host, phase.states_for(h, inv))


def test_app_does_not_pip_per_host(inv, fake_build):
    _, calls = fake_build
    states_for(inv.host("web-01"), inv, ["app"])
    assert calls == [inv]  # one build, of the sources this inventory names


def test_rollback_states(inv):
    states = app_role.rollback_states(inv.host("web-01"), inv)
    check_states("web-01", states)
    assert [st.id for st in states] == ["app:rollback", "app:health"]


# --- mysql ------------------------------------------------------------------------------------


def mysql_states(inv, host: str) -> dict:
    return by_id(states_for(inv.host(host), inv, ["mysql"]))


def test_mysql_user_per_app_host_with_least_privilege(inv):
    users = [st for st in mysql_states(inv, "web-01").values() if st.kind == "mysql.user" and st.user == "foobar"]
    assert sorted(u.host for u in users) == ["10.77.0.11", "10.77.0.12"]
    for u in users:
        # exactly what the app does: read and add items, and ask a node whether it is a healthy replica
        assert u.grants == {"*.*": ["SLAVE MONITOR"], "`foobar`.*": ["INSERT", "SELECT"]}
        assert u.privileges == ["INSERT", "SELECT"]
        assert u.password.reveal() == DB_PW
        assert "mysql:database" in u.require
    assert {u.id for u in users} == {"mysql:user:web-01", "mysql:user:web-02"}


def test_mysql_user_plan_grants_exactly_the_app_privileges(inv):
    user = mysql_states(inv, "web-01")["mysql:user:web-02"]
    sql = user.plan(None).uploads["sql"].decode()  # no such account yet
    assert sql.splitlines() == [
        f"CREATE USER 'foobar'@'10.77.0.12' IDENTIFIED BY PASSWORD '{native_hash(DB_PW)}';",
        "GRANT SLAVE MONITOR ON *.* TO 'foobar'@'10.77.0.12';",
        "GRANT INSERT, SELECT ON `foobar`.* TO 'foobar'@'10.77.0.12';",
    ]
    assert DB_PW not in sql


def test_mysql_replication_user_per_database_host_with_replication_rights_only(inv):
    users = [st for st in mysql_states(inv, "web-01").values() if st.kind == "mysql.user" and st.user == "repl"]
    assert [(u.id, u.host) for u in users] == [
        ("mysql:replication-user:web-01", "10.77.0.11"),  # the primary too: it is a replica after a switchover
        ("mysql:replication-user:web-02", "10.77.0.12"),
    ]
    for u in users:
        assert u.grants == {"*.*": ["REPLICATION SLAVE"]}
        assert u.password.reveal() == REPL_PW
        assert u.require == ("mysql:primary",)


def test_mysql_config_binds_to_the_host_address(inv):
    for host, address, server_id in (("web-01", "10.77.0.11", 11), ("web-02", "10.77.0.12", 12)):
        states = mysql_states(inv, host)
        cnf = states["mysql:config"].content.decode()
        assert re.search(rf"^bind-address = {re.escape(address)}$", cnf, re.M)
        assert re.search(rf"^server-id = {server_id}$", cnf, re.M)
        assert "skip-name-resolve = ON" in cnf
        # the same on every node whatever its role: it starts read-only, with GTIDs in its binlog
        assert re.search(r"^read_only = ON$", cnf, re.M)
        assert re.search(r"^gtid_strict_mode = ON$", cnf, re.M) and re.search(r"^log_slave_updates = ON$", cnf, re.M)
        assert states["mysql:config"].name == "/etc/mysql/mariadb.conf.d/60-foobar.cnf"


def test_mysql_server_id_from_the_vars(tmp_path):
    doc = lab_doc()
    doc["hosts"]["web-02"]["vars"]["mysql_server_id"] = 702
    inv = write_inventory(tmp_path, doc)
    assert re.search(r"^server-id = 702$", mysql_states(inv, "web-02")["mysql:config"].content.decode(), re.M)


def test_mysql_server_id_of_a_host_addressed_by_name_comes_from_its_vars(tmp_path):
    doc = lab_doc()
    doc["hosts"]["web-02"]["address"] = "web-02.lab.foobar.com"
    doc["hosts"]["web-02"]["vars"]["mysql_server_id"] = 12
    inv = write_inventory(tmp_path, doc)
    cnf = mysql_states(inv, "web-02")["mysql:config"].content.decode()
    assert re.search(r"^server-id = 12$", cnf, re.M)


def test_mysql_server_id_of_a_host_addressed_by_name_must_be_given(tmp_path):
    doc = lab_doc()
    doc["hosts"]["web-02"]["address"] = "web-02.lab.foobar.com"
    inv = write_inventory(tmp_path, doc)
    with pytest.raises(TopologyError, match=r"web-02.*vars\.mysql_server_id"):
        states_for(inv.host("web-02"), inv, ["mysql"])


@pytest.mark.parametrize("value", [0, -3, 2**32, "7", True, 7.0])
def test_a_bad_mysql_server_id_is_refused_naming_host_key_and_value(tmp_path, value):
    doc = lab_doc()
    doc["hosts"]["web-02"]["vars"]["mysql_server_id"] = value
    inv = write_inventory(tmp_path, doc, load=core_load_inventory)  # the role checks on its own too
    with pytest.raises(TopologyError) as refused:
        states_for(inv.host("web-02"), inv, ["mysql"])
    assert str(refused.value) == (
        f"host 'web-02': key 'vars.mysql_server_id': must be a whole number from 1 to {2**32 - 1}, not {value!r}"
    )


@pytest.mark.parametrize("value", [-1, 257, "2", True, 1.5, None])
def test_a_bad_haproxy_weight_is_refused_naming_host_key_and_value(tmp_path, value):
    doc = lab_doc()
    doc["hosts"]["web-01"]["vars"]["haproxy_weight"] = value
    inv = write_inventory(tmp_path, doc, load=core_load_inventory)  # the role checks on its own too
    lb = next(h for h in inv.hosts.values() if "haproxy" in h.roles)
    with pytest.raises(TopologyError) as refused:
        states_for(lb, inv, ["haproxy"])
    assert str(refused.value) == (
        f"host 'web-01': key 'vars.haproxy_weight': must be a whole number from 0 to 256, not {value!r}"
    )


@pytest.mark.parametrize("weight", [0, 3, 256])
def test_haproxy_weights_within_range_reach_the_config(tmp_path, weight):
    doc = lab_doc()
    doc["hosts"]["web-01"]["vars"]["haproxy_weight"] = weight
    inv = write_inventory(tmp_path, doc)
    backend = haproxy_cfg(inv).split("backend bk_web", 1)[1]
    assert re.search(rf"^\s*server web-01 10\.77\.0\.11:80 check weight {weight}$", backend, re.M)
    assert re.search(r"^\s*server web-02 10\.77\.0\.12:80 check weight 1$", backend, re.M)


def test_mysql_client_option_file_holds_the_replication_account(inv):
    cnf = mysql_states(inv, "web-02")["mysql:client-cnf"]
    assert cnf.name == "/etc/mysql/foobar-replication.cnf" and cnf.mode == "0600"
    assert cnf.content.decode().splitlines()[1:] == ["[client]", "user = repl", f'password = "{REPL_PW}"']


def test_mysql_schema_is_the_apps_migrations(inv):
    states = mysql_states(inv, "web-01")
    schema = states["mysql:schema"]
    assert schema.kind == "mysql.schema" and schema.name == "foobar"
    found = sorted(MIGRATIONS.glob("*.sql"))
    assert found and schema.migrations == [(p.stem, p.read_text()) for p in found]
    assert "CREATE TABLE IF NOT EXISTS items" in schema.migrations[0][1]
    assert schema.require == ("mysql:database",)
    assert states["mysql:database"].require == ("mysql:primary",)


def test_mysql_primary_is_made_writable_after_asking_its_peers(inv):
    primary = mysql_states(inv, "web-01")["mysql:primary"]
    assert primary.kind == "mysql.primary" and primary.name == "web-01"
    assert primary.peers == (Peer("web-02", "10.77.0.12", 3306),)
    assert primary.client_cnf == "/etc/mysql/foobar-replication.cnf"
    assert set(primary.require) == {"mysql:settled", "mysql:client-cnf"}
    settled = mysql_states(inv, "web-01")["mysql:settled"]  # no dead role change left part-way
    assert settled.kind == "mysql.settled" and settled.require == ("mysql:service",)
    topology = mysql_states(inv, "web-01")["mysql:topology"]  # the epoch row naming the primary
    assert topology.kind == "mysql.topology" and topology.require == ("mysql:database",)


def test_web_02_is_a_replica_of_web_01(inv, fake_build):
    states = mysql_states(inv, "web-02")
    assert list(states) == [
        "mysql:packages",
        "mysql:config",
        "mysql:service",
        "mysql:settled",
        "mysql:client-cnf",
        "mysql:replica",
    ]
    replica = states["mysql:replica"]
    assert replica.kind == "mysql.replica" and replica.name == "web-02"
    assert replica.primary == Peer("web-01", "10.77.0.11", 3306)
    assert replica.user == "repl" and replica.password.reveal() == REPL_PW
    assert replica.client_cnf == "/etc/mysql/foobar-replication.cnf"
    assert callable(replica.seed)  # a copy of the primary, made only when a new replica is seeded
    assert set(replica.require) == {"mysql:settled", "mysql:client-cnf"}
    # the database, its schema and the accounts reach a replica by replication, never by apply
    all_ids = [st.id for st in states_for(inv.host("web-02"), inv)]
    assert not [i for i in all_ids if i.startswith(("mysql:user", "mysql:replication-user", "mysql:schema"))]
    assert "mysql:primary" not in all_ids and "mysql:database" not in all_ids


def test_mysql_migrations_are_read_from_the_app_source_in_order(inv, tmp_path, monkeypatch):
    app = tmp_path / "app"
    folder = app / "foobar_app" / "migrations"
    folder.mkdir(parents=True)
    (folder / "0010_late.sql").write_text("SELECT 10;")
    (folder / "0002_tags.sql").write_text("SELECT 2;")
    (folder / "notes.txt").write_text("not a migration")
    monkeypatch.setattr(mysql_role, "app_source", lambda inventory: app)
    assert mysql_role.migrations(inv) == [("0002_tags", "SELECT 2;"), ("0010_late", "SELECT 10;")]
    for p in folder.glob("*.sql"):
        p.unlink()
    with pytest.raises(TopologyError, match="no schema migrations"):
        mysql_role.migrations(inv)


# --- topology errors --------------------------------------------------------------------------


def test_two_primaries_is_a_topology_error(tmp_path, fake_build):
    doc = lab_doc()
    doc["hosts"]["web-02"]["roles"] = ["nginx", "app", "mysql"]
    doc["hosts"]["web-02"]["vars"] = {"mysql_role": "primary"}
    inv = write_inventory(tmp_path, doc, "two-primaries.yml")
    with pytest.raises(TopologyError) as info:
        topology.db_primary(inv)
    msg = str(info.value)
    assert str(tmp_path / "two-primaries.yml") in msg
    assert "web-01" in msg and "web-02" in msg
    with pytest.raises(TopologyError):  # the stack refuses it (the mysql role needs one primary)
        states_for(inv.host("web-01"), inv)


def test_default_mysql_role_is_primary_only_for_a_lone_database_host(tmp_path, fake_build):
    doc = lab_doc()
    doc["hosts"]["web-02"]["roles"] = ["nginx", "app"]
    del doc["hosts"]["web-01"]["vars"]["mysql_role"]  # the only database host: the primary
    inv = write_inventory(tmp_path, doc)
    assert topology.db_primary(inv).name == "web-01" and topology.db_replicas(inv) == []
    doc["hosts"]["web-02"]["roles"] = ["nginx", "app", "mysql"]  # two database hosts: each must say
    inv = write_inventory(tmp_path, doc, "unsaid.yml")
    with pytest.raises(TopologyError, match=r"host 'web-01': key 'vars.mysql_role': must be primary or replica"):
        topology.db_primary(inv)


def test_no_primary_is_a_topology_error(tmp_path, fake_build):
    doc = lab_doc()
    doc["hosts"]["web-01"]["vars"]["mysql_role"] = "replica"
    inv = write_inventory(tmp_path, doc, "no-primary.yml")
    with pytest.raises(TopologyError) as info:
        states_for(inv.host("web-02"), inv)
    msg = str(info.value)
    assert str(tmp_path / "no-primary.yml") in msg and "none" in msg


def test_no_mysql_host_at_all_is_a_topology_error(tmp_path, fake_build):
    doc = lab_doc()
    doc["hosts"]["web-01"]["roles"] = ["nginx", "app"]
    doc["hosts"]["web-02"]["roles"] = ["nginx", "app"]
    inv = write_inventory(tmp_path, doc, "no-db.yml")
    # the app role refuses it rather than render an env file with no database node (the app
    # would fall back to 127.0.0.1:3306)
    with pytest.raises(TopologyError, match="no-db.yml"):
        states_for(inv.host("web-01"), inv, ["app"])


def test_missing_password_secret_is_a_topology_error(tmp_path):
    doc = lab_doc()
    doc["secrets"] = {"other": "env:TEST_DB_PW"}
    inv = write_inventory(tmp_path, doc, "nosecret.yml")
    with pytest.raises(TopologyError, match="mysql_app_password") as info:
        states_for(inv.host("web-01"), inv, ["mysql"])
    assert "nosecret.yml" in str(info.value)


def test_replica_in_read_pool(tmp_path, fake_build):
    doc = lab_doc()
    doc["hosts"]["db-02"] = {
        "address": "10.77.0.21",
        "roles": ["mysql"],
        "vars": {"mysql_role": "replica", "mysql_read_weight": 3},
    }
    inv = write_inventory(tmp_path, doc)
    assert [h.name for h in topology.db_read_pool(inv)] == ["web-01", "web-02", "db-02"]
    env = by_id(states_for(inv.host("web-02"), inv, ["app"]))["app:env"].content.decode()
    assert 'FOOBAR_DB_NODES="web-01=10.77.0.11:3306:1,web-02=10.77.0.12:3306:1,db-02=10.77.0.21:3306:3"\n' in env
    replica = by_id(states_for(inv.host("db-02"), inv, ["mysql"]))["mysql:replica"]
    assert replica.primary == Peer("web-01", "10.77.0.11", 3306)


# --- role names and phases --------------------------------------------------------------------


def test_check_roles_names_the_unknown_role():
    with pytest.raises(RoleError) as info:
        check_roles(["nginx", "nginxx"])
    assert "'nginxx'" in str(info.value)
    assert "known roles" in str(info.value)
    check_roles(["haproxy", "nginx", "app", "mysql"])  # no error


def test_phases_put_mysql_first_and_roll_the_app_one_host_at_a_time(inv, fake_build):
    steps = phases()
    assert all(isinstance(p, Phase) for p in steps)
    names_ = ["firewall", "database", "web", "lb", "app", "monitoring"]
    assert [p.name for p in steps] == [spec.name for spec in roles.PHASES] == names_
    assert [spec.rolling for spec in roles.PHASES] == [False, False, False, False, True, False]
    # the firewall one host at a time, each confirmed; the database one host at a time, primary
    # first; the load balancers one at a time; the app rolling; monitoring (none in this
    # inventory: no exporters) on every host at once
    assert [p.serial for p in steps] == [True, True, False, True, True, False]
    assert steps[0].guard is firewall.confirmed
    steps = steps[1:]
    assert steps[2].guard is pair.peer_serves
    assert steps[0].order is roles.primary_first and steps[0].guard is None
    web01 = inv.host("web-01")
    ids = [[st.id.split(":")[0] for st in p.states_for(web01, inv)] for p in steps]
    assert set(ids[0]) == {"mysql"} and set(ids[1]) == {"nginx"} and ids[2] == [] and set(ids[3]) == {"app"}
    assert steps[0].states_for(inv.host("lb-01"), inv) == []
    assert steps[1].states_for(inv.host("lb-01"), inv) == []
    assert {st.id.split(":")[0] for st in steps[2].states_for(inv.host("lb-01"), inv)} == {"haproxy", "keepalived"}
    assert steps[3].states_for(inv.host("lb-01"), inv) == []
    assert steps[4].states_for(web01, inv) == []


def test_the_database_phase_takes_the_primary_first(inv):
    web01, web02 = inv.host("web-01"), inv.host("web-02")
    assert roles.primary_first([web02, web01], inv) == [web01, web02]
    assert roles.primary_first([web01, web02], inv) == [web01, web02]
    assert roles.primary_first([web02], inv) == [web02]


def test_the_database_phase_keeps_the_order_when_the_inventory_names_no_primary(tmp_path):
    doc = lab_doc()
    doc["hosts"]["web-01"]["vars"]["mysql_role"] = "replica"
    inv = write_inventory(tmp_path, doc)
    hosts = [inv.host("web-02"), inv.host("web-01")]
    assert roles.primary_first(hosts, inv) == hosts  # the states themselves report the error


def test_phases_of_the_app_alone_is_one_rolling_phase(inv, fake_build):
    (step,) = phases(["app"])
    assert step.name == "app" and step.serial
    assert step.guard is rolling.drained and step.order is rolling.out_of_rotation_first
    assert {st.id.split(":")[0] for st in step.states_for(inv.host("web-01"), inv)} == {"app"}


def test_phases_for_haproxy_only(inv):
    steps = phases(["haproxy"])
    assert [(p.name, p.serial, p.guard) for p in steps] == [("lb", True, pair.peer_serves)]
    assert steps[0].states_for(inv.host("web-01"), inv) == []
    assert [st.id for st in steps[0].states_for(inv.host("lb-01"), inv)] == [
        "haproxy:packages",
        "haproxy:config",
        "haproxy:reload-keeps-state",
        "haproxy:daemon-reload",
        "haproxy:service",
    ]


def test_phases_for_mysql_and_nginx(inv):
    steps = phases(["nginx", "mysql"])  # the phases' order, whatever the order asked
    assert [p.name for p in steps] == ["database", "web"]
    assert [(p.serial, p.order) for p in steps] == [(True, roles.primary_first), (False, None)]
    web01 = inv.host("web-01")
    assert {st.id.split(":")[0] for st in steps[0].states_for(web01, inv)} == {"mysql"}
    assert {st.id.split(":")[0] for st in steps[1].states_for(web01, inv)} == {"nginx"}


def test_phases_refuse_an_unknown_role_naming_it():
    with pytest.raises(RoleError) as info:
        phases(["app", "cache"])
    assert "'cache'" in str(info.value) and "known roles" in str(info.value)


def test_states_for_follows_the_host_role_order(inv, fake_build):
    prefixes = []
    for st in states_for(inv.host("web-01"), inv):
        prefix = st.id.split(":")[0]
        if not prefixes or prefixes[-1] != prefix:
            prefixes.append(prefix)
    assert prefixes == ["firewall", "nginx", "app", "mysql"]  # the firewall first, on every host


def test_a_host_role_the_stack_does_not_know_is_a_role_error(tmp_path):
    doc = lab_doc()
    doc["hosts"]["lb-01"]["roles"] = ["haproxy", "cache"]
    inv = write_inventory(tmp_path, doc, load=core_load_inventory)  # the core takes any role name
    assert inv.host("lb-01").roles == ("haproxy", "cache")
    with pytest.raises(RoleError, match="'cache'"):
        states_for(inv.host("lb-01"), inv)
    web = next(p for p in phases() if p.name == "web")
    with pytest.raises(RoleError, match="'cache'"):  # a deploy refuses it too, rather than skip it
        web.states_for(inv.host("lb-01"), inv)


def test_the_stack_loader_refuses_a_role_it_does_not_know(tmp_path):
    doc = lab_doc()
    doc["hosts"]["lb-01"]["roles"] = ["haproxy", "cache"]
    with pytest.raises(InventoryError, match="cache"):
        write_inventory(tmp_path, doc)


# --- the registry ----------------------------------------------------------------------------


def test_every_role_name_maps_to_its_role_in_the_registry(inv):
    assert names() == tuple(ROLES) and set(names()) == {
        "firewall",
        "haproxy",
        "keepalived",
        "nginx",
        "app",
        "mysql",
        "loadgen",
        "exporters",
        "monitoring",
    }
    for name, role in ROLES.items():
        assert isinstance(role, Role) and role.name == name and callable(role.states) and role.summary
    assert {role.phase for role in ROLES.values()} <= {spec.name for spec in roles.PHASES}
    used = {name for host in inv.hosts.values() for name in host.roles}
    assert used <= set(ROLES)  # every role the lab's hosts declare is in the registry


def test_roles_are_applied_in_their_phase():
    assert {name: role.phase for name, role in ROLES.items()} == {
        "firewall": "firewall",
        "mysql": "database",
        "nginx": "web",
        "haproxy": "lb",
        "keepalived": "lb",
        "loadgen": "web",
        "app": "app",
        "exporters": "monitoring",
        "monitoring": "monitoring",
    }


def test_role_templates_are_files_of_the_stack():
    folder = Path(foobar_ops.stack.__file__).resolve().parent / "templates"
    for name in (
        "haproxy.cfg.j2",
        "nginx-foobar.conf.j2",
        "nginx-log.conf.j2",
        "app.env.j2",
        "foobar-app.service.j2",
        "mariadb-foobar.cnf.j2",
        "mysql-client.cnf.j2",
    ):
        assert template(name) == folder / name and template(name).is_file()


def test_gunicorn_is_sized_from_the_inventory_with_threads_and_a_pool_per_thread(tmp_path, fake_build):
    doc = lab_doc()
    doc["hosts"]["web-02"]["vars"].update(app_workers=3, app_threads=16)
    inv = write_inventory(tmp_path, doc)
    states = by_id(states_for(inv.host("web-02"), inv, ["app"]))
    unit = states["app:unit"].content.decode()
    assert "--workers 3 --worker-class gthread --threads 16 " in unit
    assert "--access-logfile" not in unit  # Nginx logs every request already
    assert "FOOBAR_DB_POOL_SIZE=16" in states["app:env"].content.decode()
    default = by_id(states_for(inv.host("web-01"), inv, ["app"]))["app:unit"].content.decode()
    assert "--workers 2 --worker-class gthread --threads 8 " in default


def test_nginx_lets_go_of_an_idle_app_connection_before_the_app_would(tmp_path, fake_build):
    """Otherwise the app closes a connection just as Nginx sends a POST on it: a 502 (never retried)."""
    inv = write_inventory(tmp_path, lab_doc())
    site = by_id(states_for(inv.host("web-01"), inv, ["nginx"]))["nginx:site"].content.decode()
    unit = by_id(states_for(inv.host("web-01"), inv, ["app"]))["app:unit"].content.decode()
    upstream = site.split("upstream foobar_app {")[1].split("}")[0]
    nginx_idle = int(re.search(r"^\s*keepalive_timeout (\d+)s;$", upstream, re.M).group(1))
    app_keeps = int(re.search(r" --keep-alive (\d+) ", unit).group(1))
    assert re.search(r"^\s*keepalive \d+;$", upstream, re.M)  # connections to the app are reused
    assert 0 < nginx_idle < app_keeps
    assert " --no-control-socket" in unit  # nothing uses it; gunicorn could not create it anyway


@pytest.mark.parametrize(
    "key, value, roles",
    [
        ("app_keep_releases", 0, ["app"]),
        ("app_keep_releases", "3", ["app"]),
    ],
)
def test_other_numbers_of_the_stack_are_refused_by_name(tmp_path, fake_build, key, value, roles):
    doc = lab_doc()
    doc["hosts"]["web-02"]["vars"][key] = value
    inv = write_inventory(tmp_path, doc, load=core_load_inventory)  # the role checks on its own too
    with pytest.raises(TopologyError, match=f"host 'web-02': key 'vars.{key}': must be a whole number from"):
        states_for(inv.host("web-02"), inv, roles)


@pytest.mark.parametrize(
    "key, value",
    [
        ("app_workers", 0),
        ("app_workers", 65),
        ("app_threads", "many"),
        ("app_access_log", "yes"),
        ("app_build", "../../../etc"),  # part of the release folder's name
        ("app_build", True),
    ],
)
def test_bad_gunicorn_settings_are_refused_by_name(tmp_path, fake_build, key, value):
    doc = lab_doc()
    doc["hosts"]["web-02"]["vars"][key] = value
    inv = write_inventory(tmp_path, doc, load=core_load_inventory)  # the role checks on its own too
    with pytest.raises(FoobarOpsError, match=f"host 'web-02': key 'vars.{key}'"):
        states_for(inv.host("web-02"), inv, ["app"])
