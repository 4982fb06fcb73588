"""Load, validate and query the YAML inventory of the foobar.com web stack.

Every problem is an InventoryError naming the file, the host and the key at
fault, with a hint on how to fix it. Keys that look like passwords or tokens
must hold env:/file: references, which become Secret objects; literal values
are refused without being echoed.
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import ipaddress
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable

import yaml

from foobar_ops.errors import InventoryError, SecretError
from foobar_ops.roles import ROLE_NAMES
from foobar_ops.secrets import SECRET_KEY_PATTERN, Secret, is_secret_ref

TOP_KEYS = ("stack", "defaults", "hosts", "groups", "secrets", "lab")
HOST_KEYS = ("address", "port", "user", "roles", "groups", "vars", "ssh",
             "sudo_password")
DEFAULT_KEYS = ("port", "user", "vars", "ssh", "sudo_password")
SSH_KEYS = ("identity", "known_hosts", "config", "connect_timeout",
            "command_timeout", "keepalive", "proxy_jump", "trust_new_keys")
GROUP_KEYS = ("hosts", "vars")
LAB_KEYS = ("bridge", "network")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_NAME_HINT = "use letters, digits, '.', '_' or '-', starting with a letter or digit"
_DNS_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_JUMP_RE = re.compile(r"^(?:[^@\s]+@)?(?:\[[0-9A-Fa-f:.]+\]|[^@\s:\[\]]+)(?::(\d+))?$")
_USER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*\$?$")
_ENV_LEFT = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class SSHOptions:
    """How to reach a host over SSH."""

    identity: Path | None = None
    known_hosts: Path | None = None
    config: Path | None = None
    connect_timeout: float = 5.0
    command_timeout: float = 300.0
    keepalive: int = 15
    proxy_jump: str | None = None
    trust_new_keys: bool = False


@dataclass(frozen=True)
class Host:
    """One machine of the stack; vars are defaults < group vars < host vars."""

    name: str
    address: str
    port: int = 22
    user: str = "root"
    roles: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    vars: dict[str, Any] = field(default_factory=dict)
    ssh: SSHOptions = field(default_factory=SSHOptions)
    sudo_password: Secret | None = None

    def __hash__(self) -> int:
        """Hash by identity fields so hosts can key dicts and sets."""
        return hash((self.name, self.address, self.port))

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-able view; Secrets appear as their reference."""
        return {"name": self.name, "address": self.address, "port": self.port,
                "user": self.user, "roles": list(self.roles),
                "groups": list(self.groups), "vars": _plain(self.vars)}


@dataclass(frozen=True)
class Inventory:
    """A validated inventory: hosts, groups, stack vars, secrets, lab."""

    path: Path
    hosts: dict[str, Host]
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    group_vars: dict[str, dict[str, Any]] = field(default_factory=dict)
    stack: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, Secret] = field(default_factory=dict)
    lab: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""

    def select(self, pattern: str | None = None) -> list[Host]:
        """Return the hosts matching pattern, in inventory order, once each.

        pattern: comma-separated terms (host name, glob, role:NAME,
            group:NAME, bare group or role name); None/''/'all'/'*' = all.
        """
        terms = [t.strip() for t in (pattern or "").split(",") if t.strip()]
        if not terms or any(t in ("all", "*") for t in terms):
            return list(self.hosts.values())
        chosen: set[str] = set()
        for term in terms:
            matched = self._match(term)
            if not matched:
                raise InventoryError(self._no_match(term), path=self.path)
            chosen |= matched
        return [h for n, h in self.hosts.items() if n in chosen]

    def _match(self, term: str) -> set[str]:
        """Return the names of the hosts one selection term matches.

        term: a single selection term.
        """
        kind, _, name = term.partition(":")
        if kind == "role" and name:
            return {h.name for h in self.hosts.values() if name in h.roles}
        if kind == "group" and name:
            return set(self.groups.get(name, ()))
        if term in self.hosts:
            return {term}
        if any(c in term for c in "*?["):
            return set(fnmatch.filter(self.hosts, term))
        found = set(self.groups.get(term, ()))
        return found | {h.name for h in self.hosts.values() if term in h.roles}

    def _no_match(self, term: str) -> str:
        """Explain that a term matched no host and list what exists.

        term: the selection term.
        """
        roles = sorted({r for h in self.hosts.values() for r in h.roles})
        hint = _suggest(term.partition(":")[2] or term,
                        [*self.hosts, *self.groups, *roles])
        return (f"selection '{term}' matches no host{hint}; hosts: "
                f"{_names(self.hosts)}; groups: {_names(self.groups)}; "
                f"roles in use: {_names(roles)}")

    def host(self, name: str) -> Host:
        """Return the host called name, or raise InventoryError.

        name: an inventory host name.
        """
        if name not in self.hosts:
            raise InventoryError(f"no such host{_suggest(name, self.hosts)}; "
                                 f"hosts: {_names(self.hosts)}",
                                 path=self.path, host=name)
        return self.hosts[name]

    def secret(self, name: str) -> Secret:
        """Return the secret declared as name under secrets:.

        name: the secret's name.
        """
        if name not in self.secrets:
            raise InventoryError(
                f"no such secret{_suggest(name, self.secrets)}; declare it "
                f"under 'secrets:' (declared: {_names(self.secrets)})",
                path=self.path, key=f"secrets.{name}")
        return self.secrets[name]


