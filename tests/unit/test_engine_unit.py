"""The engine against a fake remote: no host, no shell.

The fake never runs a script. It reads the `@@FBO` sections the engine wrote (see
engine.section), answers every fact section with the facts the test chose for that probe, and
answers `apply` and `react` sections with a chosen output and exit code, printing exactly what
engine.section's printf lines would print.
"""
from __future__ import annotations

import base64
import json
import re
import shlex
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from foobar_ops import states as s
from foobar_ops.engine import VALIDATION_FAILED, HostRun, check_states, section, sections
from foobar_ops.secrets import MASK, Secret
from foobar_ops.states.base import StateError

# A section as engine.section() writes it: printf BEGIN, ( body ) with stdout+stderr, printf END.
_SECTION_IN_SCRIPT = re.compile(
    r"printf '\\n@@FBO %s BEGIN\\n' (\S+)\n\( (.*?)\n\) 2>&1 </dev/null\n"
    r"printf '\\n@@FBO %s END %d\\n' \1 \$\?\n", re.S)


def printed(tag: str, output: str, code: int) -> str:
    """What a section prints: the two printf lines around the body's output."""
    return f"\n@@FBO {tag} BEGIN\n{output}\n@@FBO {tag} END {code}\n"


@dataclass
class FakeOutcome:
    stdout: str
    stderr: str = ""
    exit_code: int | None = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.error is None


class FakeFile:
    def __init__(self, remote: "FakeRemote", path: str) -> None:
        self.remote, self.path = remote, path

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def chmod(self, mode: int) -> None:
        self.remote.modes[self.path] = mode

    def write(self, data: bytes) -> None:
        self.remote.uploads[self.path] = self.remote.uploads.get(self.path, b"") + bytes(data)


class FakeSFTP:
    def __init__(self, remote: "FakeRemote") -> None:
        self.remote = remote

    def mkdir(self, path: str, mode: int) -> None:
        self.remote.modes[path] = mode

    def open(self, path: str, mode: str) -> FakeFile:
        assert mode == "wb"
        return FakeFile(self.remote, path)


class FakeRemote:
    """Stands for ssh.Remote: answers the engine's scripts from canned facts.

    facts: {state: facts text} -- each fact section is answered by the probe it runs.
    apply: (output, exit code) for `apply` sections.
    react: (output, exit code) for `react` sections.
    """

    def __init__(self, facts: dict, apply=("", 0), react=("", 0)) -> None:
        self.by_probe = {st.probe(): text for st, text in facts.items()}
        self.apply, self.react = apply, react
        self.round_trips = 0
        self.commands: list[str] = []
        self.scripts: list[str] = []
        self.sudo: list[bool] = []
        self.uploads: dict[str, bytes] = {}
        self.modes: dict[str, int] = {}
        self.closed = 0
        self.broken: FakeOutcome | None = None

    # --- what the engine calls ---
    def run(self, command: str, sudo: bool = False) -> FakeOutcome:
        self.round_trips += 1
        self.commands.append(command)
        self.sudo.append(sudo)
        args = shlex.split(command)
        assert args[:2] == ["sh", "-c"] and len(args) == 3, command
        script = args[2]
        self.scripts.append(script)
        if self.broken:
            return self.broken
        found = _SECTION_IN_SCRIPT.findall(script)
        assert "".join(section(tag, body) for tag, body in found) == script, "unparsed script text"
        return FakeOutcome("".join(printed(tag, *self.answer(tag, body)) for tag, body in found))

    def answer(self, tag: str, body: str) -> tuple[str, int]:
        if tag == "apply":
            return self.apply
        if tag == "react":
            return self.react
        assert re.fullmatch(r"f\d+", tag), tag
        assert body in self.by_probe, f"no facts for probe {body!r}"
        return self.by_probe[body], 0

    def open(self):
        return SimpleNamespace(sftp=lambda: FakeSFTP(self))

    def close(self) -> None:
        self.closed += 1

    # --- what the tests look at ---
    def tags(self, script: str) -> list[str]:
        return [tag for tag, _ in _SECTION_IN_SCRIPT.findall(script)]

    def bodies(self, tag: str) -> list[str]:
        return [body for script in self.scripts for t, body in _SECTION_IN_SCRIPT.findall(script) if t == tag]


HOST = SimpleNamespace(name="web-01", address="10.77.0.11", user="root")


