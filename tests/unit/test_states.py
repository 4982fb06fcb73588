"""States without a host: a typed fact value in (what each state's fact() parses from the host:
FileInfo, installed packages, ServiceInfo, UserInfo, GroupInfo or None, Guards, LineInfo),
planned commands, diff and changes out, for every state; and the fact each state asks for.

How each fact's command output becomes these values is tested in test_facts.py.
Commands are checked as argv through shlex.split, so a test fails when an argument is not
quoted the way a POSIX shell would need it.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from pathlib import Path

import pytest

from foobar_ops import states as s
from foobar_ops.core.facts import (
    FETCH_LIMIT,
    AccountFact,
    FileFact,
    FileInfo,
    GroupFact,
    GroupInfo,
    Guards,
    GuardsFact,
    LineFact,
    LineInfo,
    PackagesFact,
    ServiceFact,
    ServiceInfo,
    SQLFact,
    UserFact,
    UserInfo,
)
from foobar_ops.core.secrets import Secret
from foobar_ops.core.states.base import Plan, StateError, norm_mode
from foobar_ops.core.states.files import BACKUP_DIR
from foobar_ops.core.states.system import APT
from foobar_ops.core.templating import TemplateError

# --- fact values as the facts parse them ------------------------------------------------------

ABSENT = FileInfo("absent")
ABSENT_NO_PARENT = FileInfo("absent", parent_exists=False)
OTHER = FileInfo("other")  # a socket, a fifo, a device


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def live_file(content: bytes, *, fetched: bool, owner="root", group="root", mode="0644") -> FileInfo:
    """What file.managed's FileFact reads for a regular file holding content.

    fetched: the content came back, as it does when it differs from the wanted content, is
        at most FETCH_LIMIT bytes and the wanted content is text; else only its hash did.
    """
    return FileInfo("file", owner, group, mode, len(content), sha(content), content if fetched else None)


def stat_file(*, owner="root", group="root", mode="0644", size=3) -> FileInfo:
    """What FileFact(path) (no wanted hash: file.directory, file.absent, file.symlink) reads for a file."""
    return FileInfo("file", owner, group, mode, size)


def a_dir(*, owner="root", group="root", mode="0755") -> FileInfo:
    return FileInfo("dir", owner, group, mode, 4096)


def a_link(target: str) -> FileInfo:
    return FileInfo("link", target=target)


def unit(load="loaded", active="active", file_state="enabled", can_reload=True) -> ServiceInfo:
    return ServiceInfo(load, active, file_state, can_reload)


def argv(command: str) -> list[str]:
    return shlex.split(command)


def validator_check(line: str) -> str:
    """The validator command inside file.managed's validate line: out=$(CHECK 2>&1) ..."""
    return re.search(r"out=\$\((.*) 2>&1\)", line).group(1)


def mktemp_template(line: str) -> str:
    """The template of file.managed's first command, tmp=$(mktemp TEMPLATE); export tmp, as one
    shell word (export: the validator's own shell, in validate_in_context, reads $tmp too)."""
    match = re.fullmatch(r"tmp=\$\(mktemp (.*)\); export tmp", line)
    assert match, line
    (template,) = argv(match.group(1))
    return template


CLEANUP = '{ rc=$?; rm -f "$tmp"; exit $rc; }'  # a failed step takes the candidate with it


def unguard(command: str) -> str:
    """A file.managed step without its cleanup wrapper: `{ STEP; } || { rc=$?; rm -f "$tmp"; exit $rc; }`."""
    match = re.fullmatch(r"\{ (.*); \} \|\| \{ rc=\$\?; rm -f [^;]+; exit \$rc; \}", command, re.S)
    return match.group(1) if match else command


def steps_of(plan: Plan) -> list[str]:
    """A plan's commands, each without its cleanup wrapper."""
    return [unguard(c) for c in plan.commands]


def command_kind(command: str) -> str:
    """What a file.managed command does: mktemp, validate, or its program's name."""
    if command.startswith("tmp=$(mktemp "):
        return "mktemp"
    return "validate" if "exit 97" in command else unguard(command).split()[0]


def assert_no_change(plan: Plan) -> None:
    assert plan.error is None
    assert not plan.needed
    assert plan.changes == {}
    assert plan.commands == []
    assert plan.diff is None
    assert plan.uploads == {}


# --- helpers in base ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given, wanted", [("644", "0644"), ("0644", "0644"), (0o750, "0750"), ("4755", "4755"), (None, None)]
)
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


# --- the fact each state asks for -------------------------------------------------------------

CFG = "/etc/haproxy/haproxy.cfg"
TEMPLATE = "/etc/haproxy/.haproxy.cfg.foobar-new.XXXXXX"  # mktemp's: next to the live file, a dot file
CANDIDATE = '"$tmp"'  # the shell word for the candidate mktemp made: one word, whatever the path
OLD = b"global\n    daemon\nfrontend www\n    bind :80\n"
NEW = b"global\n    daemon\nfrontend www\n    bind :8080\n"


def test_managed_fact_carries_the_wanted_sha256_and_fetches_text_content():
    fact = s.file.managed(CFG, NEW.decode()).fact()
    assert type(fact) is FileFact
    assert vars(fact) == {"path": CFG, "want_sha256": sha(NEW), "fetch_limit": FETCH_LIMIT}
    assert sha(NEW) in fact.command()


def test_managed_fact_of_binary_content_never_fetches_it():
    blob = b"\x00\xff\xfe binary"
    fact = s.file.managed("/usr/local/share/blob.bin", blob).fact()
    assert vars(fact) == {"path": "/usr/local/share/blob.bin", "want_sha256": sha(blob), "fetch_limit": 0}
    assert "base64" not in fact.command()


def test_managed_fact_hashes_the_rendered_template(tmp_path):
    template = tmp_path / "app.ini.j2"
    template.write_text("port={{ port }}\n")
    fact = s.file.managed("/etc/app.ini", template=template, context={"port": 8080}).fact()
    assert fact.want_sha256 == sha(b"port=8080\n")


