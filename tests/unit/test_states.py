"""States without a host: facts in (exactly as each probe prints them on Debian 12), planned
commands and diff out, for every state.

Commands are checked as argv through shlex.split, so a test fails when an argument is not
quoted the way a POSIX shell would need it.
"""
from __future__ import annotations

import base64
import hashlib
import re
import shlex

import pytest

from foobar_ops import states as s
from foobar_ops.states.base import Plan, StateError, keyvals, norm_mode
from foobar_ops.states.files import BACKUP_DIR, MAX_FETCH
from foobar_ops.templating import TemplateError

# --- facts as the probes print them -------------------------------------------------------

ABSENT = "type=absent\nparent=yes\n"
ABSENT_NO_PARENT = "type=absent\nparent=no\n"
OTHER = "type=other\nparent=yes\n"  # a socket, a fifo, a device


def file_facts(content: bytes, *, owner="root", group="root", mode="0644", parent="yes") -> str:
    """What _stat_probe(fetch=True) prints for a regular file of at most MAX_FETCH bytes."""
    return (f"type=file\nowner={owner} group={group} mode={mode} size={len(content)}\n"
            f"content={base64.b64encode(content).decode()}\nparent={parent}\n")


def big_file_facts(content_sha256: str, size: int) -> str:
    """What _stat_probe(fetch=True) prints for a file larger than MAX_FETCH."""
    return (f"type=file\nowner=root group=root mode=0644 size={size}\n"
            f"sha256={content_sha256}\nparent=yes\n")


def stat_facts(kind: str, *, owner="root", group="root", mode="0755", size=4096) -> str:
    """What _stat_probe(fetch=False) prints for a file or directory (no content line)."""
    return f"type={kind}\nowner={owner} group={group} mode={mode} size={size}\nparent=yes\n"


def managed_dir_facts() -> str:
    """What file.managed's probe (fetch=True) prints when the path is a directory."""
    return "type=dir\nparent=yes\n"


def link_facts(target: str) -> str:
    return f"type=link\ntarget={target}\nparent=yes\n"  # as the probe prints it


def dpkg(*rows: tuple[str, str, str]) -> str:
    """dpkg-query -W -f='pkg=${Package} status=${db:Status-Abbrev} version=${Version}\\n' output.

    db:Status-Abbrev is three characters ("ii ", "rc ", "un "), hence two spaces before version=.
    """
    return "".join(f"pkg={p} status={st:<3} version={v}\n" for p, st, v in rows)


def unit(load="loaded", active="active", file_state="enabled", can_reload="yes") -> str:
    """systemctl show -p ... | tr '\\n' ' '; echo  -- one line, a trailing space."""
    return f"LoadState={load} ActiveState={active} UnitFileState={file_state} CanReload={can_reload} \n"


def argv(command: str) -> list[str]:
    return shlex.split(command)


def validator_check(line: str) -> str:
    """The validator command inside file.managed's validate line: out=$(CHECK 2>&1) ..."""
    return re.search(r"out=\$\((.*) 2>&1\)", line).group(1)


def assert_no_change(plan: Plan) -> None:
    assert plan.error is None
    assert not plan.needed
    assert plan.changes == {}
    assert plan.commands == []
    assert plan.diff is None
    assert plan.uploads == {}


# --- helpers in base ------------------------------------------------------------------------


def test_keyvals_reads_several_pairs_per_line_and_the_whole_content_line():
    facts = file_facts(b"x=1 y=2\n")
    f = keyvals(facts)
    assert f["type"] == "file" and f["owner"] == "root" and f["mode"] == "0644" and f["size"] == "8"
    assert base64.b64decode(f["content"]) == b"x=1 y=2\n"
    assert f["parent"] == "yes"


@pytest.mark.parametrize("given, wanted", [("644", "0644"), ("0644", "0644"), (0o750, "0750"),
                                           ("4755", "4755"), (None, None)])
def test_norm_mode_accepts_octal(given, wanted):
    assert norm_mode(given) == wanted


@pytest.mark.parametrize("bad", ["rw-r--r--", "0999", "", "07777", "0o644"])
def test_norm_mode_refuses_non_octal(bad):
    with pytest.raises(StateError, match="octal"):
        norm_mode(bad)


