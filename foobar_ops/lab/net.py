"""The lab's private bridge: one Linux bridge, an address for the control machine, no route out."""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path

from ..core.errors import LabError


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise LabError(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}")
    return done


def link_exists(name: str) -> bool:
    """Return True when a network link of this name exists on the control machine.

    name: the link name.
    """
    return Path("/sys/class/net", name).exists()


def control_address(network: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    """Return the control machine's address on the lab network (its first host address).

    network: the lab network in CIDR form, e.g. 10.77.0.0/24.
    """
    net = ipaddress.ip_network(network)
    return ipaddress.ip_interface(f"{next(net.hosts())}/{net.prefixlen}")


def ensure_bridge(bridge: str, network: str) -> None:
    """Create the lab bridge with the control address, or reuse one a killed lab left behind.

    bridge: bridge name.
    network: the lab network in CIDR form.
    """
    if not link_exists(bridge):
        _ip("link", "add", bridge, "type", "bridge")
    elif not Path("/sys/class/net", bridge, "bridge").exists():
        raise LabError(f"link {bridge!r} exists and is not a bridge; pick another lab.bridge name")
    wanted = str(control_address(network))
    shown = _ip("-o", "addr", "show", "dev", bridge).stdout
    if f" {wanted} " not in shown:
        _ip("addr", "add", wanted, "dev", bridge)
    _ip("link", "set", bridge, "up")


def remove_bridge(bridge: str) -> None:
    """Delete the lab bridge if it exists.

    bridge: bridge name.
    """
    if link_exists(bridge):
        _ip("link", "del", bridge, check=False)


def remove_link(name: str) -> None:
    """Delete a leftover link (e.g. a host's veth after its container died).

    name: link name.
    """
    if link_exists(name):
        _ip("link", "del", name, check=False)