@pytest.mark.parametrize(
    "make, fact_type, args",
    [
        (
            lambda: s.file.directory("/srv/www"),
            FileFact,
            {"path": "/srv/www", "want_sha256": None, "fetch_limit": FETCH_LIMIT},
        ),
        (
            lambda: s.file.absent("/srv/old"),
            FileFact,
            {"path": "/srv/old", "want_sha256": None, "fetch_limit": FETCH_LIMIT},
        ),
        (
            lambda: s.file.symlink("/opt/app", "/opt/app-2"),
            FileFact,
            {"path": "/opt/app", "want_sha256": None, "fetch_limit": FETCH_LIMIT},
        ),
        (lambda: s.file.line("/etc/hosts", "10.0.0.1 a"), LineFact, {"path": "/etc/hosts", "line": "10.0.0.1 a"}),
        (lambda: s.pkg.installed("haproxy", version="2.6"), PackagesFact, {"names": ["haproxy"]}),
        (lambda: s.pkg.installed(names=["curl", "jq"]), PackagesFact, {"names": ["curl", "jq"]}),
        (lambda: s.pkg.removed(names=["apache2", "telnet"]), PackagesFact, {"names": ["apache2", "telnet"]}),
        (lambda: s.service.running("nginx"), ServiceFact, {"unit": "nginx.service"}),
        (lambda: s.service.dead("docker.socket"), ServiceFact, {"unit": "docker.socket"}),
        (lambda: s.user.present("deploy", groups=["adm"]), UserFact, {"name": "deploy"}),
        (lambda: s.group.present("web", gid=1500), GroupFact, {"name": "web"}),
        (
            lambda: s.cmd.run("make", creates="/opt/a", unless="test -f /b", onlyif="true"),
            GuardsFact,
            {"creates": "/opt/a", "unless": "test -f /b", "onlyif": "true"},
        ),
        (lambda: s.cmd.run("update-ca-certificates"), GuardsFact, {"creates": None, "unless": None, "onlyif": None}),
        (
            lambda: s.mysql.user("app", host="10.77.0.%", password=Secret("env:FOOBAR_TEST_UNSET"), database="foobar"),
            AccountFact,
            {"user": "app", "host": "10.77.0.%"},
        ),
    ],
    ids=[
        "directory",
        "absent",
        "symlink",
        "line",
        "pkg-one",
        "pkg-names",
        "pkg-removed",
        "running",
        "dead",
        "user",
        "group",
        "cmd-guards",
        "cmd-unguarded",
        "mysql-user",
    ],
)
def test_each_state_asks_for_its_fact_with_its_arguments(make, fact_type, args):
    fact = make().fact()
    assert type(fact) is fact_type
    assert vars(fact) == args


def test_database_fact_asks_for_that_schema():
    fact = s.mysql.database("foobar").fact()
    assert type(fact) is SQLFact and fact.what == "database foobar"
    assert fact.sql.endswith("WHERE schema_name = 'foobar'")


def test_a_real_fact_output_plans_the_diff():
    """End to end without a host: a fixture of the real FileFact output, parsed, then planned."""
    case = json.loads((Path(__file__).parent / "fixtures/facts/file/regular_text_file_differs.json").read_text())
    st = s.file.managed(case["args"]["path"], "port=8080\n", mode="0640")
    fact = st.fact()
    assert vars(fact) == {**case["args"], "fetch_limit": FETCH_LIMIT}
    plan = st.plan(fact.parse(case["output"]))
    assert "-port=80" in plan.diff.splitlines() and "+port=8080" in plan.diff.splitlines()


# --- file.managed ---------------------------------------------------------------------------


def test_managed_in_wanted_state_plans_nothing():
    plan = s.file.managed(CFG, NEW).plan(live_file(NEW, fetched=False))
    assert_no_change(plan)
    assert plan.comment == f"{CFG} is in the wanted state"


def test_managed_content_drift_diffs_and_installs_validates_backs_up_and_renames():
    st = s.file.managed(CFG, NEW.decode(), validate="haproxy -c -f {}")
    plan = st.plan(live_file(OLD, fetched=True))
    assert plan.needed and plan.error is None
    assert plan.comment == f"{CFG} updated"
    assert plan.diff.splitlines()[:2] == [f"--- {CFG} (live)", f"+++ {CFG} (wanted)"]
    assert "-    bind :80" in plan.diff.splitlines()
    assert "+    bind :8080" in plan.diff.splitlines()
    assert plan.changes == {
        "old": {"size": len(OLD), "sha256": sha(OLD)},
        "new": {"sha256": sha(NEW), "size": len(NEW)},
    }
    assert plan.uploads == {"content": NEW}

    make_tmp, install, validate, mkdir, copy, prune, rename = steps_of(plan)
    # every step after mktemp but the validation (which cleans up itself) removes the candidate on failure
    assert [c.endswith(" || " + CLEANUP) for c in plan.commands] == [False, True, False, True, True, True, True]
    assert mktemp_template(make_tmp) == TEMPLATE  # a name of this run's own, in the live file's folder
    assert argv(install) == ["install", "-o", "root", "-g", "root", "-m", "0644", "$FOOBAR_STAGE/content", "$tmp"]
    assert '"$FOOBAR_STAGE"/content' in install  # expanded by the shell, not quoted away
    assert install.endswith(" " + CANDIDATE)
    assert argv(validator_check(validate)) == ["haproxy", "-c", "-f", "$tmp"]
    assert "haproxy -c -f " + CANDIDATE in validate and "exit 97" in validate
    assert argv(mkdir) == ["mkdir", "-p", "-m", "0700", BACKUP_DIR]
    assert argv(copy)[:3] == ["cp", "-p", CFG]
    assert argv(copy)[3].startswith(f"{BACKUP_DIR}/etc%haproxy%haproxy.cfg.$(date")
    assert "tail -n +6" in prune
    assert argv(rename) == ["mv", "-f", "$tmp", CFG]
    assert rename == f"mv -f {CANDIDATE} {CFG}"


def test_managed_validate_puts_the_quoted_candidate_in_place_of_braces():
    path = "/etc/my app/it's.cfg"
    plan = s.file.managed(path, "x\n", validate="haproxy -c -f {}").plan(ABSENT)
    assert mktemp_template(plan.commands[0]) == "/etc/my app/.it's.cfg.foobar-new.XXXXXX"
    line = next(c for c in plan.commands if "exit 97" in c)
    assert "{}" not in line
    assert argv(validator_check(line)) == ["haproxy", "-c", "-f", "$tmp"]
    assert "haproxy -c -f " + CANDIDATE in line  # double-quoted: one argument, spaces and all
    assert "rm -f " + CANDIDATE in line  # the rejected candidate is removed