def test_state_needs_a_name_and_ids_default_to_kind_and_name():
    with pytest.raises(StateError, match="name is required"):
        s.service.running("")
    assert s.service.running("nginx").id == "service.running:nginx"
    a = s.file.directory("/srv/www")
    b = s.service.running("nginx", require=a, watch=["x"], onchanges=("y", a))
    assert b.require == ("file.directory:/srv/www",)
    assert b.watch == ("x",) and b.onchanges == ("y", "file.directory:/srv/www")


# --- file.managed ---------------------------------------------------------------------------

CFG = "/etc/haproxy/haproxy.cfg"
TMP = "/etc/haproxy/.haproxy.cfg.foobar-new"
OLD = b"global\n    daemon\nfrontend www\n    bind :80\n"
NEW = b"global\n    daemon\nfrontend www\n    bind :8080\n"


def test_managed_in_wanted_state_plans_nothing():
    plan = s.file.managed(CFG, NEW).plan(file_facts(NEW))
    assert_no_change(plan)
    assert plan.comment == f"{CFG} is in the wanted state"


def test_managed_content_drift_diffs_and_installs_validates_backs_up_and_renames():
    st = s.file.managed(CFG, NEW.decode(), validate="haproxy -c -f {}")
    plan = st.plan(file_facts(OLD))
    assert plan.needed and plan.error is None
    assert plan.comment == f"{CFG} updated"
    assert plan.diff.splitlines()[:2] == [f"--- {CFG} (live)", f"+++ {CFG} (wanted)"]
    assert "-    bind :80" in plan.diff.splitlines()
    assert "+    bind :8080" in plan.diff.splitlines()
    assert plan.changes == {"old": {"size": len(OLD)},
                            "new": {"sha256": hashlib.sha256(NEW).hexdigest(), "size": len(NEW)}}
    assert plan.uploads == {"content": NEW}

    install, validate, mkdir, copy, prune, rename = plan.commands
    assert argv(install) == ["install", "-o", "root", "-g", "root", "-m", "0644",
                             "$FOOBAR_STAGE/content", TMP]
    assert '"$FOOBAR_STAGE"/content' in install  # expanded by the shell, not quoted away
    assert "haproxy -c -f " + shlex.quote(TMP) in validate and "exit 97" in validate
    assert argv(mkdir) == ["mkdir", "-p", "-m", "0700", BACKUP_DIR]
    assert argv(copy)[:3] == ["cp", "-p", CFG]
    assert argv(copy)[3].startswith(f"{BACKUP_DIR}/etc%haproxy%haproxy.cfg.$(date")
    assert "tail -n +6" in prune
    assert argv(rename) == ["mv", "-f", TMP, CFG]


def test_managed_validate_puts_the_quoted_candidate_in_place_of_braces():
    path = "/etc/my app/it's.cfg"
    tmp = "/etc/my app/.it's.cfg.foobar-new"
    plan = s.file.managed(path, "x\n", validate="haproxy -c -f {}").plan(ABSENT)
    line = next(c for c in plan.commands if "exit 97" in c)
    assert "{}" not in line
    assert argv(validator_check(line)) == ["haproxy", "-c", "-f", tmp]
    assert "rm -f " + shlex.quote(tmp) in line  # the rejected candidate is removed


def test_managed_validate_runs_before_the_live_file_is_touched():
    plan = s.file.managed(CFG, NEW, validate="haproxy -c -f {}").plan(file_facts(OLD))
    kinds = ["validate" if "exit 97" in c else c.split()[0] for c in plan.commands]
    assert kinds == ["install", "validate", "mkdir", "cp", "ls", "mv"]


def test_managed_validate_in_context_runs_the_validator_in_a_private_mount_namespace():
    st = s.file.managed(CFG, NEW, validate="haproxy -c -f /etc/haproxy", validate_in_context=True)
    line = next(c for c in st.plan(file_facts(OLD)).commands if "exit 97" in c)
    check = argv(validator_check(line))
    assert check[:6] == ["unshare", "--mount", "--propagation", "private", "sh", "-c"]
    inner = check[6]
    assert 'mount --bind "$d" /etc/haproxy;' in inner
    assert 'cp /etc/haproxy/.haproxy.cfg.foobar-new "$d"/haproxy.cfg;' in inner
    assert 'rm -f "$d"/.haproxy.cfg.foobar-new;' in inner
    assert inner.endswith("haproxy -c -f /etc/haproxy")


def test_managed_validate_in_context_substitutes_braces_with_the_live_path():
    st = s.file.managed(CFG, NEW, validate="haproxy -c -f {}", validate_in_context=True)
    line = next(c for c in st.plan(file_facts(OLD)).commands if "exit 97" in c)
    inner = argv(validator_check(line))[6]
    assert "{}" not in inner
    assert inner.endswith("haproxy -c -f " + CFG)


