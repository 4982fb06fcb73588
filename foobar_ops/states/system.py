"""Packages, services, users and groups: pkg.installed, pkg.removed, service.running,
service.dead, user.present, group.present."""
from __future__ import annotations

from ..shell import cmd
from .base import Plan, State, StateError, keyvals

APT = ("DEBIAN_FRONTEND=noninteractive apt-get -y -q -o Dpkg::Options::=--force-confdef "
       "-o Dpkg::Options::=--force-confold")


def _names(name, names) -> list[str]:
    out = list(names) if names else [name]
    if not all(out):
        raise StateError("a package name is empty")
    return out


def _dpkg_probe(pkgs: list[str]) -> str:
    return ("dpkg-query -W -f='pkg=${Package} status=${db:Status-Abbrev} version=${Version}\\n' "
            + " ".join(cmd(p) for p in pkgs) + " 2>/dev/null; true")


def _installed(facts: str) -> dict[str, str]:
    """Return package -> version for packages dpkg reports as installed ("ii")."""
    found = {}
    for line in facts.splitlines():
        f = keyvals(line)
        if f.get("pkg") and f.get("status", "").startswith("ii"):
            found[f["pkg"]] = f.get("version", "")
    return found


class PkgInstalled(State):
    """pkg.installed: Debian packages installed (apt-get, non-interactive; version optional).

    name: a package, or use names=[...] for several.
    version: an exact version (only with one package).
    """

    kind = "pkg.installed"

    def __init__(self, name=None, *, names=None, version=None, **kw):
        self.pkgs = _names(name, names)
        super().__init__(name or " ".join(self.pkgs), **kw)
        if version and len(self.pkgs) != 1:
            raise StateError(f"{self.id}: version= needs exactly one package")
        self.version = version

    def probe(self) -> str:
        return _dpkg_probe(self.pkgs)

    def plan(self, facts: str) -> Plan:
        have = _installed(facts)
        missing = [p for p in self.pkgs if p not in have or (self.version and have[p] != self.version)]
        if not missing:
            return Plan(comment=f"installed: {', '.join(self.pkgs)}")
        spec = [f"{p}={self.version}" if self.version else p for p in missing]
        return Plan({"old": {p: have.get(p) for p in missing}, "new": {p: self.version or "latest" for p in missing}},
                    [f"{APT} install --no-install-recommends " + " ".join(cmd(s) for s in spec)],
                    comment=f"install {', '.join(spec)}")


class PkgRemoved(State):
    """pkg.removed: Debian packages not installed.

    name: a package, or names=[...].
    """

    kind = "pkg.removed"

    def __init__(self, name=None, *, names=None, **kw):
        self.pkgs = _names(name, names)
        super().__init__(name or " ".join(self.pkgs), **kw)

    def probe(self) -> str:
        return _dpkg_probe(self.pkgs)

    def plan(self, facts: str) -> Plan:
        have = _installed(facts)
        present = [p for p in self.pkgs if p in have]
        if not present:
            return Plan(comment=f"not installed: {', '.join(self.pkgs)}")
        return Plan({"old": {p: have[p] for p in present}, "new": None},
                    [f"{APT} remove " + " ".join(cmd(p) for p in present)],
                    comment=f"remove {', '.join(present)}")


def _unit(name: str) -> str:
    return name if "." in name else name + ".service"


def _service_probe(unit: str) -> str:
    return (f"systemctl show -p LoadState -p ActiveState -p UnitFileState -p CanReload {cmd(unit)} "
            "| tr '\\n' ' '; echo")


class ServiceRunning(State):
    """service.running: a systemd service active (and enabled unless enabled=False);
    with watch=[...], reloaded (restarted when it cannot reload) when a watched state changed.

    name: the service.
    enabled: also enable at boot (None: leave as is).
    reload: react to watched changes by reload (False: restart).
    """

    kind = "service.running"

    def __init__(self, name, *, enabled=True, reload=True, **kw):
        super().__init__(name, **kw)
        self.unit, self.enabled, self.reload = _unit(name), enabled, reload

    def probe(self) -> str:
        return _service_probe(self.unit)

    def plan(self, facts: str) -> Plan:
        f = keyvals(facts)
        if f.get("LoadState") != "loaded":
            return Plan(error=f"service {self.unit} does not exist (LoadState={f.get('LoadState', '?')})")
        commands, old, new = [], {}, {}
        if f.get("ActiveState") != "active":
            old["active"], new["active"] = f.get("ActiveState"), "active"
            commands.append(cmd("systemctl", "start", self.unit))
        state = f.get("UnitFileState", "")
        if self.enabled is not None and state not in ("static", "alias", "indirect", "generated"):
            if self.enabled != (state == "enabled"):
                old["enabled"], new["enabled"] = state, "enabled" if self.enabled else "disabled"
                commands.append(cmd("systemctl", "enable" if self.enabled else "disable", self.unit))
        if not commands:
            return Plan(comment=f"{self.unit} is running")
        return Plan({"old": old, "new": new}, commands, comment=f"{self.unit}: " + ", ".join(
            f"{k} {v}" for k, v in new.items()))

    def react(self, facts: str) -> tuple[str, list[str]]:
        can = keyvals(facts).get("CanReload") == "yes"
        verb = "reload" if (self.reload and can) else "restart"
        return verb, [cmd("systemctl", verb, self.unit)]