def test_managed_validate_runs_before_the_live_file_is_touched():
    plan = s.file.managed(CFG, NEW, validate="haproxy -c -f {}").plan(live_file(OLD, fetched=True))
    assert [command_kind(c) for c in plan.commands] == ["mktemp", "install", "validate", "mkdir", "cp", "ls", "mv"]


def test_managed_validate_in_context_runs_the_validator_in_a_private_mount_namespace():
    st = s.file.managed(CFG, NEW, validate="haproxy -c -f /etc/haproxy", validate_in_context=True)
    commands = st.plan(live_file(OLD, fetched=True)).commands
    assert commands[0].endswith("; export tmp")  # the inner shell reads $tmp from its environment
    line = next(c for c in commands if "exit 97" in c)
    assert 'rm -f "$tmp";' in line  # a rejected candidate is removed, as without a namespace
    check = argv(validator_check(line))
    assert check[:6] == ["unshare", "--mount", "--propagation", "private", "sh", "-c"]
    assert len(check) == 7  # the inner script is one argument
    steps = check[6].split("; ")
    assert steps == [
        "d=$(mktemp -d /tmp/.foobar-validate.XXXXXX) || exit 1",  # a folder of this run's own, or stop
        'cp -a /etc/haproxy/. "$d"/',  # a copy of the live tree,
        'rm -f "$d"/"$(basename "$tmp")"',  # without this run's candidate under its temporary name,
        'cp "$tmp" "$d"/haproxy.cfg',  # with the candidate in place of the live file,
        'mount --bind "$d" /etc/haproxy || { rm -rf "$d"',  # seen only by the validator (or stop),
        "exit 1",
        "}",
        "haproxy -c -f /etc/haproxy",
        "rc=$?",
        "cd /",
        "umount /etc/haproxy",
        'rm -rf "$d"',  # then removed: nothing is left in /tmp
        "exit $rc",  # and the validator's exit code is the check's
    ]


def test_managed_validate_in_context_substitutes_braces_with_the_live_path():
    st = s.file.managed(CFG, NEW, validate="haproxy -c -f {}", validate_in_context=True)
    line = next(c for c in st.plan(live_file(OLD, fetched=True)).commands if "exit 97" in c)
    inner = argv(validator_check(line))[6]
    assert "{}" not in inner
    assert 'mount --bind "$d" /etc/haproxy || { rm -rf "$d"; exit 1; }; haproxy -c -f ' + CFG + "; rc=$?;" in inner


def test_managed_only_mode_differs_gives_chmod_only_and_no_diff():
    plan = s.file.managed(CFG, NEW, mode="0640").plan(live_file(NEW, fetched=False, mode="0644"))
    assert plan.needed
    assert [argv(c) for c in plan.commands] == [["chmod", "0640", CFG]]
    assert plan.diff is None and plan.uploads == {}
    assert plan.changes == {"old": {"mode": "0644"}, "new": {"mode": "0640"}}


def test_managed_only_owner_differs_gives_chown_only_and_no_diff():
    plan = s.file.managed(CFG, NEW, group="haproxy").plan(live_file(NEW, fetched=False))
    assert [argv(c) for c in plan.commands] == [["chown", "root:haproxy", CFG]]
    assert plan.diff is None and plan.uploads == {}
    assert plan.changes == {"old": {"group": "root"}, "new": {"group": "haproxy"}}


def test_managed_absent_file_is_created_without_backup():
    plan = s.file.managed(CFG, NEW, owner="haproxy", mode=0o600).plan(ABSENT)
    assert plan.comment == f"{CFG} created"
    assert plan.changes["old"] is None
    assert plan.diff.startswith(f"--- /dev/null\n+++ {CFG} (wanted)\n")
    assert all(ln.startswith("+") for ln in plan.diff.splitlines()[3:])
    assert [command_kind(c) for c in plan.commands] == ["mktemp", "install", "mv"]
    assert argv(steps_of(plan)[1])[1:7] == ["-o", "haproxy", "-g", "root", "-m", "0600"]


def test_managed_missing_parent_is_an_error_unless_makedirs():
    plan = s.file.managed("/opt/app/conf/app.ini", "x\n").plan(ABSENT_NO_PARENT)
    assert plan.error and "makedirs" in plan.error and not plan.needed
    plan = s.file.managed("/opt/app/conf/app.ini", "x\n", makedirs=True).plan(ABSENT_NO_PARENT)
    assert plan.error is None
    assert argv(plan.commands[0]) == ["mkdir", "-p", "/opt/app/conf"]


@pytest.mark.parametrize("fact, kind", [(a_dir(), "dir"), (a_link("/etc/haproxy/other.cfg"), "link"), (OTHER, "other")])
def test_managed_wrong_type_is_a_plan_error(fact, kind):
    plan = s.file.managed(CFG, NEW).plan(fact)
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


def test_managed_inline_template_renders_into_content():
    st = s.file.managed(
        "/etc/app.ini",
        template="port={{ port }}\nhost={{ host }}\n",
        context={"port": 8080, "host": "web-01"},
        inline=True,
    )
    assert st.content == b"port=8080\nhost=web-01\n"
    assert_no_change(st.plan(live_file(b"port=8080\nhost=web-01\n", fetched=False)))


def test_managed_template_file_renders_with_includes_from_its_folder(tmp_path):
    (tmp_path / "header.j2").write_text("# managed by foobar-ops\n")
    (tmp_path / "app.ini.j2").write_text('{% include "header.j2" %}port={{ port }}\n')
    st = s.file.managed("/etc/app.ini", template=tmp_path / "app.ini.j2", context={"port": 8080})
    assert st.content == b"# managed by foobar-ops\nport=8080\n"
    st = s.file.managed("/etc/app.ini", template=str(tmp_path / "app.ini.j2"), context={"port": 81})
    assert st.content.endswith(b"port=81\n")


