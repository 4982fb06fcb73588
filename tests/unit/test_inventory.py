"""Unit tests for inventory loading, validation, selection and secrets."""

from __future__ import annotations

import hashlib
import json
import pickle
import textwrap
import threading
from pathlib import Path

import pytest

from foobar_ops.core import secrets as secrets_mod
from foobar_ops.core.errors import (
    AuthError,
    ConnectionFailed,
    FoobarOpsError,
    InventoryError,
    SecretError,
)
from foobar_ops.core.inventory import Host, Inventory, load_inventory, parse_inventory
from foobar_ops.core.secrets import (
    SECRET_KEY_PATTERN,
    Secret,
    is_secret_ref,
    mask_known,
)
from foobar_ops.stack import load_inventory as load_stack_inventory

FIXTURE = Path(__file__).parent / "fixtures" / "inventory" / "lab.yml"

MINIMAL = """
hosts:
  web-01:
    address: 10.77.0.11
"""


def write(tmp_path: Path, text: str, name: str = "inventory.yml") -> Path:
    """Write dedented YAML to tmp_path/name and return the path.

    tmp_path: pytest's temporary directory.
    text: the YAML text.
    name: the file name.
    """
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(tmp_path: Path, text: str) -> Inventory:
    """Write YAML to a file and load it as an inventory.

    tmp_path: pytest's temporary directory.
    text: the YAML text.
    """
    return load_inventory(write(tmp_path, text))


def load_error(tmp_path: Path, text: str) -> InventoryError:
    """Load YAML that must be invalid and return the InventoryError.

    tmp_path: pytest's temporary directory.
    text: the YAML text.
    """
    with pytest.raises(InventoryError) as info:
        load(tmp_path, text)
    return info.value


def assert_names(err: InventoryError, tmp_path: Path, host: str | None, key: str | None) -> str:
    """Check the error names the file, the host and the key; return str(err).

    err: the raised InventoryError.
    tmp_path: directory of the inventory file.
    host: the expected host, or None.
    key: the expected key (dotted), or None.
    """
    text = str(err)
    assert str(tmp_path / "inventory.yml") in text
    assert err.path == tmp_path / "inventory.yml"
    if host is not None:
        assert err.host == host and f"host '{host}'" in text
    if key is not None:
        assert err.key == key and f"key '{key}'" in text
    return text


# --- a valid inventory ------------------------------------------------------


@pytest.fixture()
def lab() -> Inventory:
    """The realistic lab inventory fixture."""
    return load_inventory(FIXTURE)


def test_fixture_loads_hosts_in_file_order(lab: Inventory) -> None:
    assert list(lab.hosts) == ["lb-01", "web-01", "web-02", "db-01"]
    web = lab.host("web-01")
    assert isinstance(web, Host)
    assert web.address == "10.77.0.11" and web.roles == ("nginx", "app")


def test_defaults_are_merged_unless_host_overrides(lab: Inventory) -> None:
    web, db = lab.host("web-01"), lab.host("db-01")
    assert (web.user, web.port) == ("ops", 22)
    assert (db.user, db.port) == ("dbadmin", 2222)
    assert web.vars["timezone"] == "UTC"
    assert db.vars == {"timezone": "Europe/Paris", "mysql_role": "primary"}


def test_ssh_defaults_merge_and_relative_paths(lab: Inventory) -> None:
    base = FIXTURE.parent.resolve()
    web, db = lab.host("web-01").ssh, lab.host("db-01").ssh
    assert web.identity == base / "ssh" / "id_ed25519"
    assert web.known_hosts == base / "ssh" / "known_hosts"
    assert web.connect_timeout == 10.0 and web.command_timeout == 300.0
    assert web.keepalive == 15 and web.trust_new_keys is False
    assert db.command_timeout == 900.0 and db.trust_new_keys is True
    assert db.identity == web.identity
    assert lab.host("web-02").ssh.proxy_jump == "lb-01"


def test_builtin_defaults_without_defaults_section(tmp_path: Path) -> None:
    host = load(tmp_path, MINIMAL).host("web-01")
    assert (host.user, host.port, host.roles, host.groups) == ("root", 22, (), ())
    assert host.ssh.connect_timeout == 5.0 and host.ssh.identity is None
    assert host.sudo_password is None and host.vars == {}


