"""The lab's own certificate authority, made once and kept private under the lab's state, and the
site's certificates it issues (foobar.com and www.foobar.com, at most 90 days).

The CA's basicConstraints and keyUsage are marked critical, as strict checkers (sslyze) require;
its key never leaves the control machine (mode 0600 in a 0700 folder). A site certificate is a
PEM chain (the leaf, then the CA) and its key a separate PEM file, both by path: the inventory names
them as secrets (file:...).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import LabError

#: a site certificate's longest life: the intermediate profile caps it at 366 days, 90 is the advice
MAX_DAYS = 90


@dataclass(frozen=True)
class Issued:
    """A site certificate issued by the lab CA: where its chain and key are, its serial and end."""

    cert: Path
    key: Path
    serial: int
    not_after: dt.datetime


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(path.name + ".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    tmp.replace(path)


def ensure_ca(folder: Path, days: int = 3650) -> Path:
    """Make the lab CA once (an EC P-256 key, a self-signed certificate); return its certificate's
    path (folder/ca.crt; the key is folder/ca.key, mode 0600)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    cert_path, key_path = folder / "ca.crt", folder / "ca.key"
    if cert_path.is_file() and key_path.is_file():
        return cert_path
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "foobar-ops lab CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(
        key_path,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path


def issue(
    folder: Path, names: list[str], out: Path, days: int = MAX_DAYS, valid_from: dt.datetime | None = None
) -> Issued:
    """Issue a site certificate from the lab CA in `folder` for `names` (the first is the subject),
    valid `days` (1 to MAX_DAYS) from `valid_from` (default: now); write out/site.crt (the chain)
    and out/site.key (0600); return what was issued.

    A certificate made to expire soon (to test `tls status`) is issued with valid_from in the past.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if not names:
        raise LabError("a site certificate needs at least one name")
    if not 1 <= days <= MAX_DAYS:
        raise LabError(f"days={days!r}: a site certificate of the lab lives 1 to {MAX_DAYS} days")
    ca_cert = x509.load_pem_x509_certificate(ensure_ca(folder).read_bytes())
    ca_key = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    start = valid_from or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    serial = x509.random_serial_number()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()), critical=False)  # type: ignore[arg-type]
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    chain = cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(serialization.Encoding.PEM)
    out.mkdir(parents=True, exist_ok=True)
    _write_private(out / "site.crt", chain)
    _write_private(
        out / "site.key",
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    return Issued(out / "site.crt", out / "site.key", serial, start + dt.timedelta(days=days))


#: `lab up` issues a new site certificate when the one there has fewer days left than this
RENEW_DAYS = 30


def ensure_site(folder: Path, names: list[str], renew_days: int = RENEW_DAYS) -> Issued | None:
    """Make sure folder/site.crt (the chain) and folder/site.key are a certificate from the lab CA
    for exactly `names` with more than renew_days left; issue one when not. Return what was issued,
    or None when the one there is kept."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization

    cert, key = folder / "site.crt", folder / "site.key"
    if cert.is_file() and key.is_file() and (folder / "ca.crt").is_file():
        try:
            leaf = x509.load_pem_x509_certificate(cert.read_bytes())
            ca = x509.load_pem_x509_certificate((folder / "ca.crt").read_bytes())
            leaf.verify_directly_issued_by(ca)  # signed by this CA, not only named after it
            own = serialization.load_pem_private_key(key.read_bytes(), password=None).public_key()
            spki = (serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            left = leaf.not_valid_after_utc - dt.datetime.now(dt.UTC)
            if (
                sorted(sans.get_values_for_type(x509.DNSName)) == sorted(names)
                and own.public_bytes(*spki) == leaf.public_key().public_bytes(*spki)  # a pair cut in two is not kept
                and left > dt.timedelta(days=renew_days)
            ):
                return None
        except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
            pass  # unreadable, not one of ours, or not a pair: issue a new one
    return issue(folder, names, folder)