def run(states, facts, *, test=False, host=HOST, **fake):
    """Run states against a FakeRemote; return (results, emitted, remote)."""
    remote = FakeRemote(facts, **fake)
    emitted = []
    results = HostRun(host, states, remote, test, emitted.append).execute()
    return results, emitted, remote


def by_id(results):
    return {r.id: r for r in results}


# --- facts as the probes print them ----------------------------------------------------------

def file_facts(content: bytes, mode="0644") -> str:
    return (f"type=file\nowner=root group=root mode={mode} size={len(content)}\n"
            f"content={base64.b64encode(content).decode()}\nparent=yes\n")


def unit(active="active", enabled="enabled", can_reload="yes") -> str:
    return f"LoadState=loaded ActiveState={active} UnitFileState={enabled} CanReload={can_reload} \n"


CFG = "/etc/haproxy/haproxy.cfg"
OLD = b"frontend www\n    bind :80\n"
NEW = b"frontend www\n    bind :8080\n"


# --- section() / sections() -------------------------------------------------------------------


def test_section_and_sections_round_trip():
    script = (section("f0", "echo type=file") + section("apply", "set -e; false")
              + section("f1", "true"))
    remote_output = ("Debian GNU/Linux motd noise\n"
                     + printed("f0", "type=file\nparent=yes", 0)
                     + printed("apply", "line 1\nline 2: error", 1)
                     + printed("f1", "", 0))
    assert [t for t, _ in _SECTION_IN_SCRIPT.findall(script)] == ["f0", "apply", "f1"]
    assert sections(remote_output) == {"f0": ("type=file\nparent=yes", 0),
                                       "apply": ("line 1\nline 2: error", 1),
                                       "f1": ("", 0)}


def test_section_captures_stderr_and_closes_stdin():
    text = section("f3", "cat /etc/hostname")
    assert "( cat /etc/hostname\n) 2>&1 </dev/null\n" in text
    assert text.endswith("printf '\\n@@FBO %s END %d\\n' f3 $?\n")


def test_sections_keeps_an_end_marker_inside_another_tags_output_apart():
    out = printed("apply", "@@FBO f0 END 0 (not a marker of apply)", 97) + printed("f0", "x", 0)
    assert sections(out) == {"apply": ("@@FBO f0 END 0 (not a marker of apply)", 97), "f0": ("x", 0)}


def test_sections_ignores_a_truncated_section():
    out = printed("f0", "a", 0) + "\n@@FBO f1 BEGIN\ntype=fi"
    assert sections(out) == {"f0": ("a", 0)}


# --- check_states ----------------------------------------------------------------------------


def test_check_states_refuses_duplicate_ids():
    with pytest.raises(StateError, match=r"host web-01: state id 'pkg.installed:haproxy' is declared twice"):
        check_states("web-01", [s.pkg.installed("haproxy"), s.pkg.installed("haproxy")])


def test_check_states_refuses_unknown_requisites():
    svc = s.service.running("haproxy", require=["pkg.installed:haproxy"])
    with pytest.raises(StateError, match=r"web-01.*'service.running:haproxy': require names "
                                         r"'pkg.installed:haproxy'"):
        check_states("web-01", [svc])


@pytest.mark.parametrize("kind", ["require", "watch", "onchanges"])
def test_check_states_refuses_requisites_on_later_states(kind):
    cfg = s.file.managed(CFG, NEW)
    svc = s.service.running("haproxy", **{kind: [cfg]})
    with pytest.raises(StateError, match=f"{kind} names 'file.managed:{CFG}'"):
        check_states("web-01", [svc, cfg])
    check_states("web-01", [cfg, svc])  # declared before it: fine


def test_bad_declarations_fail_the_host_without_touching_it():
    cfg = s.file.managed(CFG, NEW)
    results, emitted, remote = run([s.service.running("haproxy", watch=[cfg]), cfg], {})
    assert [(r.id, r.state, r.result) for r in results] == [("__host__", "host.connect", False)]
    assert "not a state declared before it" in results[0].comment
    assert emitted == results
    assert remote.scripts == []


# --- one round trip when nothing changes -----------------------------------------------------