def test_managed_template_text_is_not_read_as_a_template_without_inline():
    with pytest.raises(TemplateError, match="not found"):
        s.file.managed("/etc/app.ini", template="port={{ port }}\n", context={"port": 1})


def test_managed_template_missing_variable_raises_template_error_naming_it(tmp_path):
    with pytest.raises(TemplateError) as info:
        s.file.managed("/etc/app.ini", template="port={{ listen_port }}\n", context={}, inline=True)
    assert "listen_port" in str(info.value)
    assert "file.managed:/etc/app.ini" in str(info.value)
    (tmp_path / "app.ini.j2").write_text("port={{ listen_port }}\n")
    with pytest.raises(TemplateError, match="listen_port"):
        s.file.managed("/etc/app.ini", template=tmp_path / "app.ini.j2", context={})


def test_managed_unknown_template_raises_template_error(tmp_path):
    with pytest.raises(TemplateError, match="not found"):
        s.file.managed("/etc/app.ini", template=tmp_path / "no-such-template.j2")


def test_managed_binary_content_is_compared_by_hash_without_a_diff():
    path = "/usr/local/share/blob.bin"
    plan = s.file.managed(path, b"\x00\xff\xfe new").plan(live_file(b"\x00\xff\xfe old", fetched=False))
    assert plan.needed
    assert plan.diff == f"{path}: content differs (compared by sha256; binary, so no diff)\n"
    assert plan.changes["old"] == {"size": 7, "sha256": sha(b"\x00\xff\xfe old")}
    assert plan.uploads["content"] == b"\x00\xff\xfe new"
    assert_no_change(s.file.managed(path, b"\x00\xff\xfe new").plan(live_file(b"\x00\xff\xfe new", fetched=False)))


def test_managed_text_over_binary_live_content_gives_binary_content_diff():
    path = "/usr/local/share/blob.bin"
    plan = s.file.managed(path, "text now\n").plan(live_file(b"\x00\xff\xfe old", fetched=True))
    assert plan.diff == f"Binary content of {path} differs\n"
    assert plan.uploads["content"] == b"text now\n"


def test_managed_diff_marks_a_missing_final_newline():
    plan = s.file.managed("/etc/hostname", "web-01").plan(live_file(b"web-00\n", fetched=True))
    assert "-web-00" in plan.diff and "+web-01" in plan.diff
    assert "\\ No newline at end of file" in plan.diff


def test_managed_empty_live_file_is_read_as_empty():
    # base64 -w0 of an empty file prints nothing: the content comes back as b"", not None
    assert_no_change(s.file.managed("/etc/empty", b"").plan(live_file(b"", fetched=False)))
    plan = s.file.managed("/etc/empty", "x\n").plan(live_file(b"", fetched=True))
    assert plan.diff.splitlines()[0] == "--- /etc/empty (live)"
    assert "+x" in plan.diff and plan.changes["old"] == {"size": 0, "sha256": sha(b"")}


def test_managed_large_file_is_compared_by_hash():
    content = b"a" * (FETCH_LIMIT + 1)
    assert_no_change(s.file.managed("/var/lib/big.dat", content).plan(live_file(content, fetched=False)))


def test_managed_large_changed_file_is_not_diffed_as_a_new_file():
    fact = FileInfo("file", "root", "root", "0644", FETCH_LIMIT + 10, sha(b"old"))
    plan = s.file.managed("/var/lib/big.dat", "new\n").plan(fact)
    assert plan.needed
    assert plan.changes["old"] == {"size": FETCH_LIMIT + 10, "sha256": sha(b"old")}
    assert "/dev/null" not in plan.diff
    assert plan.diff == (
        f"/var/lib/big.dat: content differs (compared by sha256; larger than {FETCH_LIMIT} bytes, so no diff)\n"
    )


# --- file.managed: sensitive content -----------------------------------------------------------


@pytest.fixture
def db_password(monkeypatch):
    monkeypatch.setenv("FOOBAR_TEST_DB_PASSWORD", "s3cr3t-Pa55")
    return Secret("env:FOOBAR_TEST_DB_PASSWORD")


def test_managed_with_a_secret_in_the_context_shows_no_content_in_its_diff(db_password):
    st = s.file.managed(
        "/etc/app.env",
        template="DB_USER=app\nDB_PASSWORD={{ pw }}\n",
        context={"db": {"pw": db_password}, "pw": db_password},
        inline=True,
    )
    assert st.sensitive
    assert st.content == b"DB_USER=app\nDB_PASSWORD=s3cr3t-Pa55\n"
    plan = st.plan(live_file(b"DB_USER=app\nDB_PASSWORD=old-value\n", fetched=True))
    assert plan.diff == (
        "/etc/app.env: content differs (2 lines added or removed); not shown: the file holds secrets\n"
    )
    assert "old-value" not in plan.diff and "s3cr3t" not in plan.diff
    assert plan.uploads == {"content": st.content}  # the file itself gets the value
    created = st.plan(ABSENT)
    assert created.diff == "/etc/app.env: new file (2 lines added or removed); not shown: the file holds secrets\n"


def test_managed_content_holding_a_revealed_secret_is_sensitive(db_password):
    value = db_password.reveal()
    st = s.file.managed("/etc/app.env", f"DB_PASSWORD={value}\n")
    assert st.sensitive
    assert value not in st.plan(live_file(b"DB_PASSWORD=old\n", fetched=True)).diff


def test_binary_content_holding_a_revealed_secret_in_any_masked_form_is_sensitive(monkeypatch):
    # found in the bytes themselves (a large binary file is not decoded to look): as it is, and as
    # it reads escaped in JSON (a quote in the value)
    monkeypatch.setenv("FOOBAR_TEST_ODD_PASSWORD", 'pa"ss-w0rd-x')
    value = Secret("env:FOOBAR_TEST_ODD_PASSWORD").reveal()
    binary = b"PK\x03\x04\xff\xfe" + b"\x00" * 64
    assert not s.file.managed("/srv/w.whl", binary + b"nothing here").sensitive
    assert s.file.managed("/srv/w.whl", binary + value.encode() + b"\x00").sensitive
    assert s.file.managed("/srv/w.json", binary + b'{"pw": "pa\\"ss-w0rd-x"}').sensitive


