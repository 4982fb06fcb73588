"""https at the load balancers, without hosts: the lab CA and the site certificates it issues
(critical basicConstraints and keyUsage, at most 90 days, foobar.com and www.foobar.com), and the
HAProxy configuration and certificate file the haproxy role declares when the inventory has
stack.tls (Mozilla's intermediate profile, a 308 to https, HSTS), and none of it when it has not."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from foobar_ops.core.errors import LabError
from foobar_ops.lab import tls
from foobar_ops.stack import load_inventory
from foobar_ops.stack.roles import states_for
from foobar_ops.stack.topology import TopologyError
from tests.unit.inventories import lab_doc, write_doc


@pytest.fixture(scope="module")
def issued(tmp_path_factory) -> tuple[Path, tls.Issued]:
    folder = tmp_path_factory.mktemp("tls")
    return folder / "ca", tls.issue(folder / "ca", ["foobar.com", "www.foobar.com"], folder / "site")


def test_the_lab_ca_marks_its_constraints_critical_and_keeps_its_key_private(issued):
    ca_folder, _ = issued
    ca = x509.load_pem_x509_certificate((ca_folder / "ca.crt").read_bytes())
    constraints = ca.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS)
    usage = ca.extensions.get_extension_for_oid(ExtensionOID.KEY_USAGE)
    assert constraints.critical and constraints.value.ca and usage.critical and usage.value.key_cert_sign
    assert (ca_folder / "ca.key").stat().st_mode & 0o777 == 0o600 and ca_folder.stat().st_mode & 0o777 == 0o700
    assert tls.ensure_ca(ca_folder).read_bytes() == (ca_folder / "ca.crt").read_bytes()  # made once


def test_a_site_certificate_names_both_hosts_lives_90_days_and_chains_to_the_ca(issued):
    ca_folder, site = issued
    leaf, ca = x509.load_pem_x509_certificates(site.cert.read_bytes())
    assert ca.subject == x509.load_pem_x509_certificate((ca_folder / "ca.crt").read_bytes()).subject
    leaf.verify_directly_issued_by(ca)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert names == ["foobar.com", "www.foobar.com"] and leaf.serial_number == site.serial
    life = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert life == dt.timedelta(days=90) and site.key.stat().st_mode & 0o777 == 0o600


def test_a_site_certificate_longer_than_90_days_is_refused(tmp_path):
    with pytest.raises(LabError, match="1 to 90 days"):
        tls.issue(tmp_path / "ca", ["foobar.com"], tmp_path / "site", days=366)


def inventory(tmp_path: Path, issued, with_tls=True, key=True):
    doc = lab_doc()
    if with_tls:
        doc["stack"]["tls"] = {"ca": str(issued[0] / "ca.crt")}  # the CA the role checks the pair against
        doc["secrets"]["tls_cert"] = f"file:{issued[1].cert}"
        if key:
            doc["secrets"]["tls_key"] = f"file:{issued[1].key}"
    return load_inventory(write_doc(tmp_path, doc))


def haproxy_states(inv) -> dict:
    return {st.id: st for st in states_for(inv.host("lb-02"), inv, ["haproxy"])}


def test_with_stack_tls_haproxy_serves_https_to_the_intermediate_profile(tmp_path, issued):
    states = haproxy_states(inventory(tmp_path, issued))
    cfg = states["haproxy:config"].content.decode()
    assert "bind :443 ssl crt /etc/haproxy/certs/foobar.com.pem alpn h2,http/1.1" in cfg
    assert "ssl-default-bind-options prefer-client-ciphers ssl-min-ver TLSv1.2 no-tls-tickets" in cfg
    assert "ssl-default-bind-curves X25519:prime256v1:secp384r1" in cfg
    assert "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256" in cfg
    assert "DHE-RSA" not in cfg.replace("ECDHE-RSA", "")  # no DHE: no dhparam
    assert "http-request redirect scheme https code 308 unless { ssl_fc }" in cfg
    assert 'Strict-Transport-Security "max-age=63072000"' in cfg and "X-Forwarded-Proto https" in cfg
    assert "haproxy:cert" in states["haproxy:config"].require  # validated with the certificate in place


def test_the_certificate_file_holds_chain_and_key_and_is_never_shown(tmp_path, issued):
    cert = haproxy_states(inventory(tmp_path, issued))["haproxy:cert"]
    assert cert.mode == "0600" and cert.sensitive
    text = cert.content.decode()
    assert text.count("BEGIN CERTIFICATE") == 2 and "BEGIN PRIVATE KEY" in text
    plan = cert.plan(cert.fact().parse("type=absent\nparent=yes\n"))
    assert "PRIVATE KEY" not in (plan.diff or "") and "holds secrets" in (plan.diff or "")


def test_without_stack_tls_nothing_of_it_is_declared(tmp_path, issued):
    states = haproxy_states(inventory(tmp_path, issued, with_tls=False))
    cfg = states["haproxy:config"].content.decode()
    assert "haproxy:cert" not in states and "ssl" not in cfg and ":443" not in cfg and "redirect" not in cfg


def test_stack_tls_without_its_key_is_refused_naming_the_secret(tmp_path, issued):
    with pytest.raises(TopologyError, match="secrets.tls_key"):
        haproxy_states(inventory(tmp_path, issued, key=False))


def test_the_https_port_the_load_balancers_bind_is_the_one_their_firewall_opens(tmp_path, issued):
    from foobar_ops.stack import firewall

    doc = lab_doc()
    doc["stack"]["tls"] = {"port": 8443, "ca": str(issued[0] / "ca.crt")}
    doc["stack"]["firewall"] = {"admin_sources": ["10.77.0.1"]}
    doc["secrets"].update(tls_cert=f"file:{issued[1].cert}", tls_key=f"file:{issued[1].key}")
    inv = load_inventory(write_doc(tmp_path, doc))
    assert "bind :8443 ssl crt" in haproxy_states(inv)["haproxy:config"].content.decode()
    ports = {o.port for o in firewall.openings(inv.host("lb-01"), inv) if o.sources is None}
    assert ports == {80, 8443}