@dataclass(frozen=True)
class _Ctx:
    """Where parsing stands: file, base dir, host and key prefix."""

    path: Path
    base_dir: Path
    host: str | None = None
    prefix: str = ""

    def at(self, key: Any) -> _Ctx:
        """Return a context one key deeper.

        key: the key being descended into.
        """
        return replace(self, prefix=f"{self.prefix}{key}.")

    def err(self, message: str, key: Any = None) -> InventoryError:
        """Build an InventoryError located at prefix + key.

        message: what is wrong and how to fix it.
        key: the key at fault below the prefix, if any.
        """
        dotted = self.prefix + ("" if key is None else str(key))
        return InventoryError(message, path=self.path, host=self.host,
                              key=dotted.rstrip(".") or None)


def load_inventory(path: str | Path) -> Inventory:
    """Read and validate the inventory file at path.

    path: the YAML inventory file; ~ and $VAR are expanded.
    """
    path = Path(os.path.expanduser(os.path.expandvars(str(path))))
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InventoryError("inventory file not found; check the path",
                             path=path) from None
    except IsADirectoryError:
        raise InventoryError("is a directory; give the inventory YAML file",
                             path=path) from None
    except OSError as exc:
        raise InventoryError(f"cannot read inventory ({exc.strerror}); check "
                             "its permissions", path=path) from None
    return parse_inventory(data, path)


def parse_inventory(text: str | bytes, path: str | Path) -> Inventory:
    """Validate inventory YAML and build the Inventory.

    text: the YAML document; bytes are hashed as-is, str as UTF-8.
    path: the file it came from; relative paths inside resolve from its dir.
    """
    path = Path(path)
    ctx = _Ctx(path, Path(os.path.abspath(path)).parent)
    raw = text if isinstance(text, bytes) else text.encode("utf-8")
    try:
        source = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ctx.err(f"not UTF-8 (bad byte at offset {exc.start}); "
                      "save the file as UTF-8") from None
    return _build(_load_yaml(source, ctx), ctx, hashlib.sha256(raw).hexdigest())


def _load_yaml(source: str, ctx: _Ctx) -> dict:
    """Parse YAML safely, refusing syntax errors, duplicates, non-mappings.

    source: the YAML text.
    ctx: the parse context.
    """
    loader = yaml.SafeLoader(source)
    try:
        node = loader.get_single_node()
        if node is not None:
            _check_duplicates(node, (), ctx, set())
        doc = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ctx.err(f"invalid YAML{where}: {exc.problem or exc.context}; "
                      "fix the file") from None
    except yaml.YAMLError as exc:
        raise ctx.err(f"invalid YAML ({type(exc).__name__}); fix the file") from None
    finally:
        loader.dispose()
    if doc is None:
        raise ctx.err("inventory is empty; it needs at least a 'hosts' mapping")
    if not isinstance(doc, dict):
        raise ctx.err(f"the top level must be a mapping with keys such as "
                      f"{', '.join(TOP_KEYS)}, not {_kind(doc)}")
    return doc