def test_managed_only_mode_differs_gives_chmod_only_and_no_diff():
    plan = s.file.managed(CFG, NEW, mode="0640").plan(file_facts(NEW, mode="0644"))
    assert plan.needed
    assert [argv(c) for c in plan.commands] == [["chmod", "0640", CFG]]
    assert plan.diff is None and plan.uploads == {}
    assert plan.changes == {"old": {"mode": "0644"}, "new": {"mode": "0640"}}


def test_managed_only_owner_differs_gives_chown_only_and_no_diff():
    plan = s.file.managed(CFG, NEW, group="haproxy").plan(file_facts(NEW))
    assert [argv(c) for c in plan.commands] == [["chown", "root:haproxy", CFG]]
    assert plan.diff is None and plan.uploads == {}
    assert plan.changes == {"old": {"group": "root"}, "new": {"group": "haproxy"}}


def test_managed_absent_file_is_created_without_backup():
    plan = s.file.managed(CFG, NEW, owner="haproxy", mode=0o600).plan(ABSENT)
    assert plan.comment == f"{CFG} created"
    assert plan.changes["old"] is None
    assert plan.diff.startswith(f"--- /dev/null\n+++ {CFG} (wanted)\n")
    assert all(ln.startswith("+") for ln in plan.diff.splitlines()[3:])
    assert [argv(c)[0] for c in plan.commands] == ["install", "mv"]
    assert argv(plan.commands[0])[1:7] == ["-o", "haproxy", "-g", "root", "-m", "0600"]


def test_managed_missing_parent_is_an_error_unless_makedirs():
    plan = s.file.managed("/opt/app/conf/app.ini", "x\n").plan(ABSENT_NO_PARENT)
    assert plan.error and "makedirs" in plan.error and not plan.needed
    plan = s.file.managed("/opt/app/conf/app.ini", "x\n", makedirs=True).plan(ABSENT_NO_PARENT)
    assert plan.error is None
    assert argv(plan.commands[0]) == ["mkdir", "-p", "/opt/app/conf"]


@pytest.mark.parametrize("facts, kind", [(managed_dir_facts(), "dir"),
                                         (link_facts("/etc/haproxy/other.cfg"), "link"),
                                         (OTHER, "other")])
def test_managed_wrong_type_is_a_plan_error(facts, kind):
    plan = s.file.managed(CFG, NEW).plan(facts)
    assert plan.error == f"{CFG} exists and is a {kind}, not a regular file"
    assert not plan.needed and plan.commands == []


def test_managed_argument_errors():
    with pytest.raises(StateError, match="must be absolute"):
        s.file.managed("etc/haproxy.cfg", "x")
    with pytest.raises(StateError, match="octal"):
        s.file.managed(CFG, "x", mode="rw-r--r--")
    with pytest.raises(StateError, match="exactly one of content= or template="):
        s.file.managed(CFG, "x", template="t {{ a }}", inline=True, context={"a": 1})
    with pytest.raises(StateError, match="exactly one of content= or template="):
        s.file.managed(CFG)


def test_managed_uploads_carry_the_exact_content_bytes():
    text = "naïve café\r\nno newline at end"
    plan = s.file.managed("/etc/motd", text).plan(ABSENT)
    assert plan.uploads == {"content": text.encode("utf-8")}
    raw = bytes(range(256))
    plan = s.file.managed("/usr/local/share/blob.bin", raw).plan(ABSENT)
    assert plan.uploads["content"] == raw


def test_managed_template_renders_into_content():
    st = s.file.managed("/etc/app.ini", template="port={{ port }}\nhost={{ host }}\n",
                        context={"port": 8080, "host": "web-01"}, inline=True)
    assert st.content == b"port=8080\nhost=web-01\n"
    assert_no_change(st.plan(file_facts(b"port=8080\nhost=web-01\n")))


def test_managed_template_missing_variable_raises_template_error_naming_it():
    with pytest.raises(TemplateError) as info:
        s.file.managed("/etc/app.ini", template="port={{ listen_port }}\n", context={}, inline=True)
    assert "listen_port" in str(info.value)
    assert "file.managed:/etc/app.ini" in str(info.value)