def test_groups_from_section_and_host_declarations(lab: Inventory) -> None:
    assert lab.groups == {"web": ("web-01", "web-02"), "edge": ("lb-01",), "canary": ("web-01",)}
    assert lab.host("web-01").groups == ("canary", "web")
    assert lab.group_vars["edge"] == {"tier": "edge"}
    assert lab.host("lb-01").vars["tier"] == "edge"


def test_secret_references_become_secrets(lab: Inventory) -> None:
    base = FIXTURE.parent.resolve()
    assert lab.stack["mysql"]["app_password"] == Secret("file:secrets/mysql_app")
    assert lab.stack["ports"] == {"http": 80, "app": 8000, "mysql": 3306}
    stats = lab.host("lb-01").vars["stats_password"]
    assert isinstance(stats, Secret) and stats.ref == "env:FOOBAR_HAPROXY_STATS"
    assert lab.host("web-01").sudo_password.target == base / "secrets" / "sudo_password"
    assert lab.host("db-01").sudo_password.ref == "env:FOOBAR_DB_SUDO"
    assert lab.secret("mysql_root_password").ref == "env:FOOBAR_MYSQL_ROOT"
    assert lab.lab == {"bridge": "fbr0", "network": "10.77.0.0/24"}


def test_as_dict_is_json_and_shows_refs(lab: Inventory) -> None:
    data = lab.host("lb-01").as_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["vars"]["stats_password"] == "env:FOOBAR_HAPROXY_STATS"
    assert data["roles"] == ["haproxy"] and data["groups"] == ["edge"]


def test_sha256_is_of_file_bytes_and_stable(lab: Inventory) -> None:
    assert lab.sha256 == hashlib.sha256(FIXTURE.read_bytes()).hexdigest()
    assert load_inventory(FIXTURE).sha256 == lab.sha256


def test_parse_inventory_from_text(tmp_path: Path) -> None:
    inv = parse_inventory(MINIMAL, tmp_path / "x.yml")
    assert inv.path == tmp_path / "x.yml"
    assert inv.sha256 == hashlib.sha256(MINIMAL.encode()).hexdigest()


def test_hosts_are_hashable(lab: Inventory) -> None:
    assert len(set(lab.select())) == 4


def test_unknown_host_and_secret_lookups(lab: Inventory) -> None:
    with pytest.raises(InventoryError, match="did you mean 'web-01'"):
        lab.host("web-1")
    with pytest.raises(InventoryError, match="mysql_root_password"):
        lab.secret("mysql_root_passwd")


# --- selection ----------------------------------------------------------------


def names(hosts: list[Host]) -> list[str]:
    """Return the names of hosts.

    hosts: selected hosts.
    """
    return [h.name for h in hosts]


@pytest.mark.parametrize("pattern", [None, "all", "*", "web-01,all"])
def test_select_all(lab: Inventory, pattern: str | None) -> None:
    assert names(lab.select(pattern)) == ["lb-01", "web-01", "web-02", "db-01"]


@pytest.mark.parametrize("pattern", ["", " ", ",", "web-01,", ",web-01", "web-01,,web-02", "web-01, ,all"])
def test_an_empty_pattern_or_term_selects_nothing_it_is_an_error(lab: Inventory, pattern: str) -> None:
    # `--hosts "$UNSET"` must never mean every host
    with pytest.raises(InventoryError, match=r"host pattern .* is empty or has an empty term"):
        lab.select(pattern)


@pytest.mark.parametrize(
    "pattern, expected",
    [
        ("db-01", ["db-01"]),
        ("web-*", ["web-01", "web-02"]),
        ("*-0[12]", ["lb-01", "web-01", "web-02", "db-01"]),
        ("role:mysql", ["db-01"]),
        ("role:nginx", ["web-01", "web-02"]),
        ("group:edge", ["lb-01"]),
        ("web", ["web-01", "web-02"]),
        ("haproxy", ["lb-01"]),
        ("db-01, web-02 ,lb-01", ["lb-01", "web-02", "db-01"]),
        ("web,role:app,web-01", ["web-01", "web-02"]),
        ("canary,group:edge", ["lb-01", "web-01"]),
    ],
)
def test_select_terms(lab: Inventory, pattern: str, expected: list[str]) -> None:
    assert names(lab.select(pattern)) == expected


@pytest.mark.parametrize("term", ["web-03", "app-*", "role:nginxx", "group:nope", "nope"])
def test_select_term_matching_nothing(lab: Inventory, term: str) -> None:
    with pytest.raises(InventoryError) as info:
        lab.select(f"web-01,{term}")
    text = str(info.value)
    assert f"'{term}'" in text and str(FIXTURE) in text
    assert "web-01, web-02" in text and "edge" in text and "haproxy" in text


