"""HTTPS at the load balancers: what certificate each one serves (`tls status`, read from HAProxy's
runtime API, so it is what clients get, not what a file says), and a new certificate put in place
without a reload (`tls rotate`: the file written, then `set ssl cert` and `commit ssl cert`).

A certificate is checked on this machine before any host sees it (certs.check_pair).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import FoobarOpsError, TLSError
from ..core.secrets import Secret
from .certs import CertFacts, check_pair, site_names
from .topology import lb_hosts, site_ca, stack_vars

#: `tls status` warns when a certificate has fewer days left than this, and fails under FAIL_DAYS
WARN_DAYS = 20
FAIL_DAYS = 3
#: HAProxy's date format in `show ssl cert` (notAfter: Mar  5 01:02:03 2027 GMT)
_HAPROXY_DATE = "%b %d %H:%M:%S %Y GMT"


# --- what a load balancer serves ------------------------------------------------------------------


@dataclass
class ServedCert:
    """One certificate one load balancer serves (HAProxy's `show ssl cert FILE`)."""

    lb: str
    path: str
    subject: str
    sans: list[str]
    serial: str
    issuer: str
    not_after: str  # ISO 8601, UTC
    days_left: float

    @property
    def level(self) -> str:
        """ok, warn (under WARN_DAYS left) or fail (under FAIL_DAYS)."""
        return "fail" if self.days_left < FAIL_DAYS else "warn" if self.days_left < WARN_DAYS else "ok"


@dataclass
class TLSStatus:
    """Every certificate every load balancer serves; `ok` is False when one has under FAIL_DAYS
    left or a load balancer could not say what it serves."""

    certs: list[ServedCert] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        return [
            f"{c.lb}: {c.path} ({c.subject}, serial {c.serial}) expires {c.not_after}: "
            f"{c.days_left:g} days left (under {FAIL_DAYS if c.level == 'fail' else WARN_DAYS})"
            for c in self.certs
            if c.level != "ok"
        ]

    @property
    def ok(self) -> bool:
        return not self.errors and bool(self.certs) and all(c.level != "fail" for c in self.certs)

    def as_json(self) -> dict[str, Any]:
        """The `tls status --json` document (the contract: ok, certs with lb, subject, sans, serial,
        issuer, not_after, days_left; warnings and errors added)."""
        return {
            "ok": self.ok,
            "certs": [{**dataclasses.asdict(c), "level": c.level} for c in self.certs],
            "warnings": self.warnings,
            "errors": self.errors,
        }

    def frame(self) -> Any:
        """The certificates as a pandas DataFrame, one row per load balancer and file."""
        import pandas as pd

        return pd.DataFrame([{**dataclasses.asdict(c), "level": c.level} for c in self.certs])

    def _repr_html_(self) -> str:
        head = f"<p><b>{'OK' if self.ok else 'FAIL'}</b>: {len(self.certs)} certificates served</p>"
        notes = "".join(f"<p>{w}</p>" for w in [*self.errors, *self.warnings])
        return head + notes + self.frame().to_html(index=False)


def parse_cert_list(text: str) -> list[str]:
    """The files of `show ssl cert` (committed ones; a transaction's `*file` and comments are not)."""
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith(("#", "*"))]