def test_managed_unknown_template_raises_template_error():
    with pytest.raises(TemplateError, match="not found"):
        s.file.managed("/etc/app.ini", template="no-such-template.j2")


def test_managed_binary_content_gives_binary_content_diff():
    path = "/usr/local/share/blob.bin"
    plan = s.file.managed(path, b"\x00\xff\xfe new").plan(file_facts(b"\x00\xff\xfe old"))
    assert plan.diff == f"Binary content of {path} differs\n"
    assert plan.uploads["content"] == b"\x00\xff\xfe new"


def test_managed_diff_marks_a_missing_final_newline():
    plan = s.file.managed("/etc/hostname", "web-01").plan(file_facts(b"web-00\n"))
    assert "-web-00" in plan.diff and "+web-01" in plan.diff
    assert "\\ No newline at end of file" in plan.diff


def test_managed_empty_live_file_is_read_as_empty():
    # base64 -w0 of an empty file prints nothing: the line is just "content="
    facts = "type=file\nowner=root group=root mode=0644 size=0\ncontent=\nparent=yes\n"
    assert_no_change(s.file.managed("/etc/empty", b"").plan(facts))
    plan = s.file.managed("/etc/empty", "x\n").plan(facts)
    assert "+x" in plan.diff and plan.changes["old"] == {"size": 0}


def test_managed_large_file_is_compared_by_hash():
    content = b"a" * (MAX_FETCH + 1)
    facts = big_file_facts(hashlib.sha256(content).hexdigest(), len(content))
    assert_no_change(s.file.managed("/var/lib/big.dat", content).plan(facts))


def test_managed_large_changed_file_is_not_diffed_as_a_new_file():
    facts = big_file_facts(hashlib.sha256(b"old").hexdigest(), MAX_FETCH + 10)
    plan = s.file.managed("/var/lib/big.dat", "new\n").plan(facts)
    assert plan.needed
    assert plan.changes["old"] == {"size": MAX_FETCH + 10}
    assert plan.diff is None or "/dev/null" not in plan.diff


# --- file.directory -------------------------------------------------------------------------


def test_directory_in_wanted_state():
    plan = s.file.directory("/srv/www").plan(stat_facts("dir"))
    assert_no_change(plan)


def test_directory_absent_is_created_with_owner_and_mode():
    plan = s.file.directory("/srv/www", owner="www-data", group="www-data", mode="2775").plan(ABSENT)
    assert [argv(c) for c in plan.commands] == [
        ["install", "-d", "-o", "www-data", "-g", "www-data", "-m", "2775", "/srv/www"]]
    assert plan.changes == {"old": None, "new": {"owner": "www-data", "group": "www-data", "mode": "2775"}}


def test_directory_mode_and_owner_drift():
    plan = s.file.directory("/srv/www", mode="0750").plan(stat_facts("dir", mode="0755"))
    assert [argv(c) for c in plan.commands] == [["chmod", "0750", "/srv/www"]]
    plan = s.file.directory("/srv/www", owner="www-data").plan(stat_facts("dir"))
    assert [argv(c) for c in plan.commands] == [["chown", "www-data:root", "/srv/www"]]
    assert plan.changes == {"old": {"owner": "root"}, "new": {"owner": "www-data"}}
    assert plan.diff is None


@pytest.mark.parametrize("facts, kind", [(stat_facts("file", mode="0644", size=3), "file"),
                                         (link_facts("/srv/www2"), "link"), (OTHER, "other")])
def test_directory_wrong_type_is_a_plan_error(facts, kind):
    plan = s.file.directory("/srv/www").plan(facts)
    assert plan.error == f"/srv/www exists and is a {kind}, not a directory"


def test_directory_bad_mode():
    with pytest.raises(StateError, match="octal"):
        s.file.directory("/srv/www", mode="0888")




# --- file.absent ----------------------------------------------------------------------------


def test_absent_when_already_absent():
    plan = s.file.absent("/etc/nginx/sites-enabled/default").plan(ABSENT)
    assert_no_change(plan)


@pytest.mark.parametrize("facts, kind", [(stat_facts("file", mode="0644", size=10), "file"),
                                         (stat_facts("dir"), "dir"), (link_facts("/x"), "link")])
def test_absent_removes_whatever_is_there(facts, kind):
    path = "/etc/nginx/sites-enabled/default"
    plan = s.file.absent(path).plan(facts)
    assert [argv(c) for c in plan.commands] == [["rm", "-rf", "--", path]]
    assert plan.changes == {"old": kind, "new": None}