# --- file-level errors --------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="not found") as info:
        load_inventory(tmp_path / "nope.yml")
    assert str(tmp_path / "nope.yml") in str(info.value)


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    err = load_error(tmp_path, "hosts:\n  web-01:\n    address: [1, 2\n  x: y\n")
    assert_names(err, tmp_path, None, None)
    assert "invalid YAML at line 4" in str(err)


def test_top_level_not_a_mapping(tmp_path: Path) -> None:
    err = load_error(tmp_path, "- web-01\n- web-02\n")
    assert "mapping" in assert_names(err, tmp_path, None, None)


def test_empty_file(tmp_path: Path) -> None:
    assert "empty" in str(load_error(tmp_path, "# nothing\n"))


def test_hosts_missing_or_empty(tmp_path: Path) -> None:
    err = load_error(tmp_path, "hosts: {}\n")
    assert_names(err, tmp_path, None, "hosts")


# --- duplicates -----------------------------------------------------------


def test_duplicate_host(tmp_path: Path) -> None:
    err = load_error(
        tmp_path,
        """\
        hosts:
          web-01:
            address: 10.77.0.11
          web-02:
            address: 10.77.0.12
          web-01:
            address: 10.77.0.13
        """,
    )
    text = assert_names(err, tmp_path, "web-01", None)
    assert "host 'web-01' is defined twice (lines 2 and 6)" in text


def test_duplicate_key_in_stack(tmp_path: Path) -> None:
    err = load_error(tmp_path, MINIMAL + "stack:\n  ports:\n    http: 80\n    http: 8080\n")
    text = assert_names(err, tmp_path, None, "stack.ports.http")
    assert "appears twice (lines 7 and 8)" in text


def test_duplicate_key_in_host(tmp_path: Path) -> None:
    err = load_error(tmp_path, MINIMAL + "    port: 22\n    port: 2222\n")
    assert "appears twice" in assert_names(err, tmp_path, "web-01", "port")


# --- unknown keys ---------------------------------------------------------------


@pytest.mark.parametrize(
    "text, host, key, suggestion",
    [
        ("hostz:\n  a: 1\n" + MINIMAL, None, "hostz", "hosts"),
        (MINIMAL + "    adress: x\n", "web-01", "adress", "address"),
        (MINIMAL + "defaults:\n  usr: ops\n", None, "defaults.usr", "user"),
        (MINIMAL + "    ssh: {identiy: /k}\n", "web-01", "ssh.identiy", "identity"),
        (MINIMAL + "defaults:\n  ssh: {timeout: 3}\n", None, "defaults.ssh.timeout", None),
        (MINIMAL + "lab: {brige: fbr0}\n", None, "lab.brige", "bridge"),
        (MINIMAL + "groups:\n  web: {hosts: [web-01], var: {}}\n", None, "groups.web.var", "vars"),
    ],
)
def test_unknown_key(tmp_path: Path, text: str, host: str | None, key: str, suggestion: str | None) -> None:
    err = assert_names(load_error(tmp_path, text), tmp_path, host, key)
    assert f"unknown key '{key.rsplit('.', 1)[-1]}'" in err
    assert "known keys:" in err
    if suggestion:
        assert f"did you mean '{suggestion}'" in err


# --- host fields ------------------------------------------------------------------


def test_missing_address(tmp_path: Path) -> None:
    err = load_error(tmp_path, "hosts:\n  web-01:\n    port: 22\n")
    assert "missing" in assert_names(err, tmp_path, "web-01", "address")


@pytest.mark.parametrize("value", ["''", "42", "[a]", "10.77.0.300", "bad_host!", "-x.example.com"])
def test_bad_address(tmp_path: Path, value: str) -> None:
    err = load_error(tmp_path, f"hosts:\n  web-01:\n    address: {value}\n")
    assert_names(err, tmp_path, "web-01", "address")


@pytest.mark.parametrize("value", ["2001:db8::1", "db.lab.foobar.com", "localhost"])
def test_good_address(tmp_path: Path, value: str) -> None:
    inv = load(tmp_path, f"hosts:\n  web-01:\n    address: '{value}'\n")
    assert inv.host("web-01").address == value


