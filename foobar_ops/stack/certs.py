"""A site certificate and its key, checked on this machine before any host sees them: the chain,
the key, the names, the dates and the trust (`check_pair`); and the fingerprint HAProxy knows a
certificate by (`leaf_fingerprint`). Used by the haproxy role (every apply) and by `tls rotate`."""

from __future__ import annotations

import datetime as dt
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..core.errors import FoobarOpsError, TLSError
from ..core.secrets import Secret
from .topology import domain


def site_names(inventory: Any) -> list[str]:
    """The names the site's certificate must carry: the domain (and www. of it, which the load
    balancers also redirect and serve)."""
    return [domain(inventory), f"www.{domain(inventory)}"]


@dataclass(frozen=True)
class CertFacts:
    """What was checked of a certificate and key about to be served."""

    subject: str
    sans: list[str]
    serial: str
    issuer: str
    not_after: str
    days_left: float


def _pem_blocks(text: str, kind: str) -> Iterator[str]:
    pattern = re.compile(rf"-----BEGIN {kind}-----.+?-----END {kind}-----", re.DOTALL)
    yield from (m.group(0) for m in pattern.finditer(text))


def _name(value: str) -> str:
    """A DNS name as certificates compare it: lower case, no trailing dot."""
    return value.lower().rstrip(".")


def trust_file(ca_file: str | None) -> str | None:
    """The CA file a certificate is verified against: the inventory's (stack.tls.ca), else this
    machine's trust store (None when it has none)."""
    if ca_file:
        return ca_file
    import ssl

    defaults = ssl.get_default_verify_paths()
    for candidate in (defaults.cafile, defaults.openssl_cafile, "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and os.path.isfile(candidate):
            return candidate
    return None


def leaf_fingerprint(cert: Secret) -> str:
    """The SHA-1 fingerprint of a chain's first certificate, as HAProxy's `show ssl cert FILE` shows
    it (upper-case hex): how a load balancer is asked whether it serves that certificate already."""
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    first = next(_pem_blocks(cert.reveal(), "CERTIFICATE"), None)
    if first is None:
        raise TLSError(f"certificate {cert.ref}: holds no PEM certificate")
    der = x509.load_pem_x509_certificate(first.encode()).public_bytes(serialization.Encoding.DER)
    return hashlib.sha1(der).hexdigest().upper()


def check_pair(
    cert: Secret, key: Secret, names: list[str], ca_file: str | None = None, now: dt.datetime | None = None
) -> CertFacts:
    """Check a certificate chain and key before any host sees them (TLSError naming the reference
    and what is wrong; the key's value is never shown): the chain holds certificates only, leaf
    first; the key is the leaf's; the leaf names every one of `names` (the site and www. of it,
    both served); it is valid now (one with little time left is served, an emergency may need it,
    and a warning says so); and it verifies for the site against ca_file, or this machine's trust
    store when there is none."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.utils import CryptographyDeprecationWarning
    from cryptography.x509 import verification

    try:
        chain_text = cert.reveal()
    except FoobarOpsError as err:
        raise TLSError(f"certificate {cert.ref}: {err}") from None
    kinds = sorted(set(re.findall(r"-----BEGIN ([A-Z0-9 ]+)-----", chain_text)) - {"CERTIFICATE"})
    if kinds:
        raise TLSError(
            f"certificate {cert.ref} holds {', '.join(kinds)} besides certificates: the chain is certificates "
            "only (the key is tls_key)"
        )
    blocks = list(_pem_blocks(chain_text, "CERTIFICATE"))
    if not blocks:
        raise TLSError(f"certificate {cert.ref}: holds no PEM certificate")
    try:
        chain = [x509.load_pem_x509_certificate(b.encode()) for b in blocks]
    except ValueError as err:
        raise TLSError(f"certificate {cert.ref}: not a valid PEM certificate ({err})") from None
    leaf = chain[0]
    try:
        key_obj = serialization.load_pem_private_key(key.reveal().encode(), password=None)
    except FoobarOpsError as err:
        raise TLSError(f"key {key.ref}: {err}") from None
    except (ValueError, TypeError):
        raise TLSError(f"key {key.ref}: not an unencrypted PEM private key") from None
    spki = serialization.PublicFormat.SubjectPublicKeyInfo

    def public(c: Any) -> bytes:
        return bytes(c.public_key().public_bytes(serialization.Encoding.PEM, spki))

    mine = key_obj.public_key().public_bytes(serialization.Encoding.PEM, spki)
    if mine != public(leaf):
        if any(mine == public(c) for c in chain[1:]):
            raise TLSError(
                f"certificate {cert.ref}: the chain must start with the certificate of key {key.ref} (the leaf), "
                "then the intermediates"
            )
        raise TLSError(f"key {key.ref} is not the key of certificate {cert.ref} (serial {leaf.serial_number:X})")
    try:
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName
        )
    except x509.ExtensionNotFound:
        sans = []
    missing = [n for n in names if _name(n) not in {_name(s) for s in sans}]
    if missing:
        raise TLSError(
            f"certificate {cert.ref} does not name {', '.join(missing)} (its names: {', '.join(sans) or 'none'})"
        )
    now = now or dt.datetime.now(dt.UTC)
    start, end = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    if now < start:
        raise TLSError(f"certificate {cert.ref} is not valid before {start.isoformat()}")
    left = (end - now).total_seconds() / 86400
    if left <= 0:
        raise TLSError(f"certificate {cert.ref} expired {end.isoformat()}")
    trusted = trust_file(ca_file)
    if trusted is None:
        raise TLSError(f"certificate {cert.ref}: no CA to verify it against: set stack.tls.ca")
    try:
        with open(trusted, "rb") as found, warnings.catch_warnings():
            # a system store may hold an old root with a non-positive serial: cryptography warns of
            # it on every load, on the user's terminal; it is not this certificate's business
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            roots = x509.load_pem_x509_certificates(found.read())
    except (OSError, ValueError) as err:
        what = f"stack.tls.ca {trusted}" if ca_file else f"this machine's trust store {trusted}"
        raise TLSError(f"{what}: cannot read its certificates ({err})") from None
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store(roots))
        .time(now)
        .build_server_verifier(x509.DNSName(_name(names[0])))
    )
    try:
        verifier.verify(leaf, chain[1:])
    except verification.VerificationError as err:
        where = ca_file or f"this machine's trust store ({trusted}; set stack.tls.ca for a private CA)"
        raise TLSError(f"certificate {cert.ref} does not verify against {where} for {names[0]}: {err}") from None
    return CertFacts(
        subject=leaf.subject.rfc4514_string(),
        sans=list(sans),
        serial=f"{leaf.serial_number:X}",
        issuer=leaf.issuer.rfc4514_string(),
        not_after=end.isoformat().replace("+00:00", "Z"),
        days_left=round(left, 2),
    )
