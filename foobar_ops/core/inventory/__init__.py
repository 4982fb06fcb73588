"""The inventory: which hosts exist, their roles and vars, secrets by reference (YAML, validated)."""

from __future__ import annotations

from .model import Host, Inventory, SSHOptions, load_inventory, parse_inventory
from .schema import DEFAULT_KEYS, GROUP_KEYS, HOST_KEYS, LAB_KEYS, SSH_KEYS, TOP_KEYS, VarTypes

__all__ = [
    "Host",
    "Inventory",
    "SSHOptions",
    "load_inventory",
    "parse_inventory",
    "VarTypes",
    "TOP_KEYS",
    "HOST_KEYS",
    "DEFAULT_KEYS",
    "SSH_KEYS",
    "GROUP_KEYS",
    "LAB_KEYS",
]