@pytest.mark.parametrize("value, words", [("'22'", "integer"), ("0", "range"), ("65536", "range"), ("true", "integer")])
def test_bad_port(tmp_path: Path, value: str, words: str) -> None:
    err = load_error(tmp_path, MINIMAL + f"    port: {value}\n")
    assert words in assert_names(err, tmp_path, "web-01", "port")


def test_bad_default_port(tmp_path: Path) -> None:
    err = load_error(tmp_path, MINIMAL + "defaults: {port: ssh}\n")
    assert_names(err, tmp_path, None, "defaults.port")


def test_roles_not_a_list(tmp_path: Path) -> None:
    err = load_error(tmp_path, MINIMAL + "    roles: nginx\n")
    assert "list" in assert_names(err, tmp_path, "web-01", "roles")


STACK_ROLES = ("firewall", "mysql", "nginx", "haproxy", "keepalived", "loadgen", "app", "exporters", "monitoring")


def assert_unknown_role(err: InventoryError, tmp_path: Path) -> None:
    text = assert_names(err, tmp_path, "web-01", "roles")
    assert "role 'nginxx' does not exist" in text
    assert "did you mean 'nginx'" in text
    assert "known roles: app, exporters, firewall, haproxy, keepalived, loadgen, monitoring, mysql, nginx" in text


def test_unknown_role_when_the_known_roles_are_given(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "    roles: [app, nginxx]\n")
    with pytest.raises(InventoryError) as info:
        load_inventory(path, known_roles=STACK_ROLES)
    assert_unknown_role(info.value, tmp_path)
    with pytest.raises(InventoryError) as info:
        parse_inventory(path.read_text(), path, known_roles=STACK_ROLES)
    assert_unknown_role(info.value, tmp_path)


def test_the_stack_loader_knows_the_stack_roles(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "    roles: [app, nginxx]\n")
    with pytest.raises(InventoryError) as info:
        load_stack_inventory(path)
    assert_unknown_role(info.value, tmp_path)
    good = write(tmp_path, MINIMAL + "    roles: [nginx, app]\n", "good.yml")
    assert load_stack_inventory(good).host("web-01").roles == ("nginx", "app")


def test_any_role_name_without_known_roles(tmp_path: Path) -> None:
    inv = load(tmp_path, MINIMAL + "    roles: [app, nginxx, app]\n")
    assert inv.host("web-01").roles == ("app", "nginxx")  # duplicates dropped, order kept


def test_bad_host_name(tmp_path: Path) -> None:
    err = load_error(tmp_path, "hosts:\n  _web 01:\n    address: 10.0.0.1\n")
    assert "invalid" in assert_names(err, tmp_path, "_web 01", None)


def test_host_not_a_mapping(tmp_path: Path) -> None:
    err = load_error(tmp_path, "hosts:\n  web-01: 10.0.0.1\n")
    assert_names(err, tmp_path, "web-01", None)


def test_bad_user(tmp_path: Path) -> None:
    err = load_error(tmp_path, MINIMAL + "    user: 'ops admin'\n")
    assert_names(err, tmp_path, "web-01", "user")


def test_group_references_unknown_host(tmp_path: Path) -> None:
    err = load_error(tmp_path, MINIMAL + "groups:\n  web: [web-01, web-1]\n")
    text = assert_names(err, tmp_path, None, "groups.web")
    assert "host 'web-1' is not defined" in text and "did you mean 'web-01'" in text


def test_group_named_like_a_host(tmp_path: Path) -> None:
    err = load_error(tmp_path, MINIMAL + "    groups: [web-01]\n")
    assert "same name as a host" in assert_names(err, tmp_path, None, "groups")


# --- ssh options ------------------------------------------------------------------


@pytest.mark.parametrize(
    "option, key",
    [
        ("connect_timeout: 0", "connect_timeout"),
        ("command_timeout: soon", "command_timeout"),
        ("keepalive: -1", "keepalive"),
        ("keepalive: 1.5", "keepalive"),
        ("trust_new_keys: 'yes'", "trust_new_keys"),
        ("proxy_jump: 'a b'", "proxy_jump"),
        ("proxy_jump: 'ops@bastion:99999'", "proxy_jump"),
        ("identity: ''", "identity"),
        ("known_hosts: $FOOBAR_UNSET_TEST_DIR/kh", "known_hosts"),
    ],
)
def test_bad_ssh_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, option: str, key: str) -> None:
    monkeypatch.delenv("FOOBAR_UNSET_TEST_DIR", raising=False)
    err = load_error(tmp_path, MINIMAL + f"    ssh:\n      {option}\n")
    assert_names(err, tmp_path, "web-01", f"ssh.{key}")