@pytest.mark.parametrize("path", ["/", "/etc", "/etc/", "/usr", "/var", "/home", "/root", "/boot"])
def test_absent_refuses_system_directories(path):
    plan = s.file.absent(path).plan(stat_facts("dir"))
    assert plan.error == f"refusing to remove {path}" and plan.commands == []


@pytest.mark.parametrize("path", ["/./etc", "/usr/../etc", "//etc"])
def test_absent_refuses_system_directories_spelled_differently(path):
    assert s.file.absent(path).plan(stat_facts("dir")).error




@pytest.mark.parametrize("make", [lambda: s.file.directory("srv/www"),
                                  lambda: s.file.absent("tmp/cache"),
                                  lambda: s.file.symlink("current", "/opt/app/v2"),
                                  lambda: s.file.line("etc/hosts", "127.0.0.1 x")],
                         ids=["directory", "absent", "symlink", "line"])
def test_every_file_state_refuses_a_relative_path(make):
    with pytest.raises(StateError, match="absolute"):
        make()


# --- file.symlink ---------------------------------------------------------------------------

LINK = "/etc/nginx/sites-enabled/foobar"
TARGET = "/etc/nginx/sites-available/foobar"


def test_symlink_in_wanted_state():
    assert_no_change(s.file.symlink(LINK, TARGET).plan(link_facts(TARGET)))


def test_symlink_pointing_elsewhere_is_replaced_atomically():
    plan = s.file.symlink(LINK, TARGET).plan(link_facts("/etc/nginx/sites-available/old"))
    assert [argv(c) for c in plan.commands] == [["ln", "-sfn", TARGET, LINK + ".foobar-link"],
                                                ["mv", "-Tf", LINK + ".foobar-link", LINK]]
    assert plan.changes == {"old": "/etc/nginx/sites-available/old", "new": TARGET}


def test_symlink_absent_is_created():
    plan = s.file.symlink(LINK, TARGET).plan(ABSENT)
    assert plan.changes == {"old": None, "new": TARGET}
    assert argv(plan.commands[0]) == ["ln", "-sfn", TARGET, LINK + ".foobar-link"]


def test_symlink_over_a_file_needs_force_and_never_replaces_a_directory():
    facts = stat_facts("file", mode="0644", size=5)
    assert "not replacing it with a link" in s.file.symlink(LINK, TARGET).plan(facts).error
    plan = s.file.symlink(LINK, TARGET, force=True).plan(facts)
    assert plan.error is None and plan.changes == {"old": "file", "new": TARGET}
    assert s.file.symlink(LINK, TARGET, force=True).plan(stat_facts("dir")).error == (
        f"{LINK} exists and is a dir; not replacing it with a link")


def test_symlink_target_with_a_space_is_in_wanted_state():
    target = "/opt/My App/current"
    assert_no_change(s.file.symlink("/opt/app", target).plan(link_facts(target)))


# --- file.line ------------------------------------------------------------------------------

HOSTS = "/etc/hosts"
ENTRY = "10.77.0.11 web-01.foobar.lab web-01"


def test_line_present_plans_nothing():
    assert_no_change(s.file.line(HOSTS, ENTRY).plan("exists=yes\npresent=yes\neol=yes\n"))


def test_line_missing_is_appended():
    plan = s.file.line(HOSTS, ENTRY).plan("exists=yes\npresent=no\neol=yes\n")
    (command,) = plan.commands
    assert argv(command) == ["printf", "%s%s\\n", "", ENTRY, ">>", HOSTS]
    assert plan.diff.endswith(f"+{ENTRY}\n")
    assert plan.changes == {"old": None, "new": ENTRY}


def test_line_missing_after_a_file_without_final_newline_adds_one_first():
    plan = s.file.line(HOSTS, ENTRY).plan("exists=yes\npresent=no\neol=no\n")
    assert argv(plan.commands[0]) == ["printf", "%s%s\\n", "\n", ENTRY, ">>", HOSTS]


def test_line_in_a_missing_file_is_a_plan_error():
    assert s.file.line(HOSTS, ENTRY).plan("exists=no\n").error == f"{HOSTS} does not exist"


def test_line_argument_errors_and_id():
    with pytest.raises(StateError, match="newline"):
        s.file.line(HOSTS, "a\nb")
    assert s.file.line(HOSTS, ENTRY).id == f"file.line:{HOSTS}:{ENTRY}"