def _check_duplicates(node: yaml.Node, trail: tuple, ctx: _Ctx, seen: set) -> None:
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


def _duplicate(trail: tuple, first: int, second: int, ctx: _Ctx) -> None:
    """Raise the error for the last key of trail appearing twice.

    trail: the keys from the root to the repeated key.
    first: line of its first occurrence.
    second: line of its second occurrence.
    ctx: the parse context.
    """
    lines, key = f"(lines {first} and {second})", trail[-1]
    if trail[:-1] == ("hosts",):
        raise replace(ctx, host=key).err(
            f"host '{key}' is defined twice {lines}; merge the entries or "
            "rename one")
    if len(trail) > 2 and trail[0] == "hosts":
        ctx, trail = replace(ctx, host=trail[1]), trail[2:]
    raise ctx.err(f"key '{key}' appears twice {lines}; keep only one",
                  ".".join(trail))


def _build(doc: dict, ctx: _Ctx, sha: str) -> Inventory:
    """Validate every section of doc and assemble the Inventory.

    doc: the parsed top-level mapping.
    ctx: the parse context.
    sha: hex SHA-256 of the file bytes.
    """
    _check_keys(doc, TOP_KEYS, ctx)
    if not doc.get("hosts"):
        raise ctx.err("'hosts' is missing or empty; define at least one host",
                      "hosts")
    stack = _secretize(_mapping(doc, "stack", ctx), ctx.at("stack"))
    secrets = {str(name): _secret(ref, ctx.at("secrets").at(name))
               for name, ref in _mapping(doc, "secrets", ctx).items()}
    lab = _lab(_mapping(doc, "lab", ctx), ctx.at("lab"))
    defaults = _mapping(doc, "defaults", ctx)
    _check_keys(defaults, DEFAULT_KEYS, ctx.at("defaults"))
    defaults = _fields(defaults, ctx.at("defaults"))
    raw_hosts = _mapping(doc, "hosts", ctx)
    members, group_vars = _groups(_mapping(doc, "groups", ctx), raw_hosts, ctx)
    hosts = {}
    for name, body in raw_hosts.items():
        hctx = replace(ctx, host=str(name))
        hosts[name] = _host(name, body, defaults, members, group_vars, hctx)
    _check_jumps(hosts, ctx)
    return Inventory(path=ctx.path, hosts=hosts,
                     groups=_all_groups(members, hosts, ctx),
                     group_vars=group_vars, stack=stack, secrets=secrets,
                     lab=lab, sha256=sha)


def _check_keys(data: dict, known: tuple, ctx: _Ctx) -> None:
    """Refuse keys of data that are not in known, suggesting a fix.

    data: the mapping to check.
    known: the allowed keys.
    ctx: the context of data.
    """
    for key in data:
        if key not in known:
            raise ctx.err(f"unknown key '{key}'{_suggest(key, known)}; "
                          f"known keys: {', '.join(known)}", key)


def _mapping(data: dict, key: str, ctx: _Ctx) -> dict:
    """Return data[key] as a dict ({} when absent or null), else raise.

    data: the enclosing mapping.
    key: the key whose value must be a mapping.
    ctx: the context of data.
    """
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ctx.err(f"must be a mapping, not {_kind(value)}", key)
    return value


def _secretize(value: Any, ctx: _Ctx, secret_key: bool = False) -> Any:
    """Copy value, turning references under secret-named keys into Secrets.

    value: a free-form YAML value.
    ctx: its context (prefix ends with its own key).
    secret_key: whether value sits under a key that names a secret.
    """
    if isinstance(value, dict):
        return {k: _secretize(v, ctx.at(k), secret_key or (isinstance(k, str)
                              and bool(SECRET_KEY_PATTERN.search(k))))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_secretize(v, ctx, secret_key) for v in value]
    if secret_key and isinstance(value, str) and value.strip():
        return _secret(value, ctx)
    return value


