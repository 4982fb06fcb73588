"""`tls status` and `tls rotate` without hosts: HAProxy's `show ssl cert` answers parsed, levels by
days left, a certificate checked before any host sees it (each refusal naming what is wrong, never
the key), the inventory's references rewritten in place, and the push script run in a real shell
against a stand-in for HAProxy's runtime API."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path

import pytest

from foobar_ops.core.errors import TLSError
from foobar_ops.core.inventory import load_inventory
from foobar_ops.core.secrets import Secret
from foobar_ops.lab import tls as lab_tls
from foobar_ops.stack import certs, tls
from foobar_ops.stack.inventory_file import set_secrets
from foobar_ops.stack.lb import push_script
from tests.unit.inventories import lab_doc, write_doc

SHOW = """Filename: /etc/haproxy/certs/foobar.com.pem
Status: Used
Serial: 0A1B2C
notBefore: Dec  6 01:22:18 2026 GMT
notAfter: Mar  6 01:22:18 2027 GMT
Subject Alternative Name: DNS:foobar.com, DNS:www.foobar.com
Algorithm: EC256
SHA1 FingerPrint: 00
Subject: /CN=foobar.com
Issuer: /CN=foobar-ops lab CA
Chain Subject: /CN=foobar-ops lab CA
Chain Issuer: /CN=foobar-ops lab CA
"""
NOW = dt.datetime(2027, 2, 24, 1, 22, 18, tzinfo=dt.UTC)  # 10 days before notAfter


def test_show_ssl_cert_is_parsed_with_days_left_and_its_level():
    cert = tls.parse_cert(SHOW, "lb-01", NOW)
    assert (cert.lb, cert.path, cert.subject, cert.issuer) == (
        "lb-01",
        "/etc/haproxy/certs/foobar.com.pem",
        "/CN=foobar.com",
        "/CN=foobar-ops lab CA",
    )
    assert cert.sans == ["foobar.com", "www.foobar.com"] and cert.serial == "A1B2C"
    assert cert.not_after == "2027-03-06T01:22:18Z" and cert.days_left == 10.0 and cert.level == "warn"
    assert tls.parse_cert(SHOW, "lb-01", NOW - dt.timedelta(days=20)).level == "ok"
    assert tls.parse_cert(SHOW, "lb-01", NOW + dt.timedelta(days=9)).level == "fail"


def test_the_list_of_served_files_leaves_out_comments_and_open_transactions():
    text = "# transaction\n*/etc/haproxy/certs/a.pem\n# filename\n/etc/haproxy/certs/a.pem\n/etc/haproxy/certs/b.pem\n"
    assert tls.parse_cert_list(text) == ["/etc/haproxy/certs/a.pem", "/etc/haproxy/certs/b.pem"]


def test_an_answer_without_an_end_date_is_an_error_naming_the_load_balancer():
    with pytest.raises(TLSError, match="lb-02: .* lacks notAfter"):
        tls.parse_cert(SHOW.replace("notAfter", "notafter"), "lb-02", NOW)


def test_the_status_fails_under_3_days_and_on_any_load_balancer_that_could_not_say():
    warn = tls.parse_cert(SHOW, "lb-01", NOW)
    status = tls.TLSStatus(certs=[warn])
    assert status.ok and len(status.warnings) == 1 and "10 days left (under 20)" in status.warnings[0]
    assert not tls.TLSStatus(certs=[tls.parse_cert(SHOW, "lb-01", NOW + dt.timedelta(days=8))]).ok
    assert not tls.TLSStatus(certs=[warn], errors=["lb-02: connection refused"]).ok
    assert not tls.TLSStatus().ok  # nothing served is not ok
    doc = status.as_json()
    assert set(doc) >= {"ok", "certs"} and set(doc["certs"][0]) >= {
        "lb",
        "subject",
        "sans",
        "serial",
        "issuer",
        "not_after",
        "days_left",
    }


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ca")
    lab_tls.ensure_ca(folder)
    return folder


def pair(folder: Path) -> tuple[Secret, Secret]:
    return Secret(f"file:{folder}/site.crt"), Secret(f"file:{folder}/site.key")


def test_a_good_certificate_is_checked_against_the_ca_for_the_site(ca, tmp_path):
    lab_tls.issue(ca, ["foobar.com", "www.foobar.com"], tmp_path)
    facts = certs.check_pair(*pair(tmp_path), ["foobar.com", "www.foobar.com"], str(ca / "ca.crt"))
    assert facts.sans == ["foobar.com", "www.foobar.com"] and 89 < facts.days_left <= 90


def test_each_bad_certificate_is_refused_naming_what_is_wrong_and_never_the_key(ca, tmp_path):
    lab_tls.issue(ca, ["foobar.com"], tmp_path / "good")
    lab_tls.issue(ca, ["example.org"], tmp_path / "other")
    stranger = tmp_path / "stranger-ca"
    lab_tls.ensure_ca(stranger)
    lab_tls.issue(stranger, ["foobar.com"], tmp_path / "foreign")
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=91)
    lab_tls.issue(ca, ["foobar.com"], tmp_path / "expired", days=90, valid_from=old)
    (tmp_path / "junk.crt").write_text("not a certificate at all\n")
    good_cert, good_key = pair(tmp_path / "good")
    cases = [
        (pair(tmp_path / "other"), "does not name foobar.com (its names: example.org)"),
        ((good_cert, pair(tmp_path / "other")[1]), "is not the key of certificate"),
        (pair(tmp_path / "foreign"), "does not verify against"),
        (pair(tmp_path / "expired"), "expired"),
        ((Secret(f"file:{tmp_path}/junk.crt"), good_key), "holds no PEM certificate"),
        ((good_cert, Secret(f"file:{tmp_path}/junk.crt")), "not an unencrypted PEM private key"),
        ((good_cert, Secret(f"file:{tmp_path}/none.key")), "cannot read file"),
    ]
    key_text = (tmp_path / "good" / "site.key").read_text()
    for (cert, key), said in cases:
        with pytest.raises(TLSError) as err:
            certs.check_pair(cert, key, ["foobar.com"], str(ca / "ca.crt"))
        assert said in str(err.value), (said, str(err.value))
        assert "PRIVATE KEY" not in str(err.value) and key_text.splitlines()[1] not in str(err.value)


def test_cert_and_key_go_together(tmp_path):
    inv = load_inventory(write_doc(tmp_path, lab_doc()))
    with pytest.raises(TLSError, match="--cert and --key go together"):
        tls.with_certificate(inv, "file:/x.crt", None)
    assert tls.with_certificate(inv, None, None) is inv
    swapped = tls.with_certificate(inv, "file:/x.crt", "env:KEY")
    assert swapped.secrets["tls_cert"].ref == "file:/x.crt" and swapped.secrets["tls_key"].ref == "env:KEY"
    assert "tls_cert" not in inv.secrets  # the inventory itself unchanged


def test_new_references_are_written_into_the_inventory_keeping_its_comments(tmp_path):
    path = tmp_path / "inv.yml"
    path.write_text(
        "# my stack\nhosts:\n  lb-01: {address: 10.0.0.1, roles: [haproxy]}\n"
        "secrets:\n  # the site's pair\n  tls_cert: file:/old.crt\n  tls_key: file:/old.key\n"
    )
    set_secrets(path, {"tls_cert": "file:/new.crt", "tls_key": "file:/new.key"})
    text = path.read_text()
    assert "# my stack" in text and "# the site's pair" in text
    assert "tls_cert: file:/new.crt" in text and "tls_key: file:/new.key" in text and "old" not in text


# --- the push, in a real shell, against a stand-in for the runtime API ----------------------------

FAKE_SOCAT = r"""#!/bin/sh
# a stand-in for `socat stdio unix-connect:SOCKET`: answers as HAProxy's runtime API does
input=$(cat)
printf '%s\n--\n' "$input" >> "$LOG"
case "$input" in
  "show ssl cert") printf '# filename\n%s\n' "$SERVED";;
  "set ssl cert "*) [ -n "$FAIL_SET" ] && echo "unable to load" || echo "Transaction created for certificate $CERT!";;
  "commit ssl cert "*) printf 'Committing %s\nSuccess!\n' "$CERT";;
  "abort ssl cert "*) echo "Transaction aborted";;