def test_a_secret_with_a_byte_that_is_not_utf8_is_found_and_breaks_no_other_file(monkeypatch):
    # read from the environment, a byte that is not UTF-8 comes as a surrogate escape
    monkeypatch.setenv("FOOBAR_TEST_LATIN1_PASSWORD", b"p\xe4sswort-12345".decode("utf-8", "surrogateescape"))
    Secret("env:FOOBAR_TEST_LATIN1_PASSWORD").reveal()
    assert not s.file.managed("/etc/motd", "hello, nothing secret here\n").sensitive
    assert s.file.managed("/etc/app.env", b"DB_PASSWORD=p\xe4sswort-12345\n").sensitive
    rendered = s.file.managed(
        "/etc/app.env",
        template="DB_PASSWORD={{ pw }}\n",
        inline=True,
        context={"pw": Secret("env:FOOBAR_TEST_LATIN1_PASSWORD")},
    )
    assert rendered.content == b"DB_PASSWORD=p\xe4sswort-12345\n" and rendered.sensitive  # the byte as it is


def test_managed_sensitive_flag_overrides_the_guess():
    st = s.file.managed("/etc/token", "abc\n", sensitive=True)
    assert "not shown" in st.plan(live_file(b"xyz\n", fetched=True)).diff
    assert not s.file.managed("/etc/motd", "hello\n").sensitive


def test_a_sensitive_files_hash_is_never_in_its_changes():
    # a short secret's sha256 could be guessed offline: the journal and --json get sizes only
    for live in (live_file(b"old-secret\n", fetched=True), ABSENT):
        changes = s.file.managed("/etc/token", "s3cret\n", sensitive=True).plan(live).changes
        text = json.dumps(changes)
        assert "sha256" not in text and sha(b"s3cret\n") not in text and sha(b"old-secret\n") not in text
    plain = s.file.managed("/etc/motd", "hello\n").plan(ABSENT).changes
    assert plain["new"]["sha256"] == sha(b"hello\n")


# --- file.directory -------------------------------------------------------------------------


def test_directory_in_wanted_state():
    plan = s.file.directory("/srv/www").plan(a_dir())
    assert_no_change(plan)


def test_directory_absent_is_created_with_owner_and_mode():
    plan = s.file.directory("/srv/www", owner="www-data", group="www-data", mode="2775").plan(ABSENT)
    assert [argv(c) for c in plan.commands] == [
        ["install", "-d", "-o", "www-data", "-g", "www-data", "-m", "2775", "/srv/www"]
    ]
    assert plan.changes == {"old": None, "new": {"owner": "www-data", "group": "www-data", "mode": "2775"}}


def test_directory_mode_and_owner_drift():
    plan = s.file.directory("/srv/www", mode="0750").plan(a_dir(mode="0755"))
    assert [argv(c) for c in plan.commands] == [["chmod", "0750", "/srv/www"]]
    plan = s.file.directory("/srv/www", owner="www-data").plan(a_dir())
    assert [argv(c) for c in plan.commands] == [["chown", "www-data:root", "/srv/www"]]
    assert plan.changes == {"old": {"owner": "root"}, "new": {"owner": "www-data"}}
    assert plan.diff is None


@pytest.mark.parametrize("fact, kind", [(stat_file(), "file"), (a_link("/srv/www2"), "link"), (OTHER, "other")])
def test_directory_wrong_type_is_a_plan_error(fact, kind):
    plan = s.file.directory("/srv/www").plan(fact)
    assert plan.error == f"/srv/www exists and is a {kind}, not a directory"


def test_directory_bad_mode():
    with pytest.raises(StateError, match="octal"):
        s.file.directory("/srv/www", mode="0888")


# --- file.absent ----------------------------------------------------------------------------


def test_absent_when_already_absent():
    plan = s.file.absent("/etc/nginx/sites-enabled/default").plan(ABSENT)
    assert_no_change(plan)


@pytest.mark.parametrize(
    "fact, kind", [(stat_file(size=10), "file"), (a_dir(), "dir"), (a_link("/x"), "link"), (OTHER, "other")]
)
def test_absent_removes_whatever_is_there(fact, kind):
    path = "/etc/nginx/sites-enabled/default"
    plan = s.file.absent(path).plan(fact)
    assert [argv(c) for c in plan.commands] == [["rm", "-rf", "--", path]]
    assert plan.changes == {"old": kind, "new": None}


@pytest.mark.parametrize("path", ["/", "/etc", "/etc/", "/usr", "/var", "/home", "/root", "/boot"])
def test_absent_refuses_system_directories(path):
    plan = s.file.absent(path).plan(a_dir())
    assert plan.error == f"refusing to remove {path}" and plan.commands == []


@pytest.mark.parametrize("path", ["/./etc", "/usr/../etc", "//etc"])
def test_absent_refuses_system_directories_spelled_differently(path):
    assert s.file.absent(path).plan(a_dir()).error


@pytest.mark.parametrize(
    "make",
    [
        lambda: s.file.directory("srv/www"),
        lambda: s.file.absent("tmp/cache"),
        lambda: s.file.symlink("current", "/opt/app/v2"),
        lambda: s.file.line("etc/hosts", "127.0.0.1 x"),
    ],
    ids=["directory", "absent", "symlink", "line"],
)
def test_every_file_state_refuses_a_relative_path(make):
    with pytest.raises(StateError, match="absolute"):
        make()


# --- file.symlink ---------------------------------------------------------------------------

LINK = "/etc/nginx/sites-enabled/foobar"
TARGET = "/etc/nginx/sites-available/foobar"
LINK_TMP = "/etc/nginx/sites-enabled/.foobar.foobar-link.$$"  # $$: the script's own pid; a dot file


def test_symlink_in_wanted_state():
    assert_no_change(s.file.symlink(LINK, TARGET).plan(a_link(TARGET)))


def test_symlink_pointing_elsewhere_is_replaced_atomically():
    plan = s.file.symlink(LINK, TARGET).plan(a_link("/etc/nginx/sites-available/old"))
    assert [argv(c) for c in steps_of(plan)] == [["ln", "-sfn", TARGET, LINK_TMP], ["mv", "-Tf", LINK_TMP, LINK]]
    assert plan.commands[1].endswith(f"|| {{ rc=$?; rm -f {LINK_TMP}; exit $rc; }}")  # no link left behind
    assert plan.commands[0].endswith(" " + LINK_TMP)  # unquoted: the shell expands $$
    assert plan.changes == {"old": "/etc/nginx/sites-available/old", "new": TARGET}