# --- pkg.installed / pkg.removed ------------------------------------------------------------


def test_pkg_installed_in_wanted_state():
    facts = dpkg(("haproxy", "ii", "2.6.12-1+deb12u1"), ("curl", "ii", "7.88.1-10+deb12u5"))
    assert_no_change(s.pkg.installed(names=["haproxy", "curl"]).plan(facts))
    assert "status=ii  version=" in facts  # the real three-character status


def test_pkg_installed_missing_packages_are_installed_non_interactively():
    facts = dpkg(("curl", "ii", "7.88.1-10+deb12u5"), ("nginx", "rc", "1.22.1-9"))
    plan = s.pkg.installed(names=["curl", "nginx", "haproxy"]).plan(facts)
    (command,) = plan.commands
    args = argv(command)
    assert args[:2] == ["DEBIAN_FRONTEND=noninteractive", "apt-get"]
    assert "-y" in args and "Dpkg::Options::=--force-confold" in args
    assert args[-4:] == ["install", "--no-install-recommends", "nginx", "haproxy"]
    assert plan.changes == {"old": {"nginx": None, "haproxy": None},
                            "new": {"nginx": "latest", "haproxy": "latest"}}


def test_pkg_installed_pinned_version_drift():
    plan = s.pkg.installed("haproxy", version="2.6.12-1+deb12u1").plan(dpkg(("haproxy", "ii", "2.6.12-1")))
    assert argv(plan.commands[0])[-1] == "haproxy=2.6.12-1+deb12u1"
    assert plan.changes == {"old": {"haproxy": "2.6.12-1"}, "new": {"haproxy": "2.6.12-1+deb12u1"}}
    assert_no_change(s.pkg.installed("haproxy", version="2.6.12-1").plan(dpkg(("haproxy", "ii", "2.6.12-1"))))


def test_pkg_argument_errors():
    with pytest.raises(StateError, match="exactly one package"):
        s.pkg.installed(names=["a", "b"], version="1")
    with pytest.raises(StateError, match="empty"):
        s.pkg.installed()
    with pytest.raises(StateError, match="empty"):
        s.pkg.removed(names=["apache2", ""])


def test_pkg_probe_quotes_names_and_never_fails():
    probe = s.pkg.installed(names=["haproxy", "curl"]).probe()
    assert "${db:Status-Abbrev}" in probe and probe.endswith("2>/dev/null; true")


def test_pkg_removed():
    st = s.pkg.removed(names=["apache2", "telnet"])
    assert_no_change(st.plan(dpkg(("apache2", "rc", "2.4.57-2"))))
    assert_no_change(st.plan(""))
    plan = st.plan(dpkg(("apache2", "ii", "2.4.57-2"), ("telnet", "un", "")))
    assert argv(plan.commands[0])[-2:] == ["remove", "apache2"]
    assert plan.changes == {"old": {"apache2": "2.4.57-2"}, "new": None}


# --- service.running / service.dead ---------------------------------------------------------


def test_service_running_in_wanted_state():
    st = s.service.running("haproxy")
    assert st.unit == "haproxy.service"
    assert_no_change(st.plan(unit()))


def test_service_running_starts_and_enables():
    plan = s.service.running("haproxy").plan(unit(active="inactive", file_state="disabled"))
    assert [argv(c) for c in plan.commands] == [["systemctl", "start", "haproxy.service"],
                                                ["systemctl", "enable", "haproxy.service"]]
    assert plan.changes == {"old": {"active": "inactive", "enabled": "disabled"},
                            "new": {"active": "active", "enabled": "enabled"}}


def test_service_running_leaves_static_units_and_enabled_none_alone():
    assert_no_change(s.service.running("systemd-journald").plan(unit(file_state="static")))
    assert_no_change(s.service.running("haproxy", enabled=None).plan(unit(file_state="disabled")))
    plan = s.service.running("haproxy", enabled=False).plan(unit())
    assert [argv(c) for c in plan.commands] == [["systemctl", "disable", "haproxy.service"]]


def test_service_running_unknown_unit_is_a_plan_error():
    plan = s.service.running("nosuch").plan(unit(load="not-found", active="inactive", file_state="",
                                                 can_reload="no"))
    assert plan.error == "service nosuch.service does not exist (LoadState=not-found)"


@pytest.mark.parametrize("can, reload, verb", [("yes", True, "reload"), ("no", True, "restart"),
                                               ("yes", False, "restart")])