esac
"""


def run_push(tmp_path: Path, served: str, fail_set: bool = False) -> tuple[subprocess.CompletedProcess, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "socat").write_text(FAKE_SOCAT)
    (bin_dir / "socat").chmod(0o755)
    sock = tmp_path / "admin.sock"
    import socket as sk

    if not sock.exists():  # the script only asks that the socket exists
        with sk.socket(sk.AF_UNIX) as listener:
            listener.bind(str(sock))
    cert = tmp_path / "certs dir" / "site's.pem"  # a path that needs quoting
    cert.parent.mkdir(exist_ok=True)
    cert.write_text("-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n\n-----BEGIN PRIVATE KEY-----\nBBB\n")
    log = tmp_path / "api.log"
    log.write_text("")
    env = dict(
        os.environ,
        PATH=f"{bin_dir}:{os.environ['PATH']}",
        LOG=str(log),
        SERVED=served.replace("CERT", str(cert)),
        CERT=str(cert),
        FAIL_SET="1" if fail_set else "",
    )
    done = subprocess.run(["sh", "-c", push_script(str(cert), str(sock))], capture_output=True, text=True, env=env)
    return done, log.read_text()


def test_the_push_sets_then_commits_the_file_without_its_blank_lines(tmp_path):
    done, log = run_push(tmp_path, "CERT")
    assert done.returncode == 0 and done.stdout.strip() == "pushed", done
    calls = log.split("\n--\n")
    assert calls[0] == "show ssl cert"
    assert calls[1].startswith(f"set ssl cert {tmp_path}/certs dir/site's.pem <<\n-----BEGIN CERTIFICATE-----")
    assert "\n\n" not in calls[1].rstrip("\n")  # the payload has no blank line until its end
    assert calls[2] == f"commit ssl cert {tmp_path}/certs dir/site's.pem"


def test_a_file_haproxy_does_not_serve_yet_is_left_to_its_next_start(tmp_path):
    done, log = run_push(tmp_path, "/etc/haproxy/certs/other.pem")
    assert done.returncode == 0 and done.stdout.strip() == "not-served"
    assert "set ssl cert" not in log


def test_a_refused_set_is_aborted_and_fails_the_push(tmp_path):
    done, log = run_push(tmp_path, "CERT", fail_set=True)
    assert done.returncode == 1 and "set ssl cert: unable to load" in done.stderr
    assert "abort ssl cert" in log and "commit ssl cert" not in log


def test_the_site_and_its_www_are_both_needed_names_compare_without_case_and_the_chain_is_certificates_only(
    ca, tmp_path
):
    lab_tls.issue(ca, ["foobar.com"], tmp_path / "apex")
    with pytest.raises(TLSError, match=r"does not name www\.foobar\.com \(its names: foobar\.com\)"):
        certs.check_pair(*pair(tmp_path / "apex"), ["foobar.com", "www.foobar.com"], str(ca / "ca.crt"))
    lab_tls.issue(ca, ["foobar.com", "www.foobar.com"], tmp_path / "both")
    both_cert, both_key = pair(tmp_path / "both")
    assert certs.check_pair(both_cert, both_key, ["Foobar.COM.", "www.foobar.com"], str(ca / "ca.crt"))
    # a key pasted into the chain would be the one HAProxy reads first: refused, naming no key
    mixed = tmp_path / "mixed.crt"
    mixed.write_text((tmp_path / "both" / "site.crt").read_text() + (tmp_path / "apex" / "site.key").read_text())
    with pytest.raises(TLSError, match="holds PRIVATE KEY besides certificates") as err:
        certs.check_pair(Secret(f"file:{mixed}"), both_key, ["foobar.com"], str(ca / "ca.crt"))
    assert "BEGIN" not in str(err.value)
    # the CA first, the leaf second: said so, not "not its key"
    chain = (tmp_path / "both" / "site.crt").read_text()
    blocks = [b + "-----END CERTIFICATE-----\n" for b in chain.split("-----END CERTIFICATE-----\n") if b.strip()]
    (tmp_path / "reversed.crt").write_text("".join(reversed(blocks)))
    with pytest.raises(TLSError, match="the chain must start with the certificate of key"):
        certs.check_pair(Secret(f"file:{tmp_path}/reversed.crt"), both_key, ["foobar.com"], str(ca / "ca.crt"))


def test_without_a_ca_named_a_private_certificate_is_checked_against_this_machines_trust_store(ca, tmp_path):
    lab_tls.issue(ca, ["foobar.com"], tmp_path)
    with pytest.raises(TLSError, match="does not verify against this machine's trust store .*set stack.tls.ca"):
        certs.check_pair(*pair(tmp_path), ["foobar.com"], None)


def test_a_bad_pair_in_the_inventory_stops_the_haproxy_role_before_any_state(ca, tmp_path):
    from foobar_ops.stack.roles import haproxy

    lab_tls.issue(ca, ["example.org"], tmp_path / "other")
    doc = lab_doc(tls=True)
    doc["stack"]["tls"] = {"ca": str(ca / "ca.crt")}
    doc["secrets"].update(tls_cert=f"file:{tmp_path}/other/site.crt", tls_key=f"file:{tmp_path}/other/site.key")
    inv = load_inventory(write_doc(tmp_path, doc))
    with pytest.raises(TLSError, match="does not name foobar.com"):
        haproxy.states(inv.host("lb-01"), inv)


def test_a_missing_ca_file_is_named_not_a_traceback(tmp_path):
    from foobar_ops.core.errors import TopologyError
    from foobar_ops.stack import verify

    doc = lab_doc(tls=True)
    doc["stack"]["tls"] = {"ca": str(tmp_path / "nowhere.crt")}
    inv = load_inventory(write_doc(tmp_path, doc))
    with pytest.raises(TopologyError, match=r"stack.tls.ca .*nowhere.crt: cannot load it"):
        verify.tls_context(inv)


def test_status_names_a_load_balancer_it_cannot_reach_and_keeps_the_others(monkeypatch, tmp_path):
    from foobar_ops.core.errors import HostUnreachable
    from foobar_ops.stack import lb

    class Fake:
        def __init__(self, inventory, host=None, record=True):
            if host == "lb-02":
                raise HostUnreachable("lb-02", "no route to host")
            self.host = host

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        def command(self, line):
            return "# filename\n/etc/haproxy/certs/foobar.com.pem\n" if line == "show ssl cert" else SHOW

    monkeypatch.setattr(lb, "HAProxy", Fake)
    doc = lab_doc(tls=True)
    inv = load_inventory(write_doc(tmp_path, doc))
    found = tls.status(inv, now=NOW)
    assert [c.lb for c in found.certs] == ["lb-01"] and found.errors == ["lb-02: no route to host"]
    assert not found.ok


def test_the_lab_keeps_a_good_site_pair_and_issues_a_new_one_for_a_pair_cut_in_two(tmp_path):
    names = ["foobar.com", "www.foobar.com"]
    first = lab_tls.ensure_site(tmp_path, names)
    assert first is not None and lab_tls.ensure_site(tmp_path, names) is None  # kept
    key = (tmp_path / "site.key").read_text()
    lab_tls.issue(tmp_path, names, tmp_path / "other")
    (tmp_path / "site.key").write_text((tmp_path / "other" / "site.key").read_text())  # a pair cut in two
    again = lab_tls.ensure_site(tmp_path, names)
    assert again is not None and again.serial != first.serial and (tmp_path / "site.key").read_text() != key
    assert lab_tls.ensure_site(tmp_path, ["foobar.org", "www.foobar.org"]) is not None  # other names: issued


@pytest.mark.parametrize(
    "served, ok", [("SAME", True), ("1234567890ABCDEF1234567890ABCDEF12345678", False), ("", True)]
)
def test_the_push_is_needed_only_when_haproxy_serves_another_certificate_from_the_file(tmp_path, served, ok):
    from foobar_ops.stack.lb import serves_script

    fingerprint = "AB" * 20
    answer = (
        "" if not served else f"Filename: /x.pem\nSHA1 FingerPrint: {fingerprint if served == 'SAME' else served}\n"
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "socat").write_text(f"#!/bin/sh\ncat >/dev/null\nprintf '%s' '{answer}'\n")
    (bin_dir / "socat").chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    done = subprocess.run(["sh", "-c", serves_script("/x.pem", fingerprint, str(tmp_path / "s"))], env=env)
    assert (done.returncode == 0) is ok


def test_a_rotation_names_every_load_balancer_that_does_not_serve_the_new_serial():
    path = "/etc/haproxy/certs/foobar.com.pem"
    new = tls.parse_cert(SHOW, "lb-01", NOW)  # serial A1B2C
    old = tls.parse_cert(SHOW.replace("Serial: 0A1B2C", "Serial: 77"), "lb-02", NOW)
    other_file = tls.parse_cert(SHOW.replace("foobar.com.pem", "other.pem"), "lb-03", NOW)
    found = tls.TLSStatus(certs=[new, old, other_file], errors=["lb-04: no route to host"])
    served, errors = tls.unserved(found, path, "0A1B2C")
    assert served == {"lb-01": "A1B2C", "lb-02": "77"}
    assert errors[0] == "lb-04: no route to host"
    assert [e.split(" ", 3)[:3] for e in errors[1:]] == [["lb-02", "serves", "serial"], ["lb-03", "serves", "nothing"]]
    assert tls.unserved(tls.TLSStatus(certs=[new]), path, "A1B2C") == ({"lb-01": "A1B2C"}, [])


def test_without_stack_tls_status_and_rotate_say_so_before_any_host(tmp_path):
    inv = load_inventory(write_doc(tmp_path, lab_doc()))  # no stack.tls, hosts unreachable from here
    with pytest.raises(TLSError, match="stack.tls is not set"):
        tls.status(inv)
    with pytest.raises(TLSError, match="stack.tls is not set: there is no certificate to rotate"):
        tls.rotate(inv)