def _secret(value: Any, ctx: _Ctx) -> Secret:
    """Turn a reference into a Secret; refuse literals without echoing them.

    value: the value that must be an env:/file: reference.
    ctx: its context (prefix ends with its own key).
    """
    leaf = ctx.prefix.rstrip(".").rsplit(".", 1)[-1]
    if not is_secret_ref(value):
        raise ctx.err(f"key '{leaf}' holds a literal secret; use a reference "
                      "such as env:NAME or file:PATH (or rename the key if "
                      "it is not a secret)")
    try:
        return Secret.parse(value, ctx.base_dir)
    except SecretError as exc:
        raise ctx.err(str(exc)) from None


def _lab(raw: dict, ctx: _Ctx) -> dict[str, Any]:
    """Validate the lab section (bridge name, network CIDR).

    raw: the lab mapping.
    ctx: the section's context.
    """
    _check_keys(raw, LAB_KEYS, ctx)
    bridge = raw.get("bridge")
    if bridge is not None and not (isinstance(bridge, str) and len(bridge) <= 15
                                   and re.fullmatch(r"[A-Za-z0-9_.-]+", bridge)):
        raise ctx.err("bridge must be an interface name of 1 to 15 letters, "
                      "digits, '.', '_' or '-'", "bridge")
    network = raw.get("network")
    if network is not None:
        try:
            if not isinstance(network, str) or "/" not in network:
                raise ValueError(network)
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ctx.err(f"network {network!r} is not a CIDR such as "
                          "10.77.0.0/24", "network") from None
    return dict(raw)


def _fields(raw: dict, ctx: _Ctx) -> dict[str, Any]:
    """Validate the fields hosts share with defaults; return those present.

    raw: a host or defaults mapping.
    ctx: its context.
    """
    checks = {"port": _port, "user": _user, "vars": _vars, "ssh": _ssh,
              "sudo_password": _secret}
    return {key: None if raw[key] is None else check(raw[key], ctx.at(key))
            for key, check in checks.items() if key in raw}


def _host(name: Any, raw: Any, defaults: dict, members: dict,
          group_vars: dict, ctx: _Ctx) -> Host:
    """Validate one host entry and merge defaults and groups into it.

    name: the host's key under hosts.
    raw: its mapping.
    defaults: validated defaults fields.
    members: groups section, group name -> host names.
    group_vars: group name -> vars.
    ctx: the host's context.
    """
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ctx.err(f"host name is invalid; {_NAME_HINT}")
    if not isinstance(raw, dict):
        raise ctx.err(f"host entry must be a mapping with at least 'address', "
                      f"not {_kind(raw)}")
    _check_keys(raw, HOST_KEYS, ctx)
    own = _fields(raw, ctx)
    groups = list(dict.fromkeys([
        *_name_list(raw.get("groups"), ctx.at("groups"), "group"),
        *(g for g, hs in members.items() if name in hs)]))
    merged = dict(defaults.get("vars") or {})
    for group in groups:
        merged.update(group_vars.get(group, {}))
    merged.update(own.get("vars") or {})
    sudo = own["sudo_password"] if "sudo_password" in own else defaults.get(
        "sudo_password")
    return Host(name=name, address=_address(raw, ctx),
                port=_pick("port", own, defaults, 22),
                user=_pick("user", own, defaults, "root"),
                roles=_roles(raw.get("roles"), ctx),
                groups=tuple(groups), vars=merged, sudo_password=sudo,
                ssh=SSHOptions(**{**(defaults.get("ssh") or {}),
                                  **(own.get("ssh") or {})}))


def _address(raw: dict, ctx: _Ctx) -> str:
    """Return the host's address, checked as an IP address or DNS name.

    raw: the host mapping.
    ctx: the host's context.
    """
    if "address" not in raw:
        raise ctx.err("missing required key 'address'; set it to the host's "
                      "IP address or DNS name", "address")
    value = raw["address"]
    if not isinstance(value, str) or not value.strip():
        what = "empty" if value in (None, "") else _kind(value)
        raise ctx.err(f"address must be an IP address or DNS name, not {what}",
                      "address")
    value = value.strip()
    labels = value.rstrip(".").split(".")
    if _is_ip(value) or (len(value) <= 253 and not labels[-1].isdigit()
                         and all(_DNS_LABEL.match(label) for label in labels)):
        return value
    raise ctx.err(f"address '{value}' is neither a valid IP address nor a "
                  "DNS name", "address")