def test_a_no_op_run_is_one_round_trip_for_all_states():
    states = [s.pkg.installed("haproxy"),
              s.file.directory("/etc/haproxy"),
              s.file.managed(CFG, NEW, validate="haproxy -c -f {}"),
              s.service.running("haproxy", watch=[f"file.managed:{CFG}"]),
              s.cmd.run("touch /var/lib/x", creates="/var/lib/x")]
    facts = {states[0]: "pkg=haproxy status=ii  version=2.6.12-1\n",
             states[1]: "type=dir\nowner=root group=root mode=0755 size=4096\nparent=yes\n",
             states[2]: file_facts(NEW), states[3]: unit(), states[4]: "creates=yes\n"}
    results, emitted, remote = run(states, facts)
    assert remote.round_trips == 1 and len(remote.scripts) == 1
    assert remote.tags(remote.scripts[0]) == ["f0", "f1", "f2", "f3", "f4"]
    assert [r.result for r in results] == [True] * 5
    assert not any(r.changed for r in results)
    assert emitted == results
    assert remote.sudo == [False]


def test_a_non_root_login_runs_the_script_through_sudo():
    st = s.pkg.installed("curl")
    _, _, remote = run([st], {st: "pkg=curl status=ii  version=7.88.1\n"},
                       host=SimpleNamespace(name="web-02", address="10.77.0.12", user="deploy"))
    assert remote.sudo == [True]


# --- applying a change -----------------------------------------------------------------------


def test_a_change_is_uploaded_then_applied_with_later_states_re_probed_in_the_same_script():
    cfg = s.file.managed(CFG, NEW)
    after = s.pkg.installed("haproxy")
    results, _, remote = run([cfg, after], {cfg: file_facts(OLD),
                                            after: "pkg=haproxy status=ii  version=2.6.12-1\n"})
    r = by_id(results)[cfg.id]
    assert (r.result, r.changed, r.run) == (True, True, True)
    assert r.comment == f"{CFG} updated" and "+    bind :8080" in r.diff
    # the content went over SFTP into a private folder, exactly
    ((path, data),) = remote.uploads.items()
    assert path.startswith("/tmp/.foobar-stage-") and path.endswith("/content") and data == NEW
    assert remote.modes[path] == 0o600 and remote.modes[path.rsplit("/", 1)[0]] == 0o700
    # the apply script sets FOOBAR_STAGE to that folder, and the later states are re-probed with it
    assert len(remote.scripts) == 2
    assert remote.tags(remote.scripts[1]) == ["apply", "f0", "f1"]
    (body,) = remote.bodies("apply")
    assert body.startswith("set -e; FOOBAR_STAGE=" + shlex.quote(path.rsplit("/", 1)[0]) + ";")
    assert body.endswith(shlex.join(["mv", "-f", "/etc/haproxy/.haproxy.cfg.foobar-new", CFG]))
    assert remote.round_trips == 1 + 2 + 1  # facts, mkdir + one file, apply


def test_a_failing_command_fails_the_state_with_its_output():
    st = s.pkg.installed("haproxy")
    results, _, _ = run([st], {st: ""}, apply=("E: Unable to locate package haproxy", 100))
    (r,) = results
    assert r.result is False and r.changed is False
    assert r.comment == "failed (exit 100): E: Unable to locate package haproxy"


def test_validation_failure_fails_with_the_validators_message_and_changes_nothing():
    cfg = s.file.managed(CFG, NEW, validate="haproxy -c -f {}")
    message = ("validation failed: [ALERT] config : parsing [/etc/haproxy/.haproxy.cfg.foobar-new:2] "
               ": unknown keyword 'bind2'")
    results, _, remote = run([cfg], {cfg: file_facts(OLD)}, apply=(message, VALIDATION_FAILED))
    (r,) = results
    assert r.result is False and r.changed is False
    assert "unknown keyword 'bind2'" in r.comment
    assert r.diff and "+    bind :8080" in r.diff  # what would have been written is still shown
    assert "haproxy -c -f" in remote.bodies("apply")[0]


def test_fact_gathering_failure_is_one_host_result():
    st = s.pkg.installed("haproxy")
    remote = FakeRemote({st: ""})
    remote.broken = FakeOutcome("", "sh: 1: cannot fork", 2, "exit code 2")
    results = HostRun(HOST, [st], remote, False, lambda r: None).execute()
    assert [(r.id, r.result) for r in results] == [("__host__", False)]
    assert "fact gathering failed" in results[0].comment and "cannot fork" in results[0].comment


# --- requisites ------------------------------------------------------------------------------