def test_ssh_paths_expand_home_and_vars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FOOBAR_KEYS", "/srv/keys")
    inv = load(
        tmp_path,
        MINIMAL + "    ssh: {identity: ~/.ssh/id, known_hosts: '${FOOBAR_KEYS}/kh', proxy_jump: 'ops@[::1]:22'}\n",
    )
    ssh = inv.host("web-01").ssh
    assert ssh.identity == tmp_path / "home" / ".ssh" / "id"
    assert ssh.known_hosts == Path("/srv/keys/kh")
    assert ssh.proxy_jump == "ops@[::1]:22"


def test_proxy_jump_loop(tmp_path: Path) -> None:
    err = load_error(
        tmp_path,
        """\
        hosts:
          a: {address: 10.0.0.1, ssh: {proxy_jump: b}}
          b: {address: 10.0.0.2, ssh: {proxy_jump: a}}
        """,
    )
    text = assert_names(err, tmp_path, "a", "ssh.proxy_jump")
    assert "a -> b -> a" in text


# --- literal secrets ----------------------------------------------------------------

LITERAL = "Hunter2-s3cr3t"


@pytest.mark.parametrize(
    "text, host, key",
    [
        (MINIMAL + f"stack:\n  mysql:\n    root_password: {LITERAL}\n", None, "stack.mysql.root_password"),
        (MINIMAL + f"defaults:\n  vars: {{api_key: {LITERAL}}}\n", None, "defaults.vars.api_key"),
        (MINIMAL + f"    vars:\n      mysql_password: {LITERAL}\n", "web-01", "vars.mysql_password"),
        (MINIMAL + f"    vars:\n      tokens: [env:A, {LITERAL}]\n", "web-01", "vars.tokens"),
        (MINIMAL + f"    vars:\n      passwords: {{app: {LITERAL}}}\n", "web-01", "vars.passwords.app"),
        (
            MINIMAL + f"groups:\n  web:\n    hosts: [web-01]\n    vars: {{SECRET: {LITERAL}}}\n",
            None,
            "groups.web.vars.SECRET",
        ),
        (MINIMAL + f"    sudo_password: {LITERAL}\n", "web-01", "sudo_password"),
        (MINIMAL + f"defaults: {{sudo_password: {LITERAL}}}\n", None, "defaults.sudo_password"),
        (MINIMAL + f"secrets:\n  mysql_app: {LITERAL}\n", None, "secrets.mysql_app"),
    ],
)
def test_literal_secret_refused_without_echo(tmp_path: Path, text: str, host: str | None, key: str) -> None:
    err = load_error(tmp_path, text)
    message = assert_names(err, tmp_path, host, key)
    assert LITERAL not in message and LITERAL not in repr(err)
    assert "env:NAME or file:PATH" in message


def test_literal_secret_in_yaml_error_is_not_echoed(tmp_path: Path) -> None:
    err = load_error(tmp_path, MINIMAL + f"    vars: {{password: {LITERAL}\n")
    assert LITERAL not in str(err)


def test_bad_secret_reference(tmp_path: Path) -> None:
    err = load_error(tmp_path, MINIMAL + "    sudo_password: 'env:'\n")
    assert "env:" in assert_names(err, tmp_path, "web-01", "sudo_password")


def test_non_secret_keys_keep_plain_values(tmp_path: Path) -> None:
    inv = load(tmp_path, MINIMAL + "    vars: {password_min_length: 12, mysql_password: '', tier: 'env:prod'}\n")
    assert inv.host("web-01").vars == {"password_min_length": 12, "mysql_password": "", "tier": "env:prod"}


# --- lab ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "section, key",
    [
        ("lab: {network: 10.77.0.0/33}", "lab.network"),
        ("lab: {network: 10.77.0.0}", "lab.network"),
        ("lab: {network: not-a-net/24}", "lab.network"),
        ("lab: {bridge: a-bridge-name-too-long}", "lab.bridge"),
        ("lab: {bridge: 'br 0'}", "lab.bridge"),
    ],
)
def test_bad_lab(tmp_path: Path, section: str, key: str) -> None:
    err = load_error(tmp_path, MINIMAL + section + "\n")
    assert_names(err, tmp_path, None, key)


# --- secrets ---------------------------------------------------------------------


