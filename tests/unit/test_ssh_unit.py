"""The SSH layer without hosts: error classification, strict host key policies, prefixed output,
and how connections are configured (no connection is opened)."""

from __future__ import annotations

import io

import paramiko
import pytest

from foobar_ops.core import hostkeys, ssh
from foobar_ops.core.errors import AuthError, HostKeyError, HostUnreachable
from foobar_ops.core.inventory import load_inventory
from foobar_ops.core.secrets import Secret


@pytest.fixture
def inv(tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text("")
    path = tmp_path / "inv.yml"
    path.write_text(f"""
defaults:
  user: ops
  ssh: {{known_hosts: {known}, connect_timeout: 0.5, keepalive: 7}}
hosts:
  web-01: {{address: 10.77.0.11, roles: [nginx]}}
  lb-01: {{address: 10.77.0.10, roles: [haproxy]}}
  web-02: {{address: 10.77.0.12, roles: [nginx], ssh: {{proxy_jump: lb-01}}}}
""")
    return load_inventory(path)


def test_timeouts_and_refusals_are_unreachable(inv):
    host = inv.host("web-01")
    assert isinstance(ssh.classify(host, TimeoutError()), HostUnreachable)
    err = ssh.classify(
        host,
        paramiko.ssh_exception.NoValidConnectionsError(
            {("10.77.0.11", 22): ConnectionRefusedError(111, "Connection refused")}
        ),
    )
    assert isinstance(err, HostUnreachable) and "Connection refused" in str(err) and "10.77.0.11:22" in str(err)
    assert "0.5 s" in str(ssh.classify(host, TimeoutError()))


def test_a_changed_key_names_both_fingerprints_and_what_to_do(inv):
    host = inv.host("web-01")
    old, new = paramiko.RSAKey.generate(1024), paramiko.RSAKey.generate(1024)
    err = ssh.classify(host, paramiko.BadHostKeyException("10.77.0.11", new, old))
    assert isinstance(err, HostKeyError) and "CHANGED" in str(err)
    assert hostkeys.fingerprint(old) in str(err) and hostkeys.fingerprint(new) in str(err)
    assert "ssh-keygen -R 10.77.0.11" in str(err)


def test_a_refused_login_is_an_auth_error(inv):
    err = ssh.classify(inv.host("web-01"), paramiko.AuthenticationException("Authentication failed."))
    assert isinstance(err, AuthError) and "ops@10.77.0.11:22" in str(err)


def test_an_unknown_key_is_refused_by_default(inv, tmp_path):
    client = paramiko.SSHClient()
    hostkeys.apply_policy(client, "web-01", tmp_path / "known_hosts", trust_new=False)
    with pytest.raises(HostKeyError, match="is not known"):
        client._policy.missing_host_key(client, "10.77.0.11", paramiko.RSAKey.generate(1024))


def test_trusting_new_keys_records_them(tmp_path):
    store = tmp_path / "kh"
    client = paramiko.SSHClient()
    hostkeys.apply_policy(client, "web-01", store, trust_new=True)
    client._policy.missing_host_key(client, "10.77.0.11", paramiko.RSAKey.generate(1024))
    assert store.read_text().startswith("10.77.0.11 ssh-rsa ")


def test_a_missing_known_hosts_file_is_named(tmp_path):
    with pytest.raises(HostKeyError, match="does not exist"):
        hostkeys.apply_policy(paramiko.SSHClient(), "web-01", tmp_path / "nope", trust_new=False)


def test_connections_are_strict_with_float_timeouts_and_jump_through_inventory_hosts(inv):
    conn = ssh.connect(inv.host("web-02"), inv)
    assert isinstance(conn.client._policy, hostkeys.RefuseUnknown)
    assert conn.connect_kwargs["timeout"] == 0.5 and conn.connect_timeout is None
    assert conn.gateway is not None and conn.gateway.host == "10.77.0.10"
    assert isinstance(conn.gateway.client._policy, hostkeys.RefuseUnknown)


def test_prefixed_output_writes_whole_lines_with_the_host_and_masks_secrets(monkeypatch):
    monkeypatch.setenv("FOOBAR_TEST_PREFIX_SECRET", "s3cr3t-prefix-value")
    Secret("env:FOOBAR_TEST_PREFIX_SECRET").reveal()
    out = io.StringIO()
    stream = ssh.PrefixedOutput("web-01", out)
    stream.write("one\ntw")
    assert out.getvalue() == "web-01 | one\n"
    stream.write("o s3cr3t-prefix-value\n")
    stream.flush()
    assert out.getvalue() == "web-01 | one\nweb-01 | two ********\n"


def test_run_many_gives_every_host_an_outcome_even_when_one_raises(inv, monkeypatch):
    class FakeRemote:
        def __init__(self, host, inventory):
            self.host = host

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        def run(self, command, **kw):
            if self.host.name == "web-01":
                raise HostUnreachable("web-01", "10.77.0.11:22 unreachable: no answer")
            if self.host.name == "lb-01":
                raise RuntimeError("surprise")
            return ssh.Outcome(self.host.name, "ok", 0, "5.10\n")

    monkeypatch.setattr(ssh, "Remote", FakeRemote)
    seen = []
    outcomes = ssh.run_many(inv.select("all"), "uname -r", on_outcome=seen.append, cap=2)
    assert [(o.host, o.outcome) for o in outcomes] == [("web-01", "unreachable"), ("lb-01", "failed"), ("web-02", "ok")]
    assert "surprise" in outcomes[1].error and sorted(o.host for o in seen) == ["lb-01", "web-01", "web-02"]


@pytest.mark.parametrize(
    "code, seconds, error",
    [
        (0, 0.1, None),
        (3, 0.1, "exit code 3"),
        (-1, 1.02, "timed out after 1 s"),
        (-1, 0.2, "the connection closed before the command reported an exit status"),
    ],
)
def test_exit_errors_tell_a_timeout_from_a_lost_channel(code, seconds, error):
    assert ssh._exit_error(code, seconds, 1.0) == error