class ServiceDead(State):
    """service.dead: a systemd service stopped (and disabled unless enabled=None/True).

    name: the service.
    enabled: False to also disable it; None to leave boot state alone.
    """

    kind = "service.dead"

    def __init__(self, name, *, enabled=False, **kw):
        super().__init__(name, **kw)
        self.unit, self.enabled = _unit(name), enabled

    def probe(self) -> str:
        return _service_probe(self.unit)

    def plan(self, facts: str) -> Plan:
        f = keyvals(facts)
        if f.get("LoadState") not in ("loaded",):
            return Plan(comment=f"{self.unit} is not installed")
        commands, old, new = [], {}, {}
        if f.get("ActiveState") in ("active", "activating", "reloading"):
            old["active"], new["active"] = f.get("ActiveState"), "inactive"
            commands.append(cmd("systemctl", "stop", self.unit))
        if self.enabled is False and f.get("UnitFileState") == "enabled":
            old["enabled"], new["enabled"] = "enabled", "disabled"
            commands.append(cmd("systemctl", "disable", self.unit))
        if not commands:
            return Plan(comment=f"{self.unit} is stopped")
        return Plan({"old": old, "new": new}, commands, comment=f"{self.unit} stopped")


class GroupPresent(State):
    """group.present: a local group exists.

    name: group name.
    gid: wanted gid (optional).
    system: create as a system group.
    """

    kind = "group.present"

    def __init__(self, name, *, gid=None, system=False, **kw):
        super().__init__(name, **kw)
        self.gid, self.system = gid, system

    def probe(self) -> str:
        return f"getent group {cmd(self.name)} || true"

    def plan(self, facts: str) -> Plan:
        line = facts.strip()
        if not line:
            args = ["groupadd"] + (["--system"] if self.system else []) + (
                ["--gid", self.gid] if self.gid is not None else []) + [self.name]
            return Plan({"old": None, "new": {"gid": self.gid}}, [cmd(*args)], comment=f"group {self.name} created")
        gid = int(line.split(":")[2])
        if self.gid is not None and gid != int(self.gid):
            return Plan({"old": {"gid": gid}, "new": {"gid": int(self.gid)}},
                        [cmd("groupmod", "--gid", self.gid, self.name)], comment=f"group {self.name} gid changed")
        return Plan(comment=f"group {self.name} exists")


class UserPresent(State):
    """user.present: a local user with this home, shell, primary and extra groups.

    name: user name.
    home: home directory (default /home/NAME, or none for system users).
    shell: login shell.
    groups: extra groups (exactly these when given).
    system: create as a system user (no login shell by default).
    uid: wanted uid (optional).
    """

    kind = "user.present"

    def __init__(self, name, *, home=None, shell=None, groups=None, system=False, uid=None, **kw):
        super().__init__(name, **kw)
        self.system, self.uid = system, uid
        self.home = home or (f"/home/{name}" if not system else "/nonexistent")
        self.shell = shell or ("/usr/sbin/nologin" if system else "/bin/bash")
        self.groups = sorted(groups) if groups is not None else None

    def probe(self) -> str:
        n = cmd(self.name)
        return (f"getent group {n} >/dev/null && echo samegroup=yes; "
                f"if pw=$(getent passwd {n}); then echo \"pw:$pw\"; echo groups=$(id -Gn {n} | tr ' ' ','); fi; true")

    def plan(self, facts: str) -> Plan:
        lines = facts.strip().splitlines()
        pw = next((ln[3:] for ln in lines if ln.startswith("pw:")), None)
        if pw is None:
            same = keyvals(facts).get("samegroup") == "yes"
            args = ["useradd", "--home-dir", self.home, "--shell", self.shell]
            args += ["--gid", self.name] if same else ["--user-group"]
            args += ["--system"] if self.system else ["--create-home"]
            args += ["--uid", self.uid] if self.uid is not None else []
            args += ["--groups", ",".join(self.groups)] if self.groups else []
            return Plan({"old": None, "new": {"home": self.home, "shell": self.shell, "groups": self.groups}},
                        [cmd(*args, self.name)], comment=f"user {self.name} created")
        fields = pw.split(":")
        have = {"uid": fields[2], "home": fields[5], "shell": fields[6]}
        extra = sorted(set(keyvals(lines[-1]).get("groups", "").split(",")) - {self.name, ""})
        old, new, args = {}, {}, []
        for key, flag, want in (("home", "--home", self.home), ("shell", "--shell", self.shell),
                                ("uid", "--uid", None if self.uid is None else str(self.uid))):
            if want is not None and have[key] != want:
                old[key], new[key] = have[key], want
                args += [flag, want]
        wanted = sorted(set(self.groups or ()) - {self.name})
        if self.groups is not None and extra != wanted:
            old["groups"], new["groups"] = extra, wanted
            args += ["--groups", ",".join(self.groups)]
        if not args:
            return Plan(comment=f"user {self.name} is in the wanted state")
        return Plan({"old": old, "new": new}, [cmd("usermod", *args, self.name)],
                    comment=f"user {self.name} updated: {', '.join(new)}")
