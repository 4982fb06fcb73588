"""A lab host's own identity, written onto its disk before first boot: name, address, machine id,
SSH host key, authorized keys and the admin user's sudo password."""

from __future__ import annotations

import os
import secrets
import subprocess
import uuid
from pathlib import Path

from ..core.errors import LabError
from .machine import Machine


def ensure_client_key(key_path: Path) -> Path:
    """Create the lab's SSH key pair once; return the private key path.

    key_path: where the private key lives (the public key gets `.pub`).
    """
    if not key_path.exists():
        key_path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(key_path.parent, 0o700)
        _keygen(key_path, "foobar-ops-lab")
    return key_path


def ensure_password(path: Path) -> Path:
    """Create the lab admin user's sudo password once (mode 0600); return its path.

    path: the file that holds it.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(18) + "\n")
    return path


def _keygen(path: Path, comment: str) -> None:
    done = subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise LabError(f"ssh-keygen failed for {path}: {done.stderr.strip()}")


def provision(m: Machine, peers: dict[str, str], client_pub: str, admin: str, password: str) -> list[str]:
    """Write a new host's identity onto its mounted root; return its public host key line.

    m: the machine (its root must be mounted).
    peers: every lab host name -> address, for /etc/hosts.
    client_pub: the lab's public key, authorized for root and the admin user.
    admin: the admin user's name.
    password: the admin user's sudo password.
    """
    root = m.root
    (root / "etc/hostname").write_text(m.name + "\n")
    hosts = ["127.0.0.1 localhost", f"127.0.1.1 {m.name}"]
    hosts += [f"{addr} {name}" for name, addr in peers.items() if name != m.name]
    (root / "etc/hosts").write_text("\n".join(hosts) + "\n")
    (root / "etc/systemd/network/10-host0.network").write_text(
        f"[Match]\nName=host0\n\n[Network]\nAddress={m.address}/{m.prefix}\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n"
    )
    (root / "etc/machine-id").write_text(uuid.uuid4().hex + "\n")
    key = root / "etc/ssh/ssh_host_ed25519_key"
    for old in key.parent.glob("ssh_host_*"):
        old.unlink()
    _keygen(key, f"root@{m.name}")
    (root / "etc/ssh/sshd_config.d/foobar-hostkey.conf").write_text("HostKey /etc/ssh/ssh_host_ed25519_key\n")
    _authorize(root, "root", client_pub)
    _authorize(root, admin, client_pub)
    done = subprocess.run(
        ["chroot", str(root), "chpasswd"], input=f"{admin}:{password}\n", text=True, capture_output=True
    )
    if done.returncode != 0:
        raise LabError(f"{m.name}: cannot set the {admin} password: {done.stderr.strip()}")
    return (key.parent / "ssh_host_ed25519_key.pub").read_text().split(" ", 2)[:2]


def _authorize(root: Path, user: str, pub: str) -> None:
    """Install an authorized key for a user of the host tree."""
    uid = gid = 0
    home = Path("/root")
    for line in (root / "etc/passwd").read_text().splitlines():
        parts = line.split(":")
        if parts[0] == user:
            uid, gid, home = int(parts[2]), int(parts[3]), Path(parts[5])
            break
    else:
        raise LabError(f"user {user!r} is missing from the lab image")
    ssh_dir = root / home.relative_to("/") / ".ssh"
    ssh_dir.mkdir(parents=True, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(pub.strip() + "\n")
    for path in (ssh_dir, ssh_dir / "authorized_keys"):
        os.chown(path, uid, gid)
    os.chmod(ssh_dir, 0o700)
    os.chmod(ssh_dir / "authorized_keys", 0o600)


def update_known_hosts(path: Path, names: list[str], key: list[str] | None) -> None:
    """Replace the known_hosts entry of a host (remove it when key is None).

    path: the lab's known_hosts file.
    names: the names and addresses the host is known by.
    key: [key type, base64 key], or None to forget the host.
    """
    lines = path.read_text().splitlines() if path.exists() else []
    wanted = set(names)
    kept = [ln for ln in lines if ln.strip() and not (set(ln.split(" ", 1)[0].split(",")) & wanted)]
    if key:
        kept.append(f"{','.join(names)} {key[0]} {key[1]}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(line + "\n" for line in kept))
    tmp.replace(path)