def parse_cert(text: str, lb: str, now: dt.datetime | None = None) -> ServedCert:
    """Turn HAProxy's `show ssl cert FILE` answer into a ServedCert (TLSError naming what is missing)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    missing = [k for k in ("Filename", "Serial", "notAfter", "Subject", "Issuer") if k not in fields]
    if missing:
        raise TLSError(f"{lb}: HAProxy's `show ssl cert` answer lacks {', '.join(missing)}: {text.strip()[:200]!r}")
    try:
        not_after = dt.datetime.strptime(re.sub(r"\s+", " ", fields["notAfter"]), _HAPROXY_DATE).replace(tzinfo=dt.UTC)
    except ValueError:
        raise TLSError(f"{lb}: cannot read the end date {fields['notAfter']!r} of {fields['Filename']}") from None
    left = (not_after - (now or dt.datetime.now(dt.UTC))).total_seconds() / 86400
    sans = [s.strip().removeprefix("DNS:") for s in fields.get("Subject Alternative Name", "").split(",") if s.strip()]
    return ServedCert(
        lb=lb,
        path=fields["Filename"].lstrip("*"),
        subject=fields["Subject"],
        sans=sans,
        serial=fields["Serial"].upper().lstrip("0") or "0",
        issuer=fields["Issuer"],
        not_after=not_after.isoformat().replace("+00:00", "Z"),
        days_left=round(left, 2),
    )


def status(inventory: Any, now: dt.datetime | None = None) -> TLSStatus:
    """Ask every load balancer which certificates it serves (HAProxy's runtime API), and how long
    each one has left. A load balancer that cannot be asked is an error of the status, named."""
    from .lb import HAProxy

    hosts = lb_hosts(inventory)
    if not hosts:
        raise TLSError(f"{inventory.path}: no host has the haproxy role")
    if stack_vars(inventory).get("tls") is None:
        raise TLSError(f"{inventory.path}: stack.tls is not set: the load balancers serve no certificate")
    found = TLSStatus()
    for host in hosts:
        try:
            with HAProxy(inventory, host=host.name, record=False) as lb:
                files = parse_cert_list(lb.command("show ssl cert"))
                if not files:
                    found.errors.append(f"{host.name}: HAProxy serves no certificate")
                for path in files:
                    found.certs.append(parse_cert(lb.command(f"show ssl cert {path}"), host.name, now))
        except (FoobarOpsError, OSError) as err:  # unreachable, refused, an answer not understood
            found.errors.append(f"{host.name}: {err}" if not str(err).startswith(host.name) else str(err))
    return found


def with_certificate(inventory: Any, cert: str | None, key: str | None) -> Any:
    """The inventory with its tls_cert and tls_key secrets replaced by these references (both or
    neither); checked for form here, read later."""
    if (cert is None) != (key is None):
        raise TLSError("--cert and --key go together: a certificate is served with its own key")
    if cert is None:
        return inventory
    base = inventory.path.parent
    secrets = {**inventory.secrets, "tls_cert": Secret.parse(cert, base), "tls_key": Secret.parse(key or "", base)}
    return dataclasses.replace(inventory, secrets=secrets)


@dataclass
class Rotation:
    """A `tls rotate` run: its Report (a result per state per load balancer) and the certificate."""

    report: Any
    certificate: CertFacts
    #: load balancer -> the serial it serves from the site's file once the run ended (not in a test)
    served: dict[str, str] = field(default_factory=dict)
    #: a load balancer that does not serve the new certificate after the run, named
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.report.ok) and not self.errors

    @property
    def warnings(self) -> list[str]:
        """A certificate served with under WARN_DAYS left (under FAIL_DAYS, `tls status` fails)."""
        c = self.certificate
        if c.days_left >= WARN_DAYS:
            return []
        return [f"certificate serial {c.serial} has {c.days_left:g} days left (expires {c.not_after}): renew it"]

    def as_json(self) -> dict[str, Any]:
        return {
            **self.report.as_json(),
            "ok": self.ok,
            "certificate": dataclasses.asdict(self.certificate),
            "served": self.served,
            "warnings": self.warnings,
            "errors": self.errors,
        }

    def summary(self, color: bool = False) -> str:
        c = self.certificate
        head = f"certificate {c.subject} serial {c.serial} ({', '.join(c.sans)}), {c.days_left:g} days left"
        notes = [*(f"WARNING: {w}" for w in self.warnings), *(f"ERROR: {e}" for e in self.errors)]
        return "\n".join([head, *notes, self.report.summary(color=color)])

    def __repr__(self) -> str:
        return f"<Rotation {'ok' if self.ok else 'FAILED'} serial {self.certificate.serial}>"


def rotate_states(host: Any, inventory: Any) -> list[Any]:
    """What `tls rotate` applies on each load balancer: the certificate file, then the push."""
    from .roles.haproxy import cert_states

    return cert_states(inventory)


def rotate(
    inventory: Any,
    cert: str | None = None,
    key: str | None = None,
    *,
    test: bool = False,
    journal: Any = None,
    command: str = "python: tls rotate",
    on_result: Any = None,
    lock_wait: float | None = None,
) -> Rotation:
    """Serve a certificate on every load balancer without a reload; return the Rotation (the run's
    Report, and what was checked of the certificate). Nothing reaches a host before the certificate and its key are
    checked (check_pair). With cert and key (secret references), those are served and then become
    the inventory's tls_cert and tls_key (so the next apply keeps them); without, the inventory's own
    (e.g. renewed in place by a CA's client) are.

    test: say what would change, change nothing.
    lock_wait: seconds to wait for another run holding a load balancer's run lock.
    """
    from ..core.engine import apply
    from ..core.ssh import connecting
    from .inventory_file import check_secrets, set_secrets

    if stack_vars(inventory).get("tls") is None:
        raise TLSError(f"{inventory.path}: stack.tls is not set: there is no certificate to rotate")
    hosts = lb_hosts(inventory)
    if not hosts:
        raise TLSError(f"{inventory.path}: no host has the haproxy role")
    inv = with_certificate(inventory, cert, key)
    facts = check_pair(inv.secret("tls_cert"), inv.secret("tls_key"), site_names(inv), site_ca(inv))
    refs = {"tls_cert": cert, "tls_key": key} if cert is not None and key is not None else None
    if refs:
        check_secrets(inv.path, refs)  # the inventory can take the new references: before any host
    pattern = ",".join(h.name for h in hosts)
    remotes = connecting(inv.select(pattern), inv, len(hosts))
    try:
        report = apply(
            inv,
            rotate_states,
            hosts=pattern,
            test=test,
            journal=journal,
            command=command,
            parameters={"cert": inv.secrets["tls_cert"].ref, "key": inv.secrets["tls_key"].ref, "test": test},
            on_result=on_result,
            lock_wait=lock_wait,
            remotes=remotes,
        )
    finally:
        for remote in remotes.values():
            remote.close()
    rotation = Rotation(report, facts)
    if not test and report.ok:  # what each load balancer serves now, as `tls status` reads it
        from .roles.haproxy import cert_path

        rotation.served, rotation.errors = unserved(status(inv), cert_path(inv), facts.serial)
    if refs and rotation.ok and not test:
        set_secrets(inv.path, refs)
    return rotation


def unserved(found: TLSStatus, path: str, serial: str) -> tuple[dict[str, str], list[str]]:
    """From a status, which serial each load balancer serves from `path` (lb -> serial), and the
    load balancers that do not serve `serial` there, named with what they serve instead."""
    served = {c.lb: c.serial for c in found.certs if c.path == path}
    errors = list(found.errors)
    for host in dict.fromkeys(c.lb for c in found.certs):
        if served.get(host) != serial.lstrip("0"):
            there = f"serial {served[host]}" if host in served else "nothing"
            errors.append(
                f"{host} serves {there} from {path}, not {serial}: is {path} in its configuration "
                "(apply the haproxy role)?"
            )
    return served, errors
