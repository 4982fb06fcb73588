"""The lab: real Debian 12 hosts booted as systemd-nspawn containers on one machine.

The host list comes from the inventory (`inventories/lab.yml`); lab state lives under
`/var/lib/foobar-ops` so that any checkout of the project finds (and clears) what an earlier,
killed lab left behind.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..core.errors import LabError
from . import identity, image, net, tls
from .machine import Machine

STATE_DIR = Path("/var/lib/foobar-ops")
LAB_DIR = STATE_DIR / "lab"
KEY_PATH = LAB_DIR / "ssh" / "id_ed25519"
KNOWN_HOSTS = LAB_DIR / "ssh" / "known_hosts"
PASSWORD_PATH = LAB_DIR / "secrets" / "sudo_password"
#: the lab's own CA (made once; its key never leaves this machine) and the site's certificate it
#: issues (site.crt, the chain; site.key, 0600): what the lab inventory's tls secrets name
TLS_DIR = LAB_DIR / "tls"
LAB_CA = TLS_DIR / "ca.crt"
DEFAULT_BRIDGE = "fbr0"
DEFAULT_NETWORK = "10.77.0.0/24"

__all__ = ["Lab", "KEY_PATH", "KNOWN_HOSTS", "PASSWORD_PATH", "LAB_CA", "TLS_DIR"]


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Lab:
    """The lab hosts an inventory names, and what can be done to them.

    inventory: a loaded Inventory (its `lab` section gives the bridge and network).
    """

    def __init__(self, inventory: Any) -> None:
        self.inventory = inventory
        self.bridge = inventory.lab.get("bridge", DEFAULT_BRIDGE)
        self.network = inventory.lab.get("network", DEFAULT_NETWORK)
        net_ = ipaddress.ip_network(self.network, strict=False)
        self.machines: dict[str, Machine] = {}
        for host in inventory.hosts.values():
            try:
                address = ipaddress.ip_address(host.address)
            except ValueError:
                raise LabError(
                    f"{inventory.path}: host {host.name!r}: key 'address': lab hosts need an IP "
                    f"address in {self.network}, not {host.address!r}"
                ) from None
            if address not in net_:
                raise LabError(
                    f"{inventory.path}: host {host.name!r}: key 'address': {host.address} "
                    f"is outside the lab network {self.network}"
                )
            self.machines[host.name] = Machine(host.name, host.address, net_.prefixlen, LAB_DIR / "hosts" / host.name)
        self.admin = str(image.RECIPE["admin_user"])

    def pick(self, names: list[str] | None) -> list[Machine]:
        """Return the machines named (all when names is empty).

        names: host names, or None/[] for all.
        """
        if not names:
            return list(self.machines.values())
        unknown = [n for n in names if n not in self.machines]
        if unknown:
            raise LabError(
                f"no lab host named {', '.join(unknown)} in {self.inventory.path} "
                f"(lab hosts: {', '.join(self.machines)})"
            )
        return [self.machines[n] for n in names]

    @contextmanager
    def _locked(self):
        _require_root()
        LAB_DIR.mkdir(parents=True, exist_ok=True)
        with open(LAB_DIR / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def up(self, names: list[str] | None = None, timeout: float = 120) -> None:
        """Boot the named hosts (all by default); running hosts are left alone.

        names: host names, or None for all.
        timeout: seconds to wait for each host to finish booting.
        """
        with self._locked():
            if not shutil.which("systemd-nspawn"):
                raise LabError("systemd-nspawn is missing: run `make setup` (package systemd-container)")
            image_root = image.ensure_image(STATE_DIR / "images")
            key = image.recipe_key()
            identity.ensure_client_key(KEY_PATH)
            identity.ensure_password(PASSWORD_PATH)
            for path in self._lab_secret_files():
                identity.ensure_password(path)
            self._ensure_site_certificate()
            net.ensure_bridge(self.bridge, self.network)
            started = []
            for m in self.pick(names):
                if m.state() == "running":
                    made_from = (m.meta() or {}).get("image")
                    stale = f" (made from image {made_from}, not {key}: `lab down` then `lab up` rebuild it)"
                    _say(f"{m.name}: already running at {m.address}{stale if made_from != key else ''}")
                    continue
                self._check_address(m)
                self._prepare(m, image_root, key)
                m.start(image_root, self.bridge)
                started.append((m, time.monotonic()))
            for m, t0 in started:
                self._wait_ready(m, timeout)
                _say(f"{m.name}: up at {m.address} in {time.monotonic() - t0:.1f} s")

    def _check_address(self, m: Machine) -> None:
        """Refuse to boot a host on the control machine's address or on the address of another
        lab host that is running (one made from another inventory, e.g. a benchmark's fleet)."""
        if m.address == str(net.control_address(self.network).ip):
            raise LabError(f"{m.name}: {m.address} is the control machine's address on {self.bridge}")
        for meta_path in sorted((LAB_DIR / "hosts").glob("*/meta.json")):
            name = meta_path.parent.name
            if name == m.name or name in self.machines:
                continue
            try:
                address = json.loads(meta_path.read_text()).get("address")
            except (OSError, ValueError):
                continue
            other = Machine(name, str(address), m.prefix, meta_path.parent)
            if address == m.address and other.nspawn_pid():
                raise LabError(
                    f"{m.name}: address {m.address} is taken by lab host {name!r}, which is running; "
                    f"give {m.name} a free address in {self.network}"
                )

    def _release_bridge(self) -> None:
        """Remove the lab bridge once no host is attached to it (hosts of another inventory that
        share the bridge keep it)."""
        ports = Path("/sys/class/net", self.bridge, "brif")
        attached = sorted(p.name for p in ports.iterdir()) if ports.is_dir() else []
        if attached:
            _say(f"{self.bridge}: kept, other lab hosts are attached ({', '.join(attached)})")
            return
        net.remove_bridge(self.bridge)

    def _ensure_site_certificate(self) -> None:
        """With stack.tls, make the lab CA once and a site certificate from it when there is none,
        when it names other hosts, or when it has under RENEW_DAYS left (a lab left up for months
        keeps serving a valid one after the next `lab up` and apply)."""
        if (self.inventory.stack or {}).get("tls") is None:
            return
        site = str(self.inventory.stack.get("domain") or "foobar.com")
        made = tls.ensure_site(TLS_DIR, [site, f"www.{site}"])
        if made is not None:
            until = f"{made.not_after:%Y-%m-%d}"
            _say(f"lab CA {LAB_CA}: issued the site certificate for {site} (serial {made.serial:X}, until {until})")

    def _lab_secret_files(self) -> list[Path]:
        """Secret files the inventory expects under the lab's secrets folder (made when missing)."""
        folder = PASSWORD_PATH.parent
        return [
            Path(sec.target)
            for sec in self.inventory.secrets.values()
            if sec.scheme == "file" and Path(sec.target).parent == folder
        ]

    def _prepare(self, m: Machine, image_root: Path, key: str) -> None:
        """Clear what a killed lab left, rebuild a disk made from an older image, give a new
        disk its identity."""
        if m.state() == "stale":
            _say(f"{m.name}: clearing leftovers of an earlier lab (orphaned init, veth, mount)")
            m.clear_stale()
        meta = m.meta()
        if meta and meta.get("image") != key:
            _say(f"{m.name}: its disk was made from image {meta.get('image')}; rebuilding on {key}")
            self._wipe(m)
            meta = {}
        if meta:
            return
        m.home.mkdir(parents=True, exist_ok=True)
        m.mount(image_root)
        peers = {n: x.address for n, x in self.machines.items()}
        host_key = identity.provision(
            m, peers, KEY_PATH.with_suffix(".pub").read_text(), self.admin, PASSWORD_PATH.read_text().strip()
        )
        identity.update_known_hosts(KNOWN_HOSTS, [m.name, m.address], host_key)
        m.meta_path.write_text(json.dumps({"image": key, "address": m.address, "created": int(time.time())}) + "\n")

    def _wait_ready(self, m: Machine, timeout: float) -> None:
        """Wait until the host's sshd answers and systemd reports the boot finished."""
        deadline = time.monotonic() + timeout
        while not _port_open(m.address, 22):
            if time.monotonic() > deadline or not m.nspawn_pid():
                raise LabError(
                    f"{m.name}: sshd at {m.address}:22 did not answer within {timeout:.0f} s; "
                    f"console log: {m.home / 'console.log'}"
                )
            time.sleep(0.2)
        left = max(5, int(deadline - time.monotonic()))
        done = self.run(m.name, ["timeout", str(left), "systemctl", "is-system-running", "--wait"])
        state = done.stdout.strip()
        if state not in ("running", "degraded"):
            raise LabError(
                f"{m.name}: systemd did not finish booting (state {state or 'unknown'}): {done.stderr.strip()}"
            )
        if state == "degraded":
            failed = self.run(m.name, ["systemctl", "--failed", "--no-legend", "--plain"]).stdout
            _say(f"{m.name}: booted degraded; failed units: {failed.strip() or '?'}")

    def down(self, names: list[str] | None = None) -> None:
        """Power the named hosts off cleanly (all by default); their disks stay.

        names: host names, or None for all.
        """
        with self._locked():
            for m in self.pick(names):
                was, t0 = m.state(), time.monotonic()
                note = m.stop()
                if note:
                    _say(note)
                if was in ("running", "stale"):
                    _say(f"{m.name}: powered off in {time.monotonic() - t0:.1f} s")
            if not names:
                self._release_bridge()

    def destroy(self, names: list[str] | None = None) -> None:
        """Power off the named hosts (all by default) and remove their disks and host keys.

        names: host names, or None for all.
        """
        with self._locked():
            for m in self.pick(names):
                note = m.stop()
                if note:
                    _say(note)
                self._wipe(m)
                _say(f"{m.name}: destroyed")
            if not names:
                self._release_bridge()

    def _wipe(self, m: Machine) -> None:
        m.stop()
        if m.home.exists():
            shutil.rmtree(m.home)
        identity.update_known_hosts(KNOWN_HOSTS, [m.name, m.address], None)

    def status(self) -> list[dict]:
        """Return one row per lab host: host, address, state, uptime in seconds."""
        rows = []
        for m in self.machines.values():
            state = m.state()
            if state == "running" and not _port_open(m.address, 22, 0.5):
                state = "booting"
            up = m.uptime()
            rows.append(
                {
                    "host": m.name,
                    "address": m.address,
                    "state": state,
                    "uptime_s": round(up, 1) if up is not None else None,
                }
            )
        return rows

    def ssh_argv(self, name: str, command: list[str]) -> list[str]:
        """Return the ssh command line that runs a command as root on a lab host.

        name: lab host name.
        command: the command and its arguments ([] for a login shell).
        """
        m = self.pick([name])[0]
        argv = [
            "ssh",
            "-i",
            str(KEY_PATH),
            "-o",
            f"UserKnownHostsFile={KNOWN_HOSTS}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=5",
            f"root@{m.address}",
        ]
        if command:
            argv += ["--", " ".join(shlex.quote(c) for c in command)]
        return argv

    def run(self, name: str, command: list[str]) -> subprocess.CompletedProcess:
        """Run a command as root on a lab host and return what it did.

        name: lab host name.
        command: the command and its arguments.
        """
        return subprocess.run(self.ssh_argv(name, command), capture_output=True, text=True, stdin=subprocess.DEVNULL)


def _port_open(address: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def _require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (systemd-nspawn, mounts, a bridge): run as root")