def test_symlink_absent_is_created():
    plan = s.file.symlink(LINK, TARGET).plan(ABSENT)
    assert plan.changes == {"old": None, "new": TARGET}
    assert argv(plan.commands[0]) == ["ln", "-sfn", TARGET, LINK_TMP]


def test_symlink_over_a_file_needs_force_and_never_replaces_a_directory():
    fact = stat_file(size=5)
    assert "not replacing it with a link" in s.file.symlink(LINK, TARGET).plan(fact).error
    plan = s.file.symlink(LINK, TARGET, force=True).plan(fact)
    assert plan.error is None and plan.changes == {"old": "file", "new": TARGET}
    assert s.file.symlink(LINK, TARGET, force=True).plan(a_dir()).error == (
        f"{LINK} exists and is a dir; not replacing it with a link"
    )


def test_symlink_target_with_a_space_is_in_wanted_state():
    target = "/opt/My App/current"
    assert_no_change(s.file.symlink("/opt/app", target).plan(a_link(target)))


# --- file.line ------------------------------------------------------------------------------

HOSTS = "/etc/hosts"
ENTRY = "10.77.0.11 web-01.foobar.lab web-01"


def test_line_present_plans_nothing():
    plan = s.file.line(HOSTS, ENTRY).plan(LineInfo(exists=True, present=True))
    assert_no_change(plan)
    assert plan.comment == f"line present in {HOSTS}"


def test_line_missing_is_appended():
    plan = s.file.line(HOSTS, ENTRY).plan(LineInfo(exists=True, present=False, ends_with_newline=True))
    (command,) = plan.commands
    assert argv(command) == ["printf", "%s%s\\n", "", ENTRY, ">>", HOSTS]
    assert plan.diff.endswith(f"+{ENTRY}\n")
    assert plan.changes == {"old": None, "new": ENTRY}


def test_line_missing_after_a_file_without_final_newline_adds_one_first():
    plan = s.file.line(HOSTS, ENTRY).plan(LineInfo(exists=True, present=False, ends_with_newline=False))
    assert argv(plan.commands[0]) == ["printf", "%s%s\\n", "\n", ENTRY, ">>", HOSTS]


def test_line_in_a_missing_file_is_a_plan_error():
    plan = s.file.line(HOSTS, ENTRY).plan(LineInfo(exists=False))
    assert plan.error == f"{HOSTS} does not exist" and not plan.needed


def test_line_argument_errors_and_id():
    with pytest.raises(StateError, match="newline"):
        s.file.line(HOSTS, "a\nb")
    assert s.file.line(HOSTS, ENTRY).id == f"file.line:{HOSTS}:{ENTRY}"


# --- pkg.installed / pkg.removed ------------------------------------------------------------
# The fact is {name: version} of the packages installed ("ii"): PackagesFact leaves out packages
# that are unknown, removed with their conffiles kept ("rc") or purged (see test_facts.py).


def test_pkg_installed_in_wanted_state():
    fact = {"haproxy": "2.6.12-1+deb12u1", "curl": "7.88.1-10+deb12u5"}
    plan = s.pkg.installed(names=["haproxy", "curl"]).plan(fact)
    assert_no_change(plan)
    assert plan.comment == "installed: haproxy, curl"


def test_pkg_installed_missing_packages_are_installed_non_interactively():
    fact = {"curl": "7.88.1-10+deb12u5"}  # nginx is "rc": not in the fact
    plan = s.pkg.installed(names=["curl", "nginx", "haproxy"]).plan(fact)
    (command,) = plan.commands
    args = argv(command)
    assert args[:2] == ["DEBIAN_FRONTEND=noninteractive", "apt-get"]
    assert "-y" in args and "Dpkg::Options::=--force-confold" in args
    assert args[-4:] == ["install", "--no-install-recommends", "nginx", "haproxy"]
    assert plan.changes == {"old": {"nginx": None, "haproxy": None}, "new": {"nginx": "latest", "haproxy": "latest"}}


def test_pkg_installed_pinned_version_drift():
    plan = s.pkg.installed("haproxy", version="2.6.12-1+deb12u1").plan({"haproxy": "2.6.12-1"})
    assert argv(plan.commands[0])[-1] == "haproxy=2.6.12-1+deb12u1"
    assert plan.changes == {"old": {"haproxy": "2.6.12-1"}, "new": {"haproxy": "2.6.12-1+deb12u1"}}
    assert_no_change(s.pkg.installed("haproxy", version="2.6.12-1").plan({"haproxy": "2.6.12-1"}))


def test_pkg_argument_errors():
    with pytest.raises(StateError, match="exactly one package"):
        s.pkg.installed(names=["a", "b"], version="1")
    with pytest.raises(StateError, match="empty"):
        s.pkg.installed()
    with pytest.raises(StateError, match="empty"):
        s.pkg.removed(names=["apache2", ""])


def test_pkg_fact_quotes_names_and_never_fails():
    command = s.pkg.installed(names=["haproxy", "it's"]).fact().command()
    assert "${db:Status-Abbrev}" in command and command.endswith("2>/dev/null; true")
    assert argv(command)[-4:-2] == ["haproxy", "it's"]


def test_pkg_removed():
    st = s.pkg.removed(names=["apache2", "telnet"])
    plan = st.plan({})  # none installed (apache2 "rc", telnet unknown: both left out of the fact)
    assert_no_change(plan)
    assert plan.comment == "not installed: apache2, telnet"
    plan = st.plan({"apache2": "2.4.57-2", "curl": "7.88.1"})
    assert argv(plan.commands[0])[-2:] == ["remove", "apache2"]
    assert plan.changes == {"old": {"apache2": "2.4.57-2"}, "new": None}


# --- service.running / service.dead ---------------------------------------------------------


def test_service_running_in_wanted_state():
    st = s.service.running("haproxy")
    assert st.unit == "haproxy.service"
    assert_no_change(st.plan(unit()))


