"""Packages, services, users and groups: pkg.installed, pkg.removed, service.running,
service.dead, user.present, group.present."""

from __future__ import annotations

from typing import Any

from ..facts import GroupFact, GroupInfo, PackagesFact, ServiceFact, ServiceInfo, UserFact, UserInfo
from ..shell import cmd
from .base import Plan, State, StateError

APT = (
    "DEBIAN_FRONTEND=noninteractive apt-get -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"
)


def _names(name: str | None, names: list[str] | None) -> list[str]:
    out = list(names) if names else [name or ""]
    if not all(out):
        raise StateError("a package name is empty")
    return out


class PkgInstalled(State[dict[str, str]]):
    """pkg.installed: Debian packages installed (apt-get, non-interactive; version optional).

    name: a package, or use names=[...] for several.
    version: an exact version (only with one package).
    """

    kind = "pkg.installed"

    def __init__(
        self, name: str | None = None, *, names: list[str] | None = None, version: str | None = None, **kw: Any
    ) -> None:
        self.pkgs = _names(name, names)
        super().__init__(name or " ".join(self.pkgs), **kw)
        if version and len(self.pkgs) != 1:
            raise StateError(f"{self.id}: version= needs exactly one package")
        self.version = version

    def fact(self) -> PackagesFact:
        return PackagesFact(self.pkgs)

    def plan(self, fact: dict[str, str]) -> Plan:
        missing = [p for p in self.pkgs if p not in fact or (self.version and fact[p] != self.version)]
        if not missing:
            return Plan(comment=f"installed: {', '.join(self.pkgs)}")
        spec = [f"{p}={self.version}" if self.version else p for p in missing]
        return Plan(
            {"old": {p: fact.get(p) for p in missing}, "new": dict.fromkeys(missing, self.version or "latest")},
            [f"{APT} install --no-install-recommends " + " ".join(cmd(s) for s in spec)],
            comment=f"install {', '.join(spec)}",
        )


class PkgRemoved(State[dict[str, str]]):
    """pkg.removed: Debian packages not installed.

    name: a package, or names=[...].
    """

    kind = "pkg.removed"

    def __init__(self, name: str | None = None, *, names: list[str] | None = None, **kw: Any) -> None:
        self.pkgs = _names(name, names)
        super().__init__(name or " ".join(self.pkgs), **kw)

    def fact(self) -> PackagesFact:
        return PackagesFact(self.pkgs)

    def plan(self, fact: dict[str, str]) -> Plan:
        present = [p for p in self.pkgs if p in fact]
        if not present:
            return Plan(comment=f"not installed: {', '.join(self.pkgs)}")
        return Plan(
            {"old": {p: fact[p] for p in present}, "new": None},
            [f"{APT} remove " + " ".join(cmd(p) for p in present)],
            comment=f"remove {', '.join(present)}",
        )


def _unit(name: str) -> str:
    return name if "." in name else name + ".service"


class ServiceRunning(State[ServiceInfo]):
    """service.running: a systemd service active (and enabled unless enabled=False);
    with watch=[...], reloaded (restarted when it cannot reload) when a watched state changed.

    name: the service.
    enabled: also enable at boot (None: leave as is).
    reload: react to watched changes by reload (False: restart).
    reload_with: a shell script that reloads the service and makes sure the new configuration
        took (e.g. a daemon whose reload signal can fail quietly); default `systemctl reload`.
    """

    kind = "service.running"

    def __init__(
        self, name: str, *, enabled: bool | None = True, reload: bool = True, reload_with: str | None = None, **kw: Any
    ) -> None:
        super().__init__(name, **kw)
        self.unit, self.enabled, self.reload, self.reload_with = _unit(name), enabled, reload, reload_with

    def fact(self) -> ServiceFact:
        return ServiceFact(self.unit)

    def plan(self, fact: ServiceInfo) -> Plan:
        if fact.load_state != "loaded":
            return Plan(error=f"service {self.unit} does not exist (LoadState={fact.load_state})")
        commands: list[str] = []
        old: dict[str, Any] = {}
        new: dict[str, Any] = {}
        if fact.active_state != "active":
            old["active"], new["active"] = fact.active_state, "active"
            commands.append(cmd("systemctl", "start", self.unit))
        state = fact.unit_file_state
        if self.enabled is not None and state not in ("static", "alias", "indirect", "generated"):
            if self.enabled != (state == "enabled"):
                old["enabled"], new["enabled"] = state, "enabled" if self.enabled else "disabled"
                commands.append(cmd("systemctl", "enable" if self.enabled else "disable", self.unit))
        if not commands:
            return Plan(comment=f"{self.unit} is running")
        return Plan(
            {"old": old, "new": new}, commands, comment=f"{self.unit}: " + ", ".join(f"{k} {v}" for k, v in new.items())
        )

    def react(self, fact: ServiceInfo) -> tuple[str, list[str]]:
        verb = "reload" if (self.reload and fact.can_reload) else "restart"
        if verb == "reload" and self.reload_with:
            return verb, [self.reload_with]
        return verb, [cmd("systemctl", verb, self.unit)]