def _is_ip(text: str) -> bool:
    """Tell whether text is an IPv4 or IPv6 address.

    text: the candidate address.
    """
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


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


def _port(value: Any, ctx: _Ctx) -> int:
    """Check a TCP port number (1..65535).

    value: the YAML value.
    ctx: its context.
    """
    return _int(value, ctx, 1, 65535)


def _int(value: Any, ctx: _Ctx, low: int, high: int = 2**31) -> int:
    """Check an integer within [low, high].

    value: the YAML value.
    ctx: its context.
    low: smallest allowed value.
    high: largest allowed value.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise ctx.err(f"must be an integer, not {_kind(value)}")
    if not low <= value <= high:
        raise ctx.err(f"{value} is out of range; use a value from {low} to {high}")
    return value


def _user(value: Any, ctx: _Ctx) -> str:
    """Check a login user name.

    value: the YAML value.
    ctx: its context.
    """
    if not isinstance(value, str) or not _USER_RE.match(value):
        raise ctx.err("must be a login name such as 'ops' (letters, digits, "
                      "'_', '.', '-')")
    return value


def _vars(value: Any, ctx: _Ctx) -> dict[str, Any]:
    """Check a free-form vars mapping and convert its secret references.

    value: the YAML value.
    ctx: its context.
    """
    if not isinstance(value, dict):
        raise ctx.err(f"must be a mapping, not {_kind(value)}")
    return _secretize(value, ctx)


def _name_list(value: Any, ctx: _Ctx, what: str) -> list[str]:
    """Check a list of names (roles, groups, hosts); null means empty.

    value: the YAML value.
    ctx: its context.
    what: what the names are, for messages.
    """
    if value is None:
        return []
    if not isinstance(value, list):
        raise ctx.err(f"must be a list of {what} names, not {_kind(value)}")
    for item in value:
        if not isinstance(item, str) or not NAME_RE.match(item):
            raise ctx.err(f"{what} name {item!r} is invalid; {_NAME_HINT}")
    return list(value)


def _roles(value: Any, ctx: _Ctx) -> tuple[str, ...]:
    """Check a host's roles against ROLE_NAMES.

    value: the YAML value.
    ctx: the host's context.
    """
    roles = _name_list(value, ctx.at("roles"), "role")
    for role in roles:
        if role not in ROLE_NAMES:
            raise ctx.err(f"role '{role}' does not exist"
                          f"{_suggest(role, ROLE_NAMES)} (known roles: "
                          f"{', '.join(sorted(ROLE_NAMES))})", "roles")
    return tuple(dict.fromkeys(roles))


def _ssh(value: Any, ctx: _Ctx) -> dict[str, Any]:
    """Check ssh options; return the validated keys present.

    value: the YAML value.
    ctx: its context.
    """
    if not isinstance(value, dict):
        raise ctx.err(f"must be a mapping, not {_kind(value)}")
    _check_keys(value, SSH_KEYS, ctx)
    out: dict[str, Any] = {}
    for key, item in value.items():
        sub = ctx.at(key)
        if item is None:
            continue
        if key in ("identity", "known_hosts", "config"):
            out[key] = _path(item, sub)
        elif key in ("connect_timeout", "command_timeout"):
            out[key] = _seconds(item, sub)
        elif key == "keepalive":
            out[key] = _int(item, sub, 0)
        elif key == "trust_new_keys":
            if not isinstance(item, bool):
                raise sub.err(f"must be true or false, not {_kind(item)}")
            out[key] = item
        else:
            out[key] = _jump(item, sub)
    return out


def _path(value: Any, ctx: _Ctx) -> Path:
    """Expand ~ and $VAR in a path and anchor it at the inventory's dir.

    value: the YAML value.
    ctx: its context.
    """
    if not isinstance(value, str) or not value.strip():
        raise ctx.err("must be a non-empty file path")
    expanded = os.path.expanduser(os.path.expandvars(value))
    left = _ENV_LEFT.search(expanded)
    if left:
        raise ctx.err(f"environment variable {left.group(1)} used in the path "
                      "is not set; export it or write the path out")
    return Path(os.path.normpath(ctx.base_dir / expanded))


def _seconds(value: Any, ctx: _Ctx) -> float:
    """Check a positive number of seconds.

    value: the YAML value.
    ctx: its context.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ctx.err("must be a number of seconds greater than 0")
    return float(value)


