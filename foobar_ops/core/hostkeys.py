"""Strict host key checking against the known_hosts file the inventory names."""

from __future__ import annotations

import base64
import hashlib
import threading
from pathlib import Path

import paramiko

from .errors import HostKeyError

_append_lock = threading.Lock()


def fingerprint(key: paramiko.PKey) -> str:
    """Return an OpenSSH-style SHA256 fingerprint of a key.

    key: a paramiko public key.
    """
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class RefuseUnknown(paramiko.MissingHostKeyPolicy):
    """Refuse a host whose key is not in known_hosts, naming the host and the file.

    label: the inventory host name, for messages.
    known_hosts: the known_hosts file that was searched.
    """

    def __init__(self, label: str, known_hosts: Path | None) -> None:
        self.label, self.known_hosts = label, known_hosts

    def missing_host_key(self, client, hostname, key):
        raise HostKeyError(
            self.label,
            (
                f"host key of {hostname} is not known ({key.get_name()} {fingerprint(key)}), "
                f"so the connection was refused. known_hosts: {self.known_hosts or '(none configured)'}. "
                "Check the key out of band, then add it, or connect once with ssh.trust_new_keys: true"
            ),
        )


class TrustNew(paramiko.MissingHostKeyPolicy):
    """Accept a host key never seen before and record it in known_hosts (an explicit opt-in).

    known_hosts: the file the new key is appended to.
    """

    def __init__(self, known_hosts: Path) -> None:
        self.known_hosts = known_hosts

    def missing_host_key(self, client, hostname, key):
        with _append_lock:
            self.known_hosts.parent.mkdir(parents=True, exist_ok=True)
            with open(self.known_hosts, "a") as out:
                out.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        client.get_host_keys().add(hostname, key.get_name(), key)


def apply_policy(client: paramiko.SSHClient, label: str, known_hosts: Path | None, trust_new: bool) -> None:
    """Make a paramiko client check host keys strictly against one known_hosts file.

    client: the client to configure (its system host keys are not used).
    label: the inventory host name, for messages.
    known_hosts: the known_hosts file (None: no key is known).
    trust_new: record an unknown key instead of refusing it. A changed key is always refused.
    """
    if known_hosts is not None and known_hosts.exists():
        client.load_host_keys(str(known_hosts))
    elif known_hosts is not None and not trust_new:
        raise HostKeyError(
            label,
            f"known_hosts file {known_hosts} does not exist; "
            "create it with the host's key or set ssh.trust_new_keys: true",
        )
    if trust_new and known_hosts is not None:
        client.set_missing_host_key_policy(TrustNew(known_hosts))
    else:
        client.set_missing_host_key_policy(RefuseUnknown(label, known_hosts))


def changed_key_message(err: paramiko.BadHostKeyException, known_hosts: Path | None) -> str:
    """Explain a changed host key and what to do.

    err: the paramiko exception.
    known_hosts: the file that holds the old key.
    """
    return (
        f"host key of {err.hostname} CHANGED: known_hosts {known_hosts} has "
        f"{err.expected_key.get_name()} {fingerprint(err.expected_key)}, the host offered "
        f"{err.key.get_name()} {fingerprint(err.key)}. The connection was refused. If the host was "
        f"rebuilt on purpose, remove the old entry (ssh-keygen -R {err.hostname} -f {known_hosts}); "
        "otherwise treat it as a possible man-in-the-middle"
    )