def test_service_running_react_reloads_when_it_can(can, reload, verb):
    what, commands = s.service.running("nginx", reload=reload).react(unit(can_reload=can))
    assert what == verb and [argv(c) for c in commands] == [["systemctl", verb, "nginx.service"]]


def test_service_names_with_a_suffix_are_kept():
    assert s.service.running("docker.socket").unit == "docker.socket"


def test_service_dead():
    assert_no_change(s.service.dead("apache2").plan(unit(active="inactive", file_state="disabled")))
    plan = s.service.dead("apache2").plan(unit())
    assert [argv(c) for c in plan.commands] == [["systemctl", "stop", "apache2.service"],
                                                ["systemctl", "disable", "apache2.service"]]
    plan = s.service.dead("apache2", enabled=None).plan(unit())
    assert [argv(c) for c in plan.commands] == [["systemctl", "stop", "apache2.service"]]
    not_found = s.service.dead("apache2").plan(unit(load="not-found", active="inactive", file_state=""))
    assert_no_change(not_found)
    assert not_found.comment == "apache2.service is not installed"


# --- user.present / group.present -----------------------------------------------------------

DEMO = "samegroup=yes\npw:demo:x:999:999::/nonexistent:/usr/sbin/nologin\ngroups=demo,adm\n"


def test_user_present_in_wanted_state():
    assert_no_change(s.user.present("demo", system=True, groups=["adm"]).plan(DEMO))
    assert_no_change(s.user.present("demo", system=True).plan(DEMO))  # groups=None: left alone


def test_user_absent_is_created_with_its_own_group():
    plan = s.user.present("deploy", groups=["adm", "sudo"]).plan("")
    assert [argv(c) for c in plan.commands] == [
        ["useradd", "--home-dir", "/home/deploy", "--shell", "/bin/bash", "--user-group",
         "--create-home", "--groups", "adm,sudo", "deploy"]]
    assert plan.changes["old"] is None


def test_system_user_reuses_an_existing_same_named_group():
    plan = s.user.present("haproxy", system=True, uid=120).plan("samegroup=yes\n")
    assert argv(plan.commands[0]) == ["useradd", "--home-dir", "/nonexistent", "--shell",
                                      "/usr/sbin/nologin", "--gid", "haproxy", "--system",
                                      "--uid", "120", "haproxy"]


def test_user_drift_is_fixed_with_usermod():
    plan = s.user.present("demo", system=True, shell="/bin/bash").plan(DEMO)
    assert [argv(c) for c in plan.commands] == [["usermod", "--shell", "/bin/bash", "demo"]]
    assert plan.changes == {"old": {"shell": "/usr/sbin/nologin"}, "new": {"shell": "/bin/bash"}}
    plan = s.user.present("demo", system=True, groups=["adm", "www-data"], uid=1999).plan(DEMO)
    assert argv(plan.commands[0]) == ["usermod", "--uid", "1999", "--groups", "adm,www-data", "demo"]
    assert plan.changes["old"] == {"uid": "999", "groups": ["adm"]}


def test_group_present():
    st = s.group.present("web", gid=1500)
    assert_no_change(st.plan("web:x:1500:deploy\n"))
    plan = st.plan("web:x:1001:\n")
    assert [argv(c) for c in plan.commands] == [["groupmod", "--gid", "1500", "web"]]
    assert plan.changes == {"old": {"gid": 1001}, "new": {"gid": 1500}}
    plan = s.group.present("web", system=True).plan("")
    assert [argv(c) for c in plan.commands] == [["groupadd", "--system", "web"]]
    assert_no_change(s.group.present("web").plan("web:x:1001:\n"))


# --- cmd.run ---------------------------------------------------------------------------------


def test_cmd_run_without_guard_always_runs_and_is_not_idempotent():
    st = s.cmd.run("update-ca-certificates")
    assert st.idempotent is False
    plan = st.plan("")
    assert plan.commands == ["update-ca-certificates"]
    assert "not idempotent" in plan.comment
    assert st.probe() == "true; true"


def test_cmd_run_guards_make_it_idempotent():
    assert s.cmd.run("x", creates="/a").idempotent
    assert s.cmd.run("x", unless="test -f /a").idempotent
    assert s.cmd.run("x", onlyif="test -f /a").idempotent
    assert s.cmd.run("x", onchanges=["file.managed:/a"]).idempotent


