"""Parse and validate inventory YAML into plain values for foobar_ops.inventory.

YAML is loaded safely with duplicate keys refused, then every section, key
and value is checked. The result holds the fields of Inventory, with each
host (and its ssh options) as a plain dict of Host (SSHOptions) fields, so
this module never imports the data model. Every problem is an InventoryError
naming the file, the host and the key at fault, with a hint on the fix.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from .. import safeyaml
from . import typed, values
from .context import Ctx

TOP_KEYS = ("stack", "defaults", "hosts", "groups", "secrets", "lab")
HOST_KEYS = ("address", "port", "user", "roles", "groups", "vars", "ssh", "sudo_password")
DEFAULT_KEYS = ("port", "user", "vars", "ssh", "sudo_password")
SSH_KEYS = (
    "identity",
    "known_hosts",
    "config",
    "connect_timeout",
    "command_timeout",
    "keepalive",
    "proxy_jump",
    "trust_new_keys",
    "parallel",
)
#: ssh options that hold for a whole run, not one host: only under defaults.ssh
RUN_SSH_KEYS = ("parallel",)
#: at most this many hosts at once when defaults.ssh.parallel is not set
DEFAULT_PARALLEL = 10
MAX_PARALLEL = 256
GROUP_KEYS = ("hosts", "vars")
LAB_KEYS = ("bridge", "network")
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class VarTypes:
    """What the free-form vars must be, declared by the layer that uses them (typed.py).

    stack: key -> check, for the stack section.
    vars: key -> check, for every host's vars (defaults, groups and its own, merged).
    """

    stack: typed.Spec = field(default_factory=dict)
    vars: typed.Spec = field(default_factory=dict)


def parse_document(
    text: str | bytes, path: Path, known_roles: tuple[str, ...] | None = None, types: VarTypes | None = None
) -> dict[str, Any]:
    """Validate inventory YAML and return the Inventory fields as plain values.

    text: the YAML document; bytes are hashed as-is, str as UTF-8.
    path: the file it came from; relative paths inside resolve from its dir.
    known_roles: the role names hosts may declare (None: any name).
    types: what stack vars and host vars must be (None: anything).
    """
    ctx = Ctx(path, Path(os.path.abspath(path)).parent, known_roles=known_roles, types=types)
    raw = text if isinstance(text, bytes) else text.encode("utf-8")
    try:
        source = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ctx.err(f"not UTF-8 (bad byte at offset {exc.start}); save the file as UTF-8") from None
    doc = _load_yaml(source, ctx)
    sha = hashlib.sha256(raw).hexdigest()
    return {**_validate(doc, ctx), "path": ctx.path, "sha256": sha}


def _load_yaml(source: str, ctx: Ctx) -> dict:
    """Parse YAML safely, refusing syntax errors, duplicates, non-mappings.

    source: the YAML text.
    ctx: the parse context.
    """
    try:
        doc = safeyaml.load(source, check=lambda node: _check_duplicates(node, (), ctx, set()))
    except safeyaml.YAMLRefused as exc:
        raise ctx.err(f"refused: {exc}") from None
    except yaml.YAMLError as exc:
        raise ctx.err(f"{safeyaml.describe(exc)}; fix the file") from None
    if doc is None:
        raise ctx.err("inventory is empty; it needs at least a 'hosts' mapping")
    if not isinstance(doc, dict):
        raise ctx.err(
            f"the top level must be a mapping with keys such as {', '.join(TOP_KEYS)}, not {values.kind(doc)}"
        )
    return doc


def _check_duplicates(node: yaml.Node, trail: tuple, ctx: Ctx, seen: set) -> None:
    """Raise on any mapping key that appears twice anywhere under node.

    node: a composed YAML node.
    trail: the keys leading to node.
    ctx: the parse context.
    seen: ids of nodes already walked (aliases repeat them).
    """
    if id(node) in seen or isinstance(node, yaml.ScalarNode):
        return
    seen.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_duplicates(item, trail + (str(i),), ctx, seen)
        return
    lines: dict[tuple, int] = {}
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
            continue
        ident, line = (key_node.tag, key_node.value), key_node.start_mark.line + 1
        if ident in lines:
            _duplicate(trail + (key_node.value,), lines[ident], line, ctx)
        lines[ident] = line
        _check_duplicates(value_node, trail + (key_node.value,), ctx, seen)


def _duplicate(trail: tuple, first: int, second: int, ctx: Ctx) -> None:
    """Raise the error for the last key of trail appearing twice.

    trail: the keys from the root to the repeated key.
    first: line of its first occurrence.
    second: line of its second occurrence.
    ctx: the parse context.
    """
    lines, key = f"(lines {first} and {second})", trail[-1]
    if trail[:-1] == ("hosts",):
        raise replace(ctx, host=key).err(f"host '{key}' is defined twice {lines}; merge the entries or rename one")
    if len(trail) > 2 and trail[0] == "hosts":
        ctx, trail = replace(ctx, host=trail[1]), trail[2:]
    raise ctx.err(f"key '{key}' appears twice {lines}; keep only one", ".".join(trail))


def _validate(doc: dict, ctx: Ctx) -> dict[str, Any]:
    """Validate every section of doc; return hosts, groups, vars, secrets, lab.

    doc: the parsed top-level mapping.
    ctx: the parse context.
    """
    _check_keys(doc, TOP_KEYS, ctx)
    if not doc.get("hosts"):
        raise ctx.err("'hosts' is missing or empty; define at least one host", "hosts")
    stack = values.secretize(_mapping(doc, "stack", ctx), ctx.at("stack"))
    if ctx.types is not None:
        stack = typed.check_tree(stack, ctx.types.stack, ctx.at("stack"))
    secrets = {
        str(name): values.secret(ref, ctx.at("secrets").at(name)) for name, ref in _mapping(doc, "secrets", ctx).items()
    }
    lab = _lab(_mapping(doc, "lab", ctx), ctx.at("lab"))
    defaults = _mapping(doc, "defaults", ctx)
    _check_keys(defaults, DEFAULT_KEYS, ctx.at("defaults"))
    defaults = _fields(defaults, ctx.at("defaults"))
    parallel = _run_wide(defaults)
    raw_hosts = _mapping(doc, "hosts", ctx)
    members, group_vars = _groups(_mapping(doc, "groups", ctx), raw_hosts, ctx)
    hosts = {}
    for name, body in raw_hosts.items():
        hctx = replace(ctx, host=str(name))
        hosts[name] = _host(name, body, defaults, members, group_vars, hctx)
    _check_jumps(hosts, ctx)
    return {
        "hosts": hosts,
        "groups": _all_groups(members, hosts, ctx),
        "group_vars": group_vars,
        "stack": stack,
        "secrets": secrets,
        "lab": lab,
        "parallel": parallel,
    }


def _run_wide(defaults: dict) -> int:
    """Take the run-wide ssh options out of the validated defaults; return the fan-out cap.

    defaults: the validated defaults fields (its ssh mapping loses RUN_SSH_KEYS).
    """
    ssh = dict(defaults.get("ssh") or {})
    parallel = ssh.pop("parallel", DEFAULT_PARALLEL)
    if defaults.get("ssh") is not None:
        defaults["ssh"] = ssh
    return parallel


def _check_keys(data: dict, known: tuple, ctx: Ctx) -> None:
    """Refuse keys of data that are not in known, suggesting a fix.

    data: the mapping to check.
    known: the allowed keys.
    ctx: the context of data.
    """
    for key in data:
        if key not in known:
            raise ctx.err(f"unknown key '{key}'{values.suggest(key, known)}; known keys: {', '.join(known)}", key)


def _mapping(data: dict, key: str, ctx: Ctx) -> dict:
    """Return data[key] as a dict ({} when absent or null), else raise.

    data: the enclosing mapping.
    key: the key whose value must be a mapping.
    ctx: the context of data.
    """
    value = data.get(key)
    return {} if value is None else values.mapping(value, ctx.at(key))


def _lab(raw: dict, ctx: Ctx) -> dict[str, Any]:
    """Validate the lab section (bridge name, network CIDR).

    raw: the lab mapping.
    ctx: the section's context.
    """
    _check_keys(raw, LAB_KEYS, ctx)
    bridge = raw.get("bridge")
    if bridge is not None and not (
        isinstance(bridge, str) and len(bridge) <= 15 and re.fullmatch(r"[A-Za-z0-9_.-]+", bridge)
    ):
        raise ctx.err("bridge must be an interface name of 1 to 15 letters, digits, '.', '_' or '-'", "bridge")
    network = raw.get("network")
    if network is not None:
        try:
            if not isinstance(network, str) or "/" not in network:
                raise ValueError(network)
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ctx.err(f"network {network!r} is not a CIDR such as 10.77.0.0/24", "network") from None
    return dict(raw)


def _fields(raw: dict, ctx: Ctx) -> dict[str, Any]:
    """Validate the fields hosts share with defaults; return those present.

    raw: a host or defaults mapping.
    ctx: its context.
    """
    checks = {
        "port": values.port,
        "user": values.user,
        "vars": values.var_mapping,
        "ssh": _ssh,
        "sudo_password": values.secret,
    }
    return {
        key: None if raw[key] is None else check(raw[key], ctx.at(key)) for key, check in checks.items() if key in raw
    }


def _host(name: Any, raw: Any, defaults: dict, members: dict, group_vars: dict, ctx: Ctx) -> dict[str, Any]:
    """Validate one host entry, merge defaults and groups; return Host fields.

    name: the host's key under hosts.
    raw: its mapping.
    defaults: validated defaults fields.
    members: groups section, group name -> host names.
    group_vars: group name -> vars.
    ctx: the host's context.
    """
    if not isinstance(name, str) or not values.NAME_RE.match(name):
        raise ctx.err(f"host name is invalid; {values.NAME_HINT}")
    if not isinstance(raw, dict):
        raise ctx.err(f"host entry must be a mapping with at least 'address', not {values.kind(raw)}")
    _check_keys(raw, HOST_KEYS, ctx)
    own = _fields(raw, ctx)
    for key in RUN_SSH_KEYS:
        if key in (own.get("ssh") or {}):
            raise ctx.at("ssh").err(
                f"'{key}' holds for a whole run, not one host; set it under defaults.ssh.{key}", key
            )
    groups = list(
        dict.fromkeys(
            [
                *values.name_list(raw.get("groups"), ctx.at("groups"), "group"),
                *(g for g, hs in members.items() if name in hs),
            ]
        )
    )
    merged = dict(defaults.get("vars") or {})
    for group in groups:
        merged.update(group_vars.get(group, {}))
    merged.update(own.get("vars") or {})
    if ctx.types is not None:
        merged = typed.check_tree(merged, ctx.types.vars, ctx.at("vars"))
    sudo = own["sudo_password"] if "sudo_password" in own else defaults.get("sudo_password")
    return {
        "name": name,
        "address": values.address(raw, ctx),
        "port": _pick("port", own, defaults, 22),
        "user": _pick("user", own, defaults, "root"),
        "roles": values.roles(raw.get("roles"), ctx),
        "groups": tuple(groups),
        "vars": merged,
        "sudo_password": sudo,
        "ssh": {**(defaults.get("ssh") or {}), **(own.get("ssh") or {})},
    }


def _pick(key: str, own: dict, defaults: dict, fallback: Any) -> Any:
    """Return a host field: the host's value, else the default, else fallback.

    key: the field name.
    own: the host's validated fields.
    defaults: the validated defaults fields.
    fallback: the built-in default.
    """
    for source in (own, defaults):
        if source.get(key) is not None:
            return source[key]
    return fallback


def _ssh(value: Any, ctx: Ctx) -> dict[str, Any]:
    """Check ssh options; return the validated keys present.

    value: the YAML value.
    ctx: its context.
    """
    _check_keys(values.mapping(value, ctx), SSH_KEYS, ctx)
    out: dict[str, Any] = {}
    for key, item in value.items():
        sub = ctx.at(key)
        if item is None:
            continue
        if key in ("identity", "known_hosts", "config"):
            out[key] = values.file_path(item, sub)
            if key == "config" and not out[key].is_file():
                raise sub.err(f"ssh config file {out[key]} does not exist")
        elif key in ("connect_timeout", "command_timeout"):
            out[key] = values.seconds(item, sub)
        elif key == "keepalive":
            out[key] = values.integer(item, sub, 0)
        elif key == "parallel":
            out[key] = values.integer(item, sub, 1, MAX_PARALLEL)
        elif key == "trust_new_keys":
            if not isinstance(item, bool):
                raise sub.err(f"must be true or false, not {values.kind(item)}")
            out[key] = item
        else:
            out[key] = values.jump(item, sub)
    return out


def _groups(raw: dict, hosts: dict, ctx: Ctx) -> tuple[dict, dict]:
    """Validate the groups section; return (name -> hosts, name -> vars).

    raw: the groups mapping.
    hosts: the raw hosts mapping, to check membership against.
    ctx: the root context.
    """
    members, group_vars = {}, {}
    for name, body in raw.items():
        gctx = ctx.at("groups").at(name)
        if not isinstance(name, str) or not values.NAME_RE.match(name):
            raise gctx.err(f"group name is invalid; {values.NAME_HINT}")
        if isinstance(body, dict):
            _check_keys(body, GROUP_KEYS, gctx)
            group_vars[name] = values.var_mapping(body.get("vars") or {}, gctx.at("vars"))
            body, gctx = body.get("hosts"), gctx.at("hosts")
        members[name] = values.name_list(body, gctx, "host")
        for host in members[name]:
            if host not in hosts:
                raise gctx.err(
                    f"host '{host}' is not defined under hosts{values.suggest(host, hosts)}; add it or fix the name"
                )
    return members, group_vars


def _all_groups(members: dict, hosts: dict[str, dict], ctx: Ctx) -> dict[str, tuple[str, ...]]:
    """Map every group (section or host-declared) to its hosts, in order.

    members: groups section, group name -> host names.
    hosts: the validated hosts' fields, by name.
    ctx: the root context.
    """
    names = dict.fromkeys([*members, *(g for h in hosts.values() for g in h["groups"])])
    for name in names:
        if name in hosts:
            raise ctx.err(
                f"group '{name}' has the same name as a host; rename one so selections are unambiguous", "groups"
            )
    return {g: tuple(n for n, h in hosts.items() if g in h["groups"]) for g in names}


def _check_jumps(hosts: dict[str, dict], ctx: Ctx) -> None:
    """Refuse proxy_jump chains through inventory hosts that loop.

    hosts: the validated hosts' fields, by name.
    ctx: the root context.
    """
    for host in hosts.values():
        chain, hop = [host["name"]], host["ssh"].get("proxy_jump")
        while hop in hosts:
            chain.append(hop)
            if hop == host["name"]:
                raise replace(ctx, host=host["name"]).err(
                    f"proxy_jump loops ({' -> '.join(chain)}); break the cycle", "ssh.proxy_jump"
                )
            if len(chain) > len(hosts):
                break
            hop = hosts[hop]["ssh"].get("proxy_jump")