def _jump(value: Any, ctx: _Ctx) -> str:
    """Check a proxy_jump: a host name or [user@]host[:port].

    value: the YAML value.
    ctx: its context.
    """
    match = _JUMP_RE.match(value) if isinstance(value, str) else None
    if not match or (match.group(1) and not 0 < int(match.group(1)) < 65536):
        raise ctx.err("must be an inventory host name or [user@]host[:port]")
    return value


def _groups(raw: dict, hosts: dict, ctx: _Ctx) -> tuple[dict, dict]:
    """Validate the groups section; return (name -> hosts, name -> vars).

    raw: the groups mapping.
    hosts: the raw hosts mapping, to check membership against.
    ctx: the root context.
    """
    members, group_vars = {}, {}
    for name, body in raw.items():
        gctx = ctx.at("groups").at(name)
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise gctx.err(f"group name is invalid; {_NAME_HINT}")
        if isinstance(body, dict):
            _check_keys(body, GROUP_KEYS, gctx)
            group_vars[name] = _vars(body.get("vars") or {}, gctx.at("vars"))
            body, gctx = body.get("hosts"), gctx.at("hosts")
        members[name] = _name_list(body, gctx, "host")
        for host in members[name]:
            if host not in hosts:
                raise gctx.err(f"host '{host}' is not defined under hosts"
                               f"{_suggest(host, hosts)}; add it or fix the name")
    return members, group_vars


def _all_groups(members: dict, hosts: dict[str, Host],
                ctx: _Ctx) -> dict[str, tuple[str, ...]]:
    """Map every group (section or host-declared) to its hosts, in order.

    members: groups section, group name -> host names.
    hosts: the built hosts.
    ctx: the root context.
    """
    names = dict.fromkeys([*members, *(g for h in hosts.values() for g in h.groups)])
    for name in names:
        if name in hosts:
            raise ctx.err(f"group '{name}' has the same name as a host; "
                          "rename one so selections are unambiguous", "groups")
    return {g: tuple(n for n, h in hosts.items() if g in h.groups) for g in names}


def _check_jumps(hosts: dict[str, Host], ctx: _Ctx) -> None:
    """Refuse proxy_jump chains through inventory hosts that loop.

    hosts: the built hosts.
    ctx: the root context.
    """
    for host in hosts.values():
        chain, hop = [host.name], host.ssh.proxy_jump
        while hop in hosts:
            chain.append(hop)
            if hop == host.name:
                raise replace(ctx, host=host.name).err(
                    f"proxy_jump loops ({' -> '.join(chain)}); break the "
                    "cycle", "ssh.proxy_jump")
            if len(chain) > len(hosts):
                break
            hop = hosts[hop].ssh.proxy_jump


def _suggest(word: Any, choices: Iterable[Any]) -> str:
    """Return " (did you mean 'x'?)" for the closest choice, or ''.

    word: the misspelt name.
    choices: the valid names.
    """
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _names(items: Iterable[Any]) -> str:
    """Join names for a message, or say 'none'.

    items: the names.
    """
    text = ", ".join(str(i) for i in items)
    return text or "none"


def _kind(value: Any) -> str:
    """Describe the YAML type of value for messages.

    value: any parsed YAML value.
    """
    kinds = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
             int: "an integer", float: "a number", type(None): "null"}
    return kinds.get(type(value), type(value).__name__)


def _plain(value: Any) -> Any:
    """Make value JSON-able: Secrets become refs, paths and keys strings.

    value: a vars value.
    """
    if isinstance(value, Secret):
        return value.ref
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path) or hasattr(value, "isoformat"):
        return str(value)
    return value