def test_env_secret_resolves_and_is_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOOBAR_TEST_PW", "first-value")
    secret = Secret.parse("env:FOOBAR_TEST_PW")
    assert not secret.revealed
    assert secret.reveal() == "first-value"
    monkeypatch.setenv("FOOBAR_TEST_PW", "second-value")
    assert secret.reveal() == "first-value"


def test_file_secret_strips_one_newline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pw").write_text("s3cret\n\n")
    monkeypatch.setenv("FOOBAR_SECRET_DIR", str(tmp_path))
    assert Secret.parse("file:pw", base_dir=tmp_path).reveal() == "s3cret\n"
    assert Secret.parse("file:$FOOBAR_SECRET_DIR/pw").reveal() == "s3cret\n"


def test_file_secret_in_inventory(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "app").write_text("app-pw\n")
    inv = load(tmp_path, MINIMAL + "secrets: {app: file:secrets/app}\n")
    assert inv.secret("app").reveal() == "app-pw"


def test_secret_never_shows_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOOBAR_TEST_SHOW", "visible?")
    secret = Secret("env:FOOBAR_TEST_SHOW")
    secret.reveal()
    assert repr(secret) == "Secret('env:FOOBAR_TEST_SHOW')"
    assert str(secret) == "********" and f"{secret}" == "********"
    assert f"{secret:>20}" == "********"
    assert b"visible?" not in pickle.dumps(secret)
    assert secret == Secret("env:FOOBAR_TEST_SHOW") != Secret("env:OTHER")


def test_missing_env_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FOOBAR_TEST_MISSING", raising=False)
    with pytest.raises(SecretError) as info:
        Secret("env:FOOBAR_TEST_MISSING").reveal()
    assert "env:FOOBAR_TEST_MISSING" in str(info.value)
    assert "is not set" in str(info.value)


def test_missing_file_secret(tmp_path: Path) -> None:
    with pytest.raises(SecretError, match="file:nope"):
        Secret("file:nope", base_dir=tmp_path).reveal()


@pytest.mark.parametrize("ref", ["env:", "file:", "vault:x", "env:BAD NAME", "plain"])
def test_bad_secret_refs(ref: str) -> None:
    with pytest.raises(SecretError):
        Secret.parse(ref)


def test_unknown_scheme_does_not_echo_value() -> None:
    with pytest.raises(SecretError) as info:
        Secret.parse("hunter2:and-more")
    assert "and-more" not in str(info.value)


def test_reveal_is_thread_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOOBAR_TEST_THREADS", "shared")
    secret = Secret("env:FOOBAR_TEST_THREADS")
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(secret.reveal())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["shared"] * 8


def test_mask_known_hides_revealed_values_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOOBAR_TEST_MASK", "pw-4f2a9")
    monkeypatch.setenv("FOOBAR_TEST_UNSEEN", "pw-never-revealed")
    secret = Secret("env:FOOBAR_TEST_MASK")
    line = "mysql -ppw-4f2a9 -e 'select 1' # pw-never-revealed"
    assert "pw-4f2a9" in mask_known(line)  # not revealed yet: nothing known to mask
    secret.reveal()
    assert mask_known(line) == "mysql -p******** -e 'select 1' # pw-never-revealed"


def test_secret_helpers() -> None:
    assert is_secret_ref("env:X") and is_secret_ref("file:/x")
    assert not is_secret_ref("hunter2") and not is_secret_ref(None)
    for key in ("mysql_password", "PASSWD", "api_key", "ssh_private_key", "github_token", "client_secret"):
        assert SECRET_KEY_PATTERN.search(key)
    assert not SECRET_KEY_PATTERN.search("address")
    assert secrets_mod.MASK == "********"


# --- errors ---------------------------------------------------------------------


def test_error_tree_and_formats() -> None:
    err = InventoryError("bad", path="inv.yml", host="web-01", key="port")
    assert str(err) == "inv.yml: host 'web-01': key 'port': bad"
    assert str(InventoryError("bad", key="hosts")) == "key 'hosts': bad"
    assert isinstance(err, FoobarOpsError)
    auth = AuthError("web-01", "permission denied")
    assert isinstance(auth, ConnectionFailed) and auth.host == "web-01"
    assert auth.reason == "permission denied"


def test_a_number_under_a_password_key_is_a_literal_secret(tmp_path: Path) -> None:
    with pytest.raises(InventoryError) as info:
        load(tmp_path, MINIMAL + "    vars: {db_password: 987654}\n")
    assert "db_password" in str(info.value) and "literal secret" in str(info.value)
    assert "987654" not in str(info.value)