def test_a_failed_requisite_stops_its_dependents():
    cfg = s.file.managed("/etc/app/app.ini", "x=1\n")  # parent directory missing: plan error
    svc = s.service.running("app", require=[cfg])
    hook = s.cmd.run("app --migrate", require=[svc], unless="app --migrated")
    other = s.pkg.installed("curl")
    results, _, remote = run([cfg, svc, hook, other],
                             {cfg: "type=absent\nparent=no\n", svc: unit(), hook: "",
                              other: "pkg=curl status=ii  version=7.88.1\n"})
    r = by_id(results)
    assert r[cfg.id].result is False and r[cfg.id].run is True
    for dependent, cause in ((svc, cfg), (hook, svc)):
        d = r[dependent.id]
        assert (d.result, d.run, d.changed) == (False, False, False)
        assert d.comment.startswith("not run") and cause.id in d.comment
    assert r[other.id].result is True  # independent states still run
    assert remote.bodies("apply") == []


def test_watch_also_requires():
    cfg = s.file.managed("/etc/app/app.ini", "x=1\n")
    svc = s.service.running("app", watch=[cfg])
    results, _, _ = run([cfg, svc], {cfg: "type=absent\nparent=no\n", svc: unit()})
    assert (by_id(results)[svc.id].result, by_id(results)[svc.id].run) == (False, False)


def test_onchanges_not_triggered_is_ok_and_not_run():
    cfg = s.file.managed(CFG, NEW)
    hook = s.cmd.run("systemctl daemon-reload", onchanges=[cfg])
    results, _, remote = run([cfg, hook], {cfg: file_facts(NEW), hook: ""})
    h = by_id(results)[hook.id]
    assert h.result is True and h.changed is False
    assert h.comment.startswith("not run")
    assert remote.bodies("apply") == [] and remote.round_trips == 1


def test_onchanges_triggered_runs_the_command():
    cfg = s.file.managed(CFG, NEW)
    hook = s.cmd.run("systemctl daemon-reload", onchanges=[cfg])
    results, _, remote = run([cfg, hook], {cfg: file_facts(OLD), hook: ""})
    h = by_id(results)[hook.id]
    assert (h.result, h.changed) == (True, True)
    assert remote.bodies("apply")[1] == "set -e; systemctl daemon-reload"


# --- test mode -------------------------------------------------------------------------------


def test_test_mode_reports_pending_changes_and_sends_no_apply():
    cfg = s.file.managed(CFG, NEW)
    pkg = s.pkg.installed("haproxy")
    ok = s.file.directory("/etc/haproxy")
    results, emitted, remote = run(
        [ok, pkg, cfg], {ok: "type=dir\nowner=root group=root mode=0755 size=4096\nparent=yes\n",
                         pkg: "", cfg: file_facts(OLD)}, test=True)
    r = by_id(results)
    assert r[ok.id].result is True and not r[ok.id].pending
    for st in (pkg, cfg):
        assert r[st.id].result is None and r[st.id].changed is False
        assert r[st.id].changes and r[st.id].pending
        assert r[st.id].comment.startswith("would change")
    assert "+    bind :8080" in r[cfg.id].diff
    assert remote.round_trips == 1
    assert all("apply" not in remote.tags(script) for script in remote.scripts)
    assert remote.uploads == {}
    assert emitted == results


def test_test_mode_does_not_react_but_says_it_would():
    cfg = s.file.managed(CFG, NEW)
    svc = s.service.running("haproxy", watch=[cfg])
    results, _, remote = run([cfg, svc], {cfg: file_facts(OLD), svc: unit()}, test=True)
    v = by_id(results)[svc.id]
    assert "would reload" in v.comment and cfg.id in v.comment
    assert v.changed is False and v.result is not False
    assert remote.bodies("react") == [] and remote.round_trips == 1


def test_test_mode_plan_error_after_a_pending_change_is_not_a_failure():
    d = s.file.directory("/etc/app")
    cfg = s.file.managed("/etc/app/app.ini", "x=1\n", require=[d])
    results, _, _ = run([d, cfg], {d: "type=absent\nparent=yes\n", cfg: "type=absent\nparent=no\n"},
                        test=True)
    c = by_id(results)[cfg.id]
    assert c.result is None and "cannot be checked before earlier pending changes" in c.comment


# --- watch -----------------------------------------------------------------------------------