def test_cmd_run_creates_guard():
    st = s.cmd.run("tar xf /tmp/app.tgz -C /opt", creates="/opt/my app/bin")
    assert "[ -e '/opt/my app/bin' ] && echo creates=yes" in st.probe()
    assert_no_change(st.plan("creates=yes\n"))
    assert st.plan("").commands == ["tar xf /tmp/app.tgz -C /opt"]


def test_cmd_run_unless_guard():
    st = s.cmd.run("a2enmod ssl", unless="apache2ctl -M | grep -q ssl")
    assert "( apache2ctl -M | grep -q ssl ) >/dev/null 2>&1 && echo unless=ok" in st.probe()
    assert_no_change(st.plan("unless=ok\n"))
    assert st.plan("").needed


def test_cmd_run_onlyif_guard():
    st = s.cmd.run("systemctl daemon-reload", onlyif="test -d /run/systemd/system")
    assert st.plan("onlyif=ok\n").commands == ["systemctl daemon-reload"]
    plan = st.plan("")
    assert_no_change(plan)
    assert plan.comment == "onlyif condition is false"


def test_cmd_run_cwd_is_quoted():
    plan = s.cmd.run("make install", cwd="/opt/it's here").plan("")
    assert argv(plan.commands[0]) == ["cd", "/opt/it's here", "&&", "make", "install"]


# --- quoting of every argument --------------------------------------------------------------

ODD = "/srv/my app/it's \"quoted\".conf"
ODD_TMP = "/srv/my app/.it's \"quoted\".conf.foobar-new"


def test_file_managed_commands_quote_paths_with_spaces_and_quotes():
    plan = s.file.managed(ODD, "new\n", owner="www-data", mode="0640").plan(file_facts(b"old\n"))
    install, mkdir, copy, prune, rename = plan.commands
    assert argv(install)[-2:] == ["$FOOBAR_STAGE/content", ODD_TMP]
    assert argv(copy)[:3] == ["cp", "-p", ODD]
    assert argv(copy)[3].startswith(f"{BACKUP_DIR}/srv%my app%it's \"quoted\".conf.$(date")
    assert argv(rename) == ["mv", "-f", ODD_TMP, ODD]
    meta = s.file.managed(ODD, "old\n", owner="www-data", mode="0640").plan(file_facts(b"old\n"))
    assert [argv(c) for c in meta.commands] == [["chown", "www-data:root", ODD], ["chmod", "0640", ODD]]


def test_probes_quote_paths_with_spaces_and_quotes():
    for st in (s.file.managed(ODD, "x"), s.file.directory(ODD), s.file.absent(ODD),
               s.file.symlink(ODD, "/x"), s.file.line(ODD, "it's a line")):
        probe = st.probe()
        assert shlex.quote(ODD) in probe, st
        assert f"[ -f {ODD}" not in probe


@pytest.mark.parametrize("make, facts, expected", [
    (lambda: s.file.directory(ODD), ABSENT,
     [["install", "-d", "-o", "root", "-g", "root", "-m", "0755", ODD]]),
    (lambda: s.file.absent(ODD), stat_facts("file", mode="0644", size=1), [["rm", "-rf", "--", ODD]]),
    (lambda: s.file.symlink(ODD, "/opt/it's target"), ABSENT,
     [["ln", "-sfn", "/opt/it's target", ODD + ".foobar-link"], ["mv", "-Tf", ODD + ".foobar-link", ODD]]),
    (lambda: s.file.line(ODD, "say 'hi' $HOME `id`"), "exists=yes\npresent=no\neol=yes\n",
     [["printf", "%s%s\\n", "", "say 'hi' $HOME `id`", ">>", ODD]]),
    (lambda: s.user.present("o'brien", home="/home/o brien", groups=["a b"]), "",
     [["useradd", "--home-dir", "/home/o brien", "--shell", "/bin/bash", "--user-group", "--create-home",
       "--groups", "a b", "o'brien"]]),
    (lambda: s.group.present("it's"), "", [["groupadd", "it's"]]),
    (lambda: s.service.running("my app"), unit(active="failed", file_state="enabled"),
     [["systemctl", "start", "my app.service"]]),
])
def test_every_command_argument_is_shell_quoted(make, facts, expected):
    plan = make().plan(facts)
    assert [argv(c) for c in plan.commands] == expected


def test_line_probe_quotes_the_line_and_path():
    probe = s.file.line(ODD, "it's $HOME").probe()
    assert "grep -qxF -- " + shlex.quote("it's $HOME") + " " + shlex.quote(ODD) in probe