def test_service_running_starts_and_enables():
    plan = s.service.running("haproxy").plan(unit(active="inactive", file_state="disabled"))
    assert [argv(c) for c in plan.commands] == [
        ["systemctl", "start", "haproxy.service"],
        ["systemctl", "enable", "haproxy.service"],
    ]
    assert plan.changes == {
        "old": {"active": "inactive", "enabled": "disabled"},
        "new": {"active": "active", "enabled": "enabled"},
    }


def test_service_running_leaves_static_units_and_enabled_none_alone():
    assert_no_change(s.service.running("systemd-journald").plan(unit(file_state="static")))
    assert_no_change(s.service.running("haproxy", enabled=None).plan(unit(file_state="disabled")))
    plan = s.service.running("haproxy", enabled=False).plan(unit())
    assert [argv(c) for c in plan.commands] == [["systemctl", "disable", "haproxy.service"]]


def test_service_running_unknown_unit_is_a_plan_error():
    plan = s.service.running("nosuch").plan(unit(load="not-found", active="inactive", file_state="", can_reload=False))
    assert plan.error == "service nosuch.service does not exist (LoadState=not-found)"


@pytest.mark.parametrize(
    "can, reload, verb", [(True, True, "reload"), (False, True, "restart"), (True, False, "restart")]
)
def test_service_running_react_reloads_when_it_can(can, reload, verb):
    what, commands = s.service.running("nginx", reload=reload).react(unit(can_reload=can))
    assert what == verb and [argv(c) for c in commands] == [["systemctl", verb, "nginx.service"]]


@pytest.mark.parametrize("can, reload", [(True, True), (False, True), (True, False)])
def test_service_running_reloads_with_its_own_script_only_when_it_reloads(can, reload):
    script = "systemctl reload nginx\ncheck-new-workers || systemctl restart nginx"
    what, commands = s.service.running("nginx", reload=reload, reload_with=script).react(unit(can_reload=can))
    if can and reload:
        assert (what, commands) == ("reload", [script])
    else:  # a restart is a restart, whatever the reload would be
        assert what == "restart" and [argv(c) for c in commands] == [["systemctl", "restart", "nginx.service"]]


def test_states_that_do_not_react_return_none():
    assert s.service.dead("apache2").react(unit()) is None
    assert s.file.managed(CFG, NEW).react(live_file(NEW, fetched=False)) is None


def test_service_names_with_a_suffix_are_kept():
    assert s.service.running("docker.socket").unit == "docker.socket"


def test_service_dead():
    assert_no_change(s.service.dead("apache2").plan(unit(active="inactive", file_state="disabled")))
    plan = s.service.dead("apache2").plan(unit())
    assert [argv(c) for c in plan.commands] == [
        ["systemctl", "stop", "apache2.service"],
        ["systemctl", "disable", "apache2.service"],
    ]
    plan = s.service.dead("apache2", enabled=None).plan(unit())
    assert [argv(c) for c in plan.commands] == [["systemctl", "stop", "apache2.service"]]
    not_found = s.service.dead("apache2").plan(unit(load="not-found", active="inactive", file_state=""))
    assert_no_change(not_found)
    assert not_found.comment == "apache2.service is not installed"


# --- user.present / group.present -----------------------------------------------------------

# demo: a system user whose own group exists and who is also in adm (UserInfo.groups leaves out
# the group named like the user)
DEMO = UserInfo(
    exists=True, uid=999, home="/nonexistent", shell="/usr/sbin/nologin", groups=("adm",), group_exists=True
)


def test_user_present_in_wanted_state():
    assert_no_change(s.user.present("demo", system=True, groups=["adm"]).plan(DEMO))
    assert_no_change(s.user.present("demo", system=True, groups=["adm", "demo"]).plan(DEMO))
    assert_no_change(s.user.present("demo", system=True).plan(DEMO))  # groups=None: left alone


def test_user_absent_is_created_with_its_own_group():
    plan = s.user.present("deploy", groups=["adm", "sudo"]).plan(UserInfo(exists=False))
    assert [argv(c) for c in plan.commands] == [
        [
            "useradd",
            "--home-dir",
            "/home/deploy",
            "--shell",
            "/bin/bash",
            "--user-group",
            "--create-home",
            "--groups",
            "adm,sudo",
            "deploy",
        ]
    ]
    assert plan.changes["old"] is None


def test_system_user_reuses_an_existing_same_named_group():
    plan = s.user.present("haproxy", system=True, uid=120).plan(UserInfo(exists=False, group_exists=True))
    assert argv(plan.commands[0]) == [
        "useradd",
        "--home-dir",
        "/nonexistent",
        "--shell",
        "/usr/sbin/nologin",
        "--gid",
        "haproxy",
        "--system",
        "--uid",
        "120",
        "haproxy",
    ]


def test_user_drift_is_fixed_with_usermod():
    plan = s.user.present("demo", system=True, shell="/bin/bash").plan(DEMO)
    assert [argv(c) for c in plan.commands] == [["usermod", "--shell", "/bin/bash", "demo"]]
    assert plan.changes == {"old": {"shell": "/usr/sbin/nologin"}, "new": {"shell": "/bin/bash"}}
    plan = s.user.present("demo", system=True, groups=["adm", "www-data"], uid=1999).plan(DEMO)
    assert argv(plan.commands[0]) == ["usermod", "--uid", "1999", "--groups", "adm,www-data", "demo"]
    assert plan.changes["old"] == {"uid": "999", "groups": ["adm"]}


def test_group_present():
    st = s.group.present("web", gid=1500)
    assert_no_change(st.plan(GroupInfo(1500)))
    plan = st.plan(GroupInfo(1001))
    assert [argv(c) for c in plan.commands] == [["groupmod", "--gid", "1500", "web"]]
    assert plan.changes == {"old": {"gid": 1001}, "new": {"gid": 1500}}
    plan = s.group.present("web", system=True).plan(None)
    assert [argv(c) for c in plan.commands] == [["groupadd", "--system", "web"]]
    assert plan.changes == {"old": None, "new": {"gid": None}}
    plan = s.group.present("web", gid=1500).plan(None)
    assert [argv(c) for c in plan.commands] == [["groupadd", "--gid", "1500", "web"]]
    assert_no_change(s.group.present("web").plan(GroupInfo(1001)))


# --- cmd.run ---------------------------------------------------------------------------------