@pytest.mark.parametrize("can_reload, verb", [("yes", "reload"), ("no", "restart")])
def test_watched_change_makes_the_service_react(can_reload, verb):
    cfg = s.file.managed(CFG, NEW)
    svc = s.service.running("haproxy", watch=[cfg])
    results, _, remote = run([cfg, svc], {cfg: file_facts(OLD), svc: unit(can_reload=can_reload)})
    v = by_id(results)[svc.id]
    assert remote.bodies("react") == [f"set -e; systemctl {verb} haproxy.service"]
    assert (v.result, v.changed) == (True, True)
    assert v.changes["watch"] == {"done": verb, "because": [cfg.id]}
    assert f"{verb}ed" in v.comment
    assert remote.tags(remote.scripts[-1]) == ["react"]


def test_unchanged_watch_sends_no_react():
    cfg = s.file.managed(CFG, NEW)
    svc = s.service.running("haproxy", watch=[cfg])
    results, _, remote = run([cfg, svc], {cfg: file_facts(NEW), svc: unit()})
    assert remote.bodies("react") == [] and by_id(results)[svc.id].changed is False


def test_a_service_just_started_is_not_reloaded_again():
    cfg = s.file.managed(CFG, NEW)
    svc = s.service.running("haproxy", watch=[cfg])
    results, _, remote = run([cfg, svc], {cfg: file_facts(OLD), svc: unit(active="inactive")})
    assert remote.bodies("react") == []
    assert remote.bodies("apply")[1] == "set -e; systemctl start haproxy.service"
    assert by_id(results)[svc.id].changed is True


def test_a_failed_reload_fails_the_service_state():
    cfg = s.file.managed(CFG, NEW)
    svc = s.service.running("haproxy", watch=[cfg])
    results, _, _ = run([cfg, svc], {cfg: file_facts(OLD), svc: unit()},
                        react=("Job for haproxy.service failed.", 1))
    v = by_id(results)[svc.id]
    assert v.result is False and "reload failed (exit 1)" in v.comment


# --- secrets ---------------------------------------------------------------------------------

SECRET_VALUE = "Kq7-unit-engine-pw-93x"


@pytest.fixture
def db_password(monkeypatch):
    monkeypatch.setenv("FOOBAR_UNIT_DB_PASSWORD", SECRET_VALUE)
    return Secret("env:FOOBAR_UNIT_DB_PASSWORD")


def test_a_revealed_secret_is_masked_in_diff_and_comment(db_password):
    path = "/etc/app/db.ini"
    st = s.file.managed(path, template="user=app\npassword={{ pw }}\n", context={"pw": db_password},
                        inline=True, validate="app-check {}")
    assert st.content == f"user=app\npassword={SECRET_VALUE}\n".encode()  # the file gets the value
    echo = f"validation failed: line 2: password={SECRET_VALUE} is too short"
    results, emitted, remote = run([st], {st: file_facts(b"user=app\npassword=old\n")},
                                   apply=(echo, VALIDATION_FAILED))
    (r,) = results
    assert "not shown: the file holds secrets" in r.diff  # a context with a Secret hides content
    assert "password=old" not in r.diff
    assert f"password={MASK} is too short" in r.comment
    everything = json.dumps([x.as_dict() for x in results + emitted])
    assert SECRET_VALUE not in everything
    assert remote.uploads and list(remote.uploads.values())[0] == st.content


def test_a_revealed_secret_is_masked_in_test_mode_too(db_password):
    st = s.file.managed("/etc/app/db.ini", f"password={db_password.reveal()}\n")
    results, _, _ = run([st], {st: "type=absent\nparent=yes\n"}, test=True)
    assert "not shown: the file holds secrets" in results[0].diff  # revealed value in content: hidden
    assert SECRET_VALUE not in json.dumps(results[0].as_dict())


def test_a_secret_in_a_command_line_is_masked_in_the_result(db_password):
    st = s.cmd.run(shlex.join(["htpasswd", "-b", "/etc/app/.htpasswd", "admin", db_password.reveal()]),
                   unless="false")
    results, _, _ = run([st], {st: ""})
    assert results[0].result is True
    assert SECRET_VALUE not in json.dumps(results[0].as_dict())


def test_a_secret_with_json_special_characters_is_masked_in_changes(monkeypatch):
    value = 'pä"ss\\word-77'
    monkeypatch.setenv("FOOBAR_UNIT_ODD_PASSWORD", value)
    pw = Secret("env:FOOBAR_UNIT_ODD_PASSWORD").reveal()
    st = s.cmd.run(f"set-password {shlex.quote(pw)}", unless="false")
    results, _, _ = run([st], {st: ""}, test=True)
    assert value not in results[0].changes["new"]["command"]