class ServiceDead(State[ServiceInfo]):
    """service.dead: a systemd service stopped (and disabled unless enabled=None/True).

    name: the service.
    enabled: False to also disable it; None to leave boot state alone.
    """

    kind = "service.dead"

    def __init__(self, name: str, *, enabled: bool | None = False, **kw: Any) -> None:
        super().__init__(name, **kw)
        self.unit, self.enabled = _unit(name), enabled

    def fact(self) -> ServiceFact:
        return ServiceFact(self.unit)

    def plan(self, fact: ServiceInfo) -> Plan:
        if fact.load_state != "loaded":
            return Plan(comment=f"{self.unit} is not installed")
        commands: list[str] = []
        old: dict[str, Any] = {}
        new: dict[str, Any] = {}
        if fact.active_state in ("active", "activating", "reloading"):
            old["active"], new["active"] = fact.active_state, "inactive"
            commands.append(cmd("systemctl", "stop", self.unit))
        if self.enabled is False and fact.unit_file_state == "enabled":
            old["enabled"], new["enabled"] = "enabled", "disabled"
            commands.append(cmd("systemctl", "disable", self.unit))
        if not commands:
            return Plan(comment=f"{self.unit} is stopped")
        return Plan({"old": old, "new": new}, commands, comment=f"{self.unit} stopped")


class GroupPresent(State["GroupInfo | None"]):
    """group.present: a local group exists.

    name: group name.
    gid: wanted gid (optional).
    system: create as a system group.
    """

    kind = "group.present"

    def __init__(self, name: str, *, gid: int | None = None, system: bool = False, **kw: Any) -> None:
        super().__init__(name, **kw)
        self.gid, self.system = gid, system

    def fact(self) -> GroupFact:
        return GroupFact(self.name)

    def plan(self, fact: GroupInfo | None) -> Plan:
        if fact is None:
            args: list[Any] = (
                ["groupadd"]
                + (["--system"] if self.system else [])
                + (["--gid", self.gid] if self.gid is not None else [])
                + [self.name]
            )
            return Plan({"old": None, "new": {"gid": self.gid}}, [cmd(*args)], comment=f"group {self.name} created")
        if self.gid is not None and fact.gid != int(self.gid):
            return Plan(
                {"old": {"gid": fact.gid}, "new": {"gid": int(self.gid)}},
                [cmd("groupmod", "--gid", self.gid, self.name)],
                comment=f"group {self.name} gid changed",
            )
        return Plan(comment=f"group {self.name} exists")


class UserPresent(State[UserInfo]):
    """user.present: a local user with this home, shell, primary and extra groups.

    name: user name.
    home: home directory (default /home/NAME, or none for system users).
    shell: login shell.
    groups: extra groups (exactly these when given).
    system: create as a system user (no login shell by default).
    uid: wanted uid (optional).
    """

    kind = "user.present"

    def __init__(
        self,
        name: str,
        *,
        home: str | None = None,
        shell: str | None = None,
        groups: list[str] | None = None,
        system: bool = False,
        uid: int | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(name, **kw)
        self.system, self.uid = system, uid
        self.home = home or (f"/home/{name}" if not system else "/nonexistent")
        self.shell = shell or ("/usr/sbin/nologin" if system else "/bin/bash")
        self.groups = sorted(groups) if groups is not None else None

    def fact(self) -> UserFact:
        return UserFact(self.name)

    def plan(self, fact: UserInfo) -> Plan:
        if not fact.exists:
            args: list[Any] = ["useradd", "--home-dir", self.home, "--shell", self.shell]
            args += ["--gid", self.name] if fact.group_exists else ["--user-group"]
            args += ["--system"] if self.system else ["--create-home"]
            args += ["--uid", self.uid] if self.uid is not None else []
            args += ["--groups", ",".join(self.groups)] if self.groups else []
            return Plan(
                {"old": None, "new": {"home": self.home, "shell": self.shell, "groups": self.groups}},
                [cmd(*args, self.name)],
                comment=f"user {self.name} created",
            )
        have = {"uid": str(fact.uid), "home": fact.home, "shell": fact.shell}
        old: dict[str, Any] = {}
        new: dict[str, Any] = {}
        args = []
        for key, flag, want in (
            ("home", "--home", self.home),
            ("shell", "--shell", self.shell),
            ("uid", "--uid", None if self.uid is None else str(self.uid)),
        ):
            if want is not None and have[key] != want:
                old[key], new[key] = have[key], want
                args += [flag, want]
        wanted = sorted(set(self.groups or ()) - {self.name})
        if self.groups is not None and list(fact.groups) != wanted:
            old["groups"], new["groups"] = list(fact.groups), wanted
            args += ["--groups", ",".join(self.groups)]
        if not args:
            return Plan(comment=f"user {self.name} is in the wanted state")
        return Plan(
            {"old": old, "new": new},
            [cmd("usermod", *args, self.name)],
            comment=f"user {self.name} updated: {', '.join(new)}",
        )