def test_cmd_run_without_guard_always_runs_and_is_not_idempotent():
    st = s.cmd.run("update-ca-certificates")
    assert st.idempotent is False
    plan = st.plan(Guards())
    assert plan.commands == ["update-ca-certificates"]
    assert "not idempotent" in plan.comment
    assert st.fact().command() == "true"


def test_cmd_run_guards_make_it_idempotent():
    assert s.cmd.run("x", creates="/a").idempotent
    assert s.cmd.run("x", unless="test -f /a").idempotent
    assert s.cmd.run("x", onlyif="test -f /a").idempotent
    assert s.cmd.run("x", onchanges=["file.managed:/a"]).idempotent


def test_cmd_run_creates_guard():
    st = s.cmd.run("tar xf /tmp/app.tgz -C /opt", creates="/opt/my app/bin")
    assert "[ -e '/opt/my app/bin' ] && echo creates=yes" in st.fact().command()
    plan = st.plan(Guards(creates=True))
    assert_no_change(plan)
    assert plan.comment == "/opt/my app/bin exists"
    assert st.plan(Guards(creates=False)).commands == ["tar xf /tmp/app.tgz -C /opt"]


def test_cmd_run_unless_guard():
    st = s.cmd.run("a2enmod ssl", unless="apache2ctl -M | grep -q ssl")
    assert "( apache2ctl -M | grep -q ssl ) >/dev/null 2>&1 && echo unless=yes" in st.fact().command()
    plan = st.plan(Guards(unless=True))
    assert_no_change(plan)
    assert plan.comment == "unless condition is true"
    assert st.plan(Guards(unless=False)).needed


def test_cmd_run_onlyif_guard():
    st = s.cmd.run("systemctl daemon-reload", onlyif="test -d /run/systemd/system")
    assert st.plan(Guards(onlyif=True)).commands == ["systemctl daemon-reload"]
    plan = st.plan(Guards(onlyif=False))
    assert_no_change(plan)
    assert plan.comment == "onlyif condition is false"


def test_cmd_run_cwd_is_quoted():
    plan = s.cmd.run("make install", cwd="/opt/it's here").plan(Guards())
    assert argv(plan.commands[0]) == ["cd", "/opt/it's here", "&&", "make", "install"]


# --- quoting of every argument --------------------------------------------------------------

ODD = '/srv/my app/it\'s "quoted".conf'
ODD_TEMPLATE = '/srv/my app/.it\'s "quoted".conf.foobar-new.XXXXXX'
ODD_LINK_TMP = '/srv/my app/.it\'s "quoted".conf.foobar-link.$$'


def test_file_managed_commands_quote_paths_with_spaces_and_quotes():
    plan = s.file.managed(ODD, "new\n", owner="www-data", mode="0640").plan(live_file(b"old\n", fetched=True))
    make_tmp, install, mkdir, copy, prune, rename = steps_of(plan)
    assert mktemp_template(make_tmp) == ODD_TEMPLATE
    assert argv(install)[-2:] == ["$FOOBAR_STAGE/content", "$tmp"]
    assert argv(copy)[:3] == ["cp", "-p", ODD]
    assert argv(copy)[3].startswith(f'{BACKUP_DIR}/srv%my app%it\'s "quoted".conf.$(date')
    assert argv(rename) == ["mv", "-f", "$tmp", ODD]
    meta = s.file.managed(ODD, "old\n", owner="www-data", mode="0640").plan(live_file(b"old\n", fetched=False))
    assert [argv(c) for c in meta.commands] == [["chown", "www-data:root", ODD], ["chmod", "0640", ODD]]


def test_file_facts_quote_paths_with_spaces_and_quotes():
    for st in (
        s.file.managed(ODD, "x"),
        s.file.directory(ODD),
        s.file.absent(ODD),
        s.file.symlink(ODD, "/x"),
        s.file.line(ODD, "it's a line"),
    ):
        fact = st.fact()
        assert fact.path == ODD, st
        command = fact.command()
        assert shlex.quote(ODD) in command, st
        assert f"[ -f {ODD}" not in command


@pytest.mark.parametrize(
    "make, fact, expected",
    [
        (lambda: s.file.directory(ODD), ABSENT, [["install", "-d", "-o", "root", "-g", "root", "-m", "0755", ODD]]),
        (lambda: s.file.absent(ODD), stat_file(size=1), [["rm", "-rf", "--", ODD]]),
        (
            lambda: s.file.symlink(ODD, "/opt/it's target"),
            ABSENT,
            [["ln", "-sfn", "/opt/it's target", ODD_LINK_TMP], ["mv", "-Tf", ODD_LINK_TMP, ODD]],
        ),
        (
            lambda: s.file.line(ODD, "say 'hi' $HOME `id`"),
            LineInfo(exists=True, present=False),
            [["printf", "%s%s\\n", "", "say 'hi' $HOME `id`", ">>", ODD]],
        ),
        (
            lambda: s.user.present("o'brien", home="/home/o brien", groups=["a b"]),
            UserInfo(exists=False),
            [
                [
                    "useradd",
                    "--home-dir",
                    "/home/o brien",
                    "--shell",
                    "/bin/bash",
                    "--user-group",
                    "--create-home",
                    "--groups",
                    "a b",
                    "o'brien",
                ]
            ],
        ),
        (lambda: s.group.present("it's"), None, [["groupadd", "it's"]]),
        (
            lambda: s.service.running("my app"),
            unit(active="failed", file_state="enabled"),
            [["systemctl", "start", "my app.service"]],
        ),
        (
            lambda: s.pkg.installed(names=["it's", "a b"]),
            {},
            [[*argv(APT), "install", "--no-install-recommends", "it's", "a b"]],
        ),
    ],
    ids=["directory", "absent", "symlink", "line", "user", "group", "service", "pkg"],
)
def test_every_command_argument_is_shell_quoted(make, fact, expected):
    plan = make().plan(fact)
    assert [argv(c) for c in steps_of(plan)] == expected


def test_line_fact_quotes_the_line_and_path():
    command = s.file.line(ODD, "it's $HOME").fact().command()
    assert "grep -qxF -- " + shlex.quote("it's $HOME") + " " + shlex.quote(ODD) in command
