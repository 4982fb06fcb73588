"""One host's apply (HostApply) against a fake remote: no host, no shell.

The fake (tests/unit/fakes.py) never runs a script: it answers each fact section with the output
the state's fact command would print (built by small helpers: a_file, a_dir, packages, unit,
guards), and `apply` / `react` sections with a chosen output and exit code. It keeps what a host
keeps between scripts (a change's outcome until it is acknowledged, owed-reload markers) and can
cut one call's connection (`cut_calls`) while later calls are answered again. The scripts that
must work in a real shell (a change's section, reading its outcome back) are also run by /bin/sh.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import threading
import time
from types import SimpleNamespace

import pytest

from foobar_ops import states as s
from foobar_ops.core.engine import host as engine_host
from foobar_ops.core.engine import wire
from foobar_ops.core.engine.host import (
    VALIDATION_FAILED,
    HostApply,
    apply_section,
    check_states,
    owed_marker,
    section,
    sections,
)
from foobar_ops.core.errors import ConnectionFailed
from foobar_ops.core.result import Status
from foobar_ops.core.secrets import MASK, Secret
from foobar_ops.core.states.base import StateError
from tests.unit.fakes import (
    MISSING,
    SECTION_IN_SCRIPT,
    Answer,
    FakeOutcome,
    FakeRemote,
    a_dir,
    a_file,
    guards,
    nothing_at,
    packages,
    parse,
    printed,
    unit,
    unpacked,
)

HOST = SimpleNamespace(name="web-01", address="10.77.0.11", user="root", ssh=SimpleNamespace(command_timeout=300.0))


def run(states, facts, *, test=False, host=HOST, **fake):
    """Run states against a FakeRemote; return (results, emitted, remote)."""
    remote = FakeRemote(facts, **fake)
    emitted = []
    results = HostApply(host, states, remote, test, emitted.append).execute()
    return results, emitted, remote


def by_id(results):
    return {r.id: r for r in results}


def statuses(results):
    return {r.id: r.status for r in results}


CFG = "/etc/haproxy/haproxy.cfg"
OLD = b"frontend www\n    bind :80\n"
NEW = b"frontend www\n    bind :8080\n"
HAPROXY = packages(haproxy="2.6.12-1")
CURL = packages(curl="7.88.1")


# --- section() / sections() -------------------------------------------------------------------


def test_section_and_sections_round_trip():
    script = section("f0", "echo type=file") + section("apply", "set -e; false") + section("f1", "true")
    remote_output = (
        "Debian GNU/Linux motd noise\n"
        + printed("f0", "type=file\nparent=yes", 0)
        + printed("apply", "line 1\nline 2: error", 1)
        + printed("f1", "", 0)
    )
    assert [t for t, _ in SECTION_IN_SCRIPT.findall(script)] == ["f0", "apply", "f1"]
    assert sections(remote_output) == {
        "f0": ("type=file\nparent=yes", 0),
        "apply": ("line 1\nline 2: error", 1),
        "f1": ("", 0),
    }


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
    with pytest.raises(
        StateError,
        match=r"web-01.*'service.running:haproxy': require names "
        r"'pkg.installed:haproxy'",
    ):
        check_states("web-01", [svc])


@pytest.mark.parametrize("kind", ["require", "watch", "onchanges"])
def test_check_states_refuses_requisites_on_later_states(kind):
    cfg = s.file.managed(CFG, NEW)
    svc = s.service.running("haproxy", **{kind: [cfg]})
    with pytest.raises(StateError, match=f"{kind} names 'file.managed:{CFG}'"):
        check_states("web-01", [svc, cfg])
    check_states("web-01", [cfg, svc])  # declared before it: fine


# --- one round trip when nothing changes -----------------------------------------------------


def test_a_no_op_run_is_one_round_trip_for_all_states():
    states = [
        s.pkg.installed("haproxy"),
        s.file.directory("/etc/haproxy"),
        s.file.managed(CFG, NEW, validate="haproxy -c -f {}"),
        s.service.running("haproxy", watch=[f"file.managed:{CFG}"]),
        s.cmd.run("touch /var/lib/x", creates="/var/lib/x"),
    ]
    facts = dict(zip(states, [HAPROXY, a_dir(), a_file(NEW), unit(), guards(creates=True)], strict=True))
    results, emitted, remote = run(states, facts)
    assert remote.round_trips == 1 and len(remote.scripts) == 1
    # a state watches: the same script asks which reloads earlier runs left owed
    assert remote.tags(remote.scripts[0]) == ["f0", "f1", "f2", "f3", "f4", "owed"]
    assert [r.status for r in results] == [Status.OK] * 5
    assert [r.result for r in results] == [True] * 5 and not any(r.changed for r in results)
    assert emitted == results
    assert remote.sudo == [False]


def test_a_non_root_login_runs_the_script_through_sudo():
    st = s.pkg.installed("curl")
    _, _, remote = run(
        [st], {st: CURL}, host=SimpleNamespace(name="web-02", address="10.77.0.12", user="deploy", ssh=HOST.ssh)
    )
    assert remote.sudo == [True]


# --- applying a change -----------------------------------------------------------------------


def test_a_change_is_uploaded_then_applied_with_later_states_re_probed_in_the_same_script():
    cfg = s.file.managed(CFG, NEW)
    after = s.pkg.installed("haproxy")
    results, _, remote = run([cfg, after], {cfg: a_file(OLD), after: HAPROXY})
    r = by_id(results)[cfg.id]
    assert r.status is Status.CHANGED and r.result is True
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
    # the candidate gets a name of this run's own (mktemp, next to the live file), then replaces it
    assert "; tmp=$(mktemp /etc/haproxy/.haproxy.cfg.foobar-new.XXXXXX); export tmp\n" in body
    assert body.endswith('\n{ mv -f "$tmp" ' + CFG + '; } || { rc=$?; rm -f "$tmp"; exit $rc; }')
    assert remote.round_trips == 1 + 2 + 1  # facts, mkdir + one file, apply
    assert by_id(results)[after.id].status is Status.OK


def test_a_failing_command_fails_the_state_with_its_output():
    st = s.pkg.installed("haproxy")
    results, _, _ = run([st], {st: packages()}, apply=("E: Unable to locate package haproxy", 100))
    (r,) = results
    assert r.status is Status.FAILED and r.result is False
    assert r.comment == "failed (exit 100): E: Unable to locate package haproxy"


def test_validation_failure_fails_with_the_validators_message_and_changes_nothing():
    cfg = s.file.managed(CFG, NEW, validate="haproxy -c -f {}")
    message = (
        "validation failed: [ALERT] config : parsing [/etc/haproxy/.haproxy.cfg.foobar-new.Q3xZ7k:2] : "
        "unknown keyword 'bind2'"
    )
    results, _, remote = run([cfg], {cfg: a_file(OLD)}, apply=(message, VALIDATION_FAILED))
    (r,) = results
    assert r.status is Status.FAILED
    assert "unknown keyword 'bind2'" in r.comment
    assert r.diff and "+    bind :8080" in r.diff  # what would have been written is still shown
    assert "haproxy -c -f" in remote.bodies("apply")[0]


# --- a host that cannot be reached, or is lost mid-run ----------------------------------------


def test_a_host_that_cannot_be_reached_raises_connection_failed_and_reports_nothing():
    st = s.pkg.installed("haproxy")
    remote = FakeRemote({st: HAPROXY}, breaks_at=1)
    emitted = []
    applier = HostApply(HOST, [st], remote, False, emitted.append)
    with pytest.raises(ConnectionFailed, match="Connection reset by peer"):
        applier.execute()
    assert emitted == [] and applier.results == {}
    assert remote.scripts == []


def test_a_fact_command_that_fails_as_a_whole_fails_each_state_and_the_host_stays_reachable():
    """The host answered (no connection error): the script failed, so every state fails naming why,
    and the host is not taken for unreachable."""
    st = s.pkg.installed("haproxy")
    remote = FakeRemote({st: HAPROXY})
    remote.broken = FakeOutcome("", "sh: 1: cannot fork", 2, "exit code 2")
    emitted = []
    applier = HostApply(HOST, [st], remote, False, emitted.append)
    [result] = applier.execute()
    assert result.status is Status.FAILED and "no output came back" in result.comment
    assert "cannot fork" in result.comment and applier.lost is None
    assert emitted == [result]


def test_a_host_lost_mid_run_fails_that_state_and_does_not_run_the_rest():
    pkg = s.pkg.installed("haproxy")
    cfg = s.file.managed(CFG, NEW)
    svc = s.service.running("haproxy", watch=[cfg])
    remote = FakeRemote({pkg: packages(), cfg: a_file(NEW), svc: unit()}, breaks_at=2)  # the apply call
    emitted = []
    applier = HostApply(HOST, [pkg, cfg, svc], remote, False, emitted.append)
    results = applier.execute()
    assert [r.status for r in results] == [Status.FAILED, Status.NOT_RUN, Status.NOT_RUN]
    lost = "Connection reset by peer; the change's outcome could not be read back (it is kept on the host)"
    assert results[0].comment == f"the host stopped answering: {lost}"
    assert all(r.comment == f"not run: the host stopped answering ({lost})" for r in results[1:])
    assert isinstance(applier.lost, ConnectionFailed) and applier.lost.reason == lost
    # one try to connect again and read the change's outcome back, then nothing more
    assert remote.closed == 2 and remote.calls == 3
    assert emitted == results


def test_a_host_that_answers_throughout_is_not_lost():
    st = s.pkg.installed("haproxy")
    remote = FakeRemote({st: packages()})
    applier = HostApply(HOST, [st], remote, False, lambda r: None)
    assert [r.status for r in applier.execute()] == [Status.CHANGED]
    assert applier.lost is None and remote.closed == 0


def test_an_unexpected_error_fails_that_state_only_and_the_run_goes_on():
    cfg = s.file.managed(CFG, NEW)
    pkg = s.pkg.installed("haproxy")
    results, emitted, remote = run(
        [cfg, pkg], {cfg: a_file(OLD), pkg: packages()}, upload_error=OSError(28, "No space left on device")
    )
    r = by_id(results)
    assert r[cfg.id].status is Status.FAILED
    assert r[cfg.id].comment == "OSError: [Errno 28] No space left on device"
    assert r[pkg.id].status is Status.CHANGED  # the next state still ran
    assert [b.startswith("set -e; DEBIAN_FRONTEND") for b in remote.bodies("apply")] == [True]
    assert emitted == results


# --- a fact that cannot be read --------------------------------------------------------------


@pytest.mark.parametrize(
    "answer, why",
    [
        (MISSING, "<fact ServiceFact>: no output came back for it"),
        (
            Answer("Failed to connect to bus: No such file or directory", 1),
            "<fact ServiceFact>: its command failed (exit 1): Failed to connect to bus: No such file or directory",
        ),
        (
            "Unit haproxy.service could not be found, sorry\n",
            "service haproxy.service: cannot read LoadState, ActiveState from",
        ),
    ],
    ids=["missing-section", "non-zero-exit", "malformed-output"],
)
@pytest.mark.parametrize("test", [False, True], ids=["apply", "test-mode"])
def test_a_fact_that_cannot_be_read_fails_only_its_state(answer, why, test):
    before = s.pkg.installed("haproxy")
    svc = s.service.running("haproxy")
    after = s.file.directory("/etc/haproxy")
    results, _, remote = run([before, svc, after], {before: HAPROXY, svc: answer, after: a_dir()}, test=test)
    assert statuses(results) == {before.id: Status.OK, svc.id: Status.FAILED, after.id: Status.OK}
    assert by_id(results)[svc.id].comment.startswith(why)
    assert remote.bodies("apply") == []  # nothing was guessed into a change


def test_a_state_requiring_one_with_an_unreadable_fact_is_not_run():
    svc = s.service.running("haproxy")
    hook = s.cmd.run("haproxy-reload-hook", require=[svc])
    results, _, remote = run([svc, hook], {svc: "garbage\n", hook: ""})
    assert statuses(results) == {svc.id: Status.FAILED, hook.id: Status.NOT_RUN}
    assert remote.bodies("apply") == []


def test_in_test_mode_an_unreadable_fact_after_a_pending_change_is_pending():
    pkg = s.pkg.installed("haproxy")
    svc = s.service.running("haproxy", require=[pkg])
    results, _, _ = run([pkg, svc], {pkg: packages(), svc: Answer("Unit haproxy.service not loaded.", 1)}, test=True)
    v = by_id(results)[svc.id]
    assert v.status is Status.PENDING and v.result is None
    assert v.comment.startswith(
        f"cannot be checked before earlier pending changes ({pkg.id}) are applied: "
        "<fact ServiceFact>: its command failed (exit 1)"
    )


# --- requisites ------------------------------------------------------------------------------


def test_a_failed_requisite_stops_its_dependents():
    cfg = s.file.managed("/etc/app/app.ini", "x=1\n")  # parent directory missing: plan error
    svc = s.service.running("app", require=[cfg])
    hook = s.cmd.run("app --migrate", require=[svc], unless="app --migrated")
    other = s.pkg.installed("curl")
    results, _, remote = run(
        [cfg, svc, hook, other], {cfg: nothing_at(parent=False), svc: unit(), hook: guards(unless=False), other: CURL}
    )
    assert statuses(results) == {
        cfg.id: Status.FAILED,
        svc.id: Status.NOT_RUN,
        hook.id: Status.NOT_RUN,
        other.id: Status.OK,
    }  # independent states still run
    assert "parent directory of /etc/app/app.ini does not exist" in by_id(results)[cfg.id].comment
    for dependent, cause in ((svc, cfg), (hook, svc)):
        d = by_id(results)[dependent.id]
        assert d.result is False and d.changed is False
        assert d.comment == f"not run: requisite {cause.id} failed or did not run"
    assert remote.bodies("apply") == []


def test_watch_also_requires():
    cfg = s.file.managed("/etc/app/app.ini", "x=1\n")
    svc = s.service.running("app", watch=[cfg])
    results, _, _ = run([cfg, svc], {cfg: nothing_at(parent=False), svc: unit()})
    assert statuses(results) == {cfg.id: Status.FAILED, svc.id: Status.NOT_RUN}


def test_onchanges_not_triggered_is_ok_with_nothing_to_do():
    cfg = s.file.managed(CFG, NEW)
    hook = s.cmd.run("systemctl daemon-reload", onchanges=[cfg])
    results, _, remote = run([cfg, hook], {cfg: a_file(NEW), hook: ""})
    h = by_id(results)[hook.id]
    assert h.status is Status.OK and h.result is True
    assert h.comment == "nothing to do: nothing in onchanges changed"
    assert remote.bodies("apply") == [] and remote.round_trips == 1


def test_onchanges_triggered_runs_the_command():
    cfg = s.file.managed(CFG, NEW)
    hook = s.cmd.run("systemctl daemon-reload", onchanges=[cfg])
    results, _, remote = run([cfg, hook], {cfg: a_file(OLD), hook: ""})
    assert by_id(results)[hook.id].status is Status.CHANGED
    assert remote.bodies("apply")[1] == "set -e; systemctl daemon-reload"


# --- test mode -------------------------------------------------------------------------------


def test_test_mode_reports_pending_changes_and_sends_no_apply():
    cfg = s.file.managed(CFG, NEW)
    pkg = s.pkg.installed("haproxy")
    ok = s.file.directory("/etc/haproxy")
    results, emitted, remote = run([ok, pkg, cfg], {ok: a_dir(), pkg: packages(), cfg: a_file(OLD)}, test=True)
    r = by_id(results)
    assert r[ok.id].status is Status.OK and r[ok.id].result is True
    for st in (pkg, cfg):
        assert r[st.id].status is Status.PENDING
        assert r[st.id].result is None and r[st.id].changed is False  # the Salt contract in test mode
        assert r[st.id].changes and r[st.id].comment.startswith("would change")
    assert "+    bind :8080" in r[cfg.id].diff
    assert remote.round_trips == 1
    assert all("apply" not in remote.tags(script) for script in remote.scripts)
    assert remote.uploads == {}
    assert emitted == results


def test_test_mode_does_not_react_but_says_it_would():
    cfg = s.file.managed(CFG, NEW)
    svc = s.service.running("haproxy", watch=[cfg])
    results, _, remote = run([cfg, svc], {cfg: a_file(OLD), svc: unit()}, test=True)
    v = by_id(results)[svc.id]
    # the change it follows is the pending one; the service itself is OK and says what would follow
    assert v.status is Status.OK and v.result is True
    assert v.comment.endswith(f"; would reload: {cfg.id} would change")
    assert v.changes == {}
    assert remote.bodies("react") == [] and remote.round_trips == 1


def test_test_mode_plan_error_after_a_pending_change_is_not_a_failure():
    d = s.file.directory("/etc/app")
    cfg = s.file.managed("/etc/app/app.ini", "x=1\n", require=[d])
    results, _, _ = run([d, cfg], {d: nothing_at(), cfg: nothing_at(parent=False)}, test=True)
    c = by_id(results)[cfg.id]
    assert c.status is Status.PENDING and c.result is None
    assert "cannot be checked before earlier pending changes" in c.comment


# --- watch -----------------------------------------------------------------------------------


@pytest.mark.parametrize("can_reload, verb", [("yes", "reload"), ("no", "restart")])
def test_watched_change_makes_the_service_react(can_reload, verb):
    cfg = s.file.managed(CFG, NEW)
    svc = s.service.running("haproxy", watch=[cfg])
    results, _, remote = run([cfg, svc], {cfg: a_file(OLD), svc: unit(can_reload=can_reload)})
    v = by_id(results)[svc.id]
    # the reload (then only) pays the reload the change made owed
    assert remote.bodies("react") == [f"set -e; (\nsystemctl {verb} haproxy.service\n)\nrm -f {owed_marker(svc.id)}"]
    assert v.status is Status.CHANGED
    assert v.changes["watch"] == {"done": verb, "because": [cfg.id]}
    assert f"{verb}ed" in v.comment
    assert remote.tags(remote.scripts[-1]) == ["react"]


def test_unchanged_watch_sends_no_react():
    cfg = s.file.managed(CFG, NEW)
    svc = s.service.running("haproxy", watch=[cfg])
    results, _, remote = run([cfg, svc], {cfg: a_file(NEW), svc: unit()})
    assert remote.bodies("react") == [] and by_id(results)[svc.id].status is Status.OK


def test_a_service_just_started_is_not_reloaded_again():
    cfg = s.file.managed(CFG, NEW)
    svc = s.service.running("haproxy", watch=[cfg])
    results, _, remote = run([cfg, svc], {cfg: a_file(OLD), svc: unit(active="inactive")})
    assert remote.bodies("react") == []
    # started: the new content is live, so the reload the change made owed is paid by the start
    assert remote.bodies("apply")[1] == f"set -e; systemctl start haproxy.service\nrm -f {owed_marker(svc.id)}"
    assert by_id(results)[svc.id].status is Status.CHANGED
    assert remote.owed == []


def test_a_failed_reload_fails_the_service_state():
    cfg = s.file.managed(CFG, NEW)
    svc = s.service.running("haproxy", watch=[cfg])
    results, _, _ = run([cfg, svc], {cfg: a_file(OLD), svc: unit()}, react=("Job for haproxy.service failed.", 1))
    v = by_id(results)[svc.id]
    assert v.status is Status.FAILED and "reload failed (exit 1)" in v.comment


# --- secrets ---------------------------------------------------------------------------------

SECRET_VALUE = "Kq7-unit-engine-pw-93x"


@pytest.fixture
def db_password(monkeypatch):
    monkeypatch.setenv("FOOBAR_UNIT_DB_PASSWORD", SECRET_VALUE)
    return Secret("env:FOOBAR_UNIT_DB_PASSWORD")


def test_a_revealed_secret_is_masked_in_diff_and_comment(db_password):
    path = "/etc/app/db.ini"
    st = s.file.managed(
        path,
        template="user=app\npassword={{ pw }}\n",
        context={"pw": db_password},
        inline=True,
        validate="app-check {}",
    )
    assert st.content == f"user=app\npassword={SECRET_VALUE}\n".encode()  # the file gets the value
    echo = f"validation failed: line 2: password={SECRET_VALUE} is too short"
    results, emitted, remote = run([st], {st: a_file(b"user=app\npassword=old\n")}, apply=(echo, VALIDATION_FAILED))
    (r,) = results
    assert r.status is Status.FAILED
    assert "not shown: the file holds secrets" in r.diff  # a context with a Secret hides content
    assert "password=old" not in r.diff
    assert f"password={MASK} is too short" in r.comment
    everything = json.dumps([x.as_dict() for x in results + emitted])
    assert SECRET_VALUE not in everything
    assert remote.uploads and list(remote.uploads.values())[0] == st.content


def test_a_revealed_secret_is_masked_in_test_mode_too(db_password):
    st = s.file.managed("/etc/app/db.ini", f"password={db_password.reveal()}\n")
    results, _, _ = run([st], {st: nothing_at()}, test=True)
    assert results[0].status is Status.PENDING
    assert "not shown: the file holds secrets" in results[0].diff  # revealed value in content: hidden
    assert SECRET_VALUE not in json.dumps(results[0].as_dict())


def test_a_secret_in_a_command_line_is_masked_in_the_result(db_password):
    st = s.cmd.run(shlex.join(["htpasswd", "-b", "/etc/app/.htpasswd", "admin", db_password.reveal()]), unless="false")
    results, _, _ = run([st], {st: guards(unless=False)})
    assert results[0].status is Status.CHANGED
    assert SECRET_VALUE not in json.dumps(results[0].as_dict())


def test_a_secret_with_json_special_characters_is_masked_in_changes(monkeypatch):
    value = 'pä"ss\\word-77'
    monkeypatch.setenv("FOOBAR_UNIT_ODD_PASSWORD", value)
    pw = Secret("env:FOOBAR_UNIT_ODD_PASSWORD").reveal()
    st = s.cmd.run(f"set-password {shlex.quote(pw)}", unless="false")
    results, _, _ = run([st], {st: guards(unless=False)}, test=True)
    assert results[0].status is Status.PENDING
    assert value not in results[0].changes["new"]["command"]


@pytest.mark.parametrize("size", [10, 5000])
@pytest.mark.parametrize("code", [0, 3])
def test_a_packed_script_runs_exactly_as_the_script_does(size, code, tmp_path):
    """Short scripts go as `sh -c`, long ones gzipped and base64-encoded (their output, and their
    exit status, coming back compressed); a real sh runs either."""
    import subprocess

    from foobar_ops.core.engine.wire import PACK_OVER, packed, unpacked_output

    script = f"cd {shlex.quote(str(tmp_path))}; printf '%s\\n' 'it'\\''s' \"$((1 + 2))\" > out; echo done\n"
    script += "true # padding\n" * (size // 15) + f"exit {code}\n"
    line = packed(script)
    assert shlex.split(line)[:2] == ["sh", "-c"]  # one program, so that sudo runs all of it
    assert (len(script) > PACK_OVER) == shlex.split(line)[2].startswith("echo ")
    done = subprocess.run(["sh", "-c", line], capture_output=True, text=True)
    if len(script) > PACK_OVER:
        assert done.returncode == 0  # the pipeline's: the script's own comes with its output
        assert unpacked_output(done.stdout) == ("done\n", code)
        assert len(line) < len(script) / 3  # the bytes on the wire shrink
    else:
        assert (done.returncode, done.stdout) == (code, "done\n")
    assert (tmp_path / "out").read_text() == "it's\n3\n"


def test_output_cut_short_keeps_what_arrived_without_an_exit_status():
    import subprocess

    from foobar_ops.core.engine.wire import packed, unpacked_output

    script = "".join(f"echo line {i}\n" for i in range(400))
    wire = subprocess.run(["sh", "-c", packed(script)], capture_output=True, text=True).stdout.strip()
    assert unpacked_output(wire) == ("".join(f"line {i}\n" for i in range(400)), 0)
    full = "".join(f"line {i}\n" for i in range(400))
    for cut in (1, 2, 3, 5, 11):  # only the gzip trailer lost, whatever the length left
        assert unpacked_output(wire[:-cut]) == (full, 0)
    text, code = unpacked_output(wire[: len(wire) // 2])  # half of it: what arrived, no exit status
    assert code is None and text.startswith("line 0\nline 1\n") and full.startswith(text)
    assert unpacked_output("") == ("", None) and unpacked_output("not base64 ~~") == ("", None)


def test_a_packed_scripts_failure_is_its_outcome_and_masking_happens_once_decoded(monkeypatch):
    from foobar_ops.core.engine.wire import packed
    from tests.unit.fakes import packed_output

    seen = {}

    class Wire:
        """Returns what the host sends for a packed script; says whether the caller asked to mask."""

        def __init__(self, out):
            self.out = out

        def run(self, command, sudo=False, mask=True, timeout=None):
            seen["mask"] = mask
            return packed_output(self.out)

    secret = Secret("env:FOOBAR_TEST_PACKED")
    monkeypatch.setenv("FOOBAR_TEST_PACKED", "s3cr3t-Value")
    secret.reveal()
    long = "true\n" * 400
    applier = HostApply(
        HOST, [], Wire(FakeOutcome("it printed s3cr3t-Value\n", "", 2, "exit code 2")), False, lambda r: None
    )
    out = applier._script(long)
    assert seen["mask"] is False  # masked by the engine once readable, not on the compressed text
    assert (out.ok, out.exit_code, out.error) == (False, 2, "exit code 2")
    assert out.stdout == f"it printed {MASK}\n"
    cut = HostApply(HOST, [], Wire(FakeOutcome("partial", "", None, "timed out after 5 s")), False, lambda r: None)
    out = cut._script(long)
    assert (out.ok, out.error, out.stdout) == (False, "timed out after 5 s", "partial")
    assert packed(long).endswith("base64 -w 0'")


# --- every script survives a cut connection; outcomes read are acknowledged -----------------


def test_every_script_ignores_hangup_and_broken_pipe_first():
    cfg = s.file.managed(CFG, NEW)
    svc = s.service.running("haproxy", watch=[cfg])
    _, _, remote = run([cfg, svc], {cfg: a_file(OLD), svc: unit()})
    assert len(remote.scripts) == 3  # facts, apply, react
    assert all(script.startswith("trap '' HUP PIPE\n") for script in remote.scripts)


def test_a_change_runs_in_a_section_that_keeps_its_outcome_under_a_token_of_its_own():
    first, second = s.pkg.installed("haproxy"), s.pkg.installed("curl")
    _, _, remote = run([first, second], {first: packages(), second: packages()})
    tokens = [parse(script).token for script in remote.scripts]
    assert tokens[0] is None and all(re.fullmatch(r"[0-9a-f]{16}", t) for t in tokens[1:])
    assert len(set(tokens[1:])) == 2  # one token per change


def test_an_outcome_read_is_removed_from_the_host_by_the_next_script():
    first, second = s.pkg.installed("haproxy"), s.pkg.installed("curl")
    _, _, remote = run([first, second], {first: packages(), second: packages()})
    facts, one, two = (parse(script) for script in remote.scripts)
    assert facts.acks == [] and one.acks == []
    assert two.acks == [one.token]  # read by the engine: the host may forget it
    assert remote.scripts[2].startswith(f"trap '' HUP PIPE\nrm -f /var/lib/foobar-ops/outcomes/apply.{one.token}.*\n")
    assert one.token not in remote.kept


# --- the connection cut while a change runs --------------------------------------------------


def cut_world(**fake):
    """A watched config, its service, and an independent package, on a fake whose connection can be
    cut: the config change is the second call (the first gathers the facts)."""
    cfg = s.file.managed(CFG, NEW)
    svc = s.service.running("haproxy", watch=[cfg])
    pkg = s.pkg.installed("curl")
    remote = FakeRemote({cfg: a_file(OLD), svc: unit(), pkg: packages()}, **fake)
    emitted = []
    applier = HostApply(HOST, [cfg, svc, pkg], remote, False, emitted.append)
    return SimpleNamespace(cfg=cfg, svc=svc, pkg=pkg, remote=remote, applier=applier, emitted=emitted)


def test_a_change_cut_off_is_read_back_when_the_host_answers_again_and_the_run_goes_on():
    w = cut_world(cut_calls={2})
    results = w.applier.execute()
    assert statuses(results) == {w.cfg.id: Status.CHANGED, w.svc.id: Status.CHANGED, w.pkg.id: Status.CHANGED}
    assert w.applier.lost is None and w.remote.closed == 1  # closed once, then connected again
    token = parse(w.remote.scripts[1]).token
    assert w.remote.read_back == [token]  # the outcome of that very change was read back
    # the change ran once: it was not sent again
    assert [b for _, b in w.remote.log if CFG in b] == [w.remote.bodies("apply")[0]]
    # after reading it back, the later states' facts were gathered afresh (with the owed reloads)
    assert w.remote.tags(w.remote.scripts[3]) == ["f0", "f1", "f2", "owed"]
    # the watching service still reloaded, and that script acknowledged the outcome read back
    assert w.remote.bodies("react") == [
        f"set -e; (\nsystemctl reload haproxy.service\n)\nrm -f {owed_marker(w.svc.id)}"
    ]
    assert parse(w.remote.scripts[4]).acks == [token]
    assert by_id(results)[w.svc.id].changes["watch"] == {"done": "reload", "because": [w.cfg.id]}
    assert w.remote.bodies("apply")[-1].startswith("set -e; DEBIAN_FRONTEND")  # the later state still applied
    assert w.remote.owed == [] and w.emitted == results


def test_a_change_read_back_says_so_in_its_comment():
    w = cut_world(cut_calls={2})
    results = w.applier.execute()
    assert "read back after the connection was cut" in by_id(results)[w.cfg.id].comment


def test_a_failed_change_cut_off_is_read_back_with_its_exit_code_and_output():
    w = cut_world(cut_calls={2}, apply=("E: dpkg was interrupted", 100))
    results = w.applier.execute()
    r = by_id(results)
    assert r[w.cfg.id].status is Status.FAILED
    assert r[w.cfg.id].comment == (
        "failed (exit 100): E: dpkg was interrupted\n(read back after the connection was cut: Connection reset by peer)"
    )
    assert r[w.svc.id].status is Status.NOT_RUN  # its requisite failed: no reload
    assert w.remote.bodies("react") == []
    assert r[w.pkg.id].status is Status.FAILED and r[w.pkg.id].comment.startswith("failed (exit 100)")  # it ran
    assert w.applier.lost is None


def test_a_change_cut_off_on_a_host_that_kept_no_outcome_fails_and_the_host_stays():
    cfg, pkg = s.file.managed(CFG, NEW), s.pkg.installed("curl")
    rebooted = lambda host: host.kept.clear()  # the host came back without its outcomes
    remote = FakeRemote({cfg: a_file(OLD), pkg: CURL}, cut_calls={2}, after_cut=rebooted)
    applier = HostApply(HOST, [cfg, pkg], remote, False, lambda r: None)
    results = by_id(applier.execute())
    assert results[cfg.id].status is Status.FAILED
    assert results[cfg.id].comment == (
        "failed (exit -1): the connection was cut mid-change and it ended without an outcome (interrupted, e.g. "
        "by a reboot): check the host (Connection reset by peer)"
    )
    assert applier.lost is None and results[pkg.id].status is Status.OK
    assert all(parse(script).acks == [] for script in remote.scripts)  # nothing read: nothing to acknowledge


def test_a_change_cut_off_that_outlasts_the_wait_is_still_running_and_nothing_more_is_done_there():
    cfg, svc, pkg = s.file.managed(CFG, NEW), s.service.running("haproxy"), s.pkg.installed("curl")
    going_on = lambda host: host.running.update(host.started)  # past the read-back's wait
    remote = FakeRemote({cfg: a_file(OLD), svc: unit(), pkg: packages()}, cut_calls={2}, after_cut=going_on)
    applier = HostApply(HOST, [cfg, svc, pkg], remote, False, lambda r: None)
    results = by_id(applier.execute())
    assert results[cfg.id].status is Status.FAILED
    assert results[cfg.id].comment == (
        "failed (exit -1): the connection was cut mid-change, and the change is still running on the host after "
        "600 s more (pid 4242): its outcome is unknown here; the next run waits for it to end before changing "
        "this host (Connection reset by peer)"
    )
    busy = "not run: a change cut off earlier in this run is still running on the host (pid 4242)"
    for later in (svc, pkg):  # independent of it or not: nothing runs there beside that change
        assert (results[later.id].status, results[later.id].comment) == (Status.NOT_RUN, busy)
    assert len(remote.scripts) == 3 and remote.log == [(HOST.name, remote.bodies("apply")[0])]
    assert applier.lost is None and applier.busy is not None


def test_a_change_cut_off_on_a_host_that_does_not_answer_again_loses_the_host():
    w = cut_world(cut_calls={2}, breaks_at=3)
    results = w.applier.execute()
    lost = "Connection reset by peer; the change's outcome could not be read back (it is kept on the host)"
    assert [r.status for r in results] == [Status.FAILED, Status.NOT_RUN, Status.NOT_RUN]
    assert results[0].comment == f"the host stopped answering: {lost}"
    assert isinstance(w.applier.lost, ConnectionFailed) and w.applier.lost.reason == lost
    assert w.remote.calls == 3 and len(w.remote.kept) == 1  # the host kept the outcome
    assert w.remote.owed == [owed_marker(w.svc.id).rsplit("/", 1)[1]]  # and the reload is owed


def test_a_reload_owed_by_a_run_cut_off_is_done_by_the_next_run():
    w = cut_world(cut_calls={2}, breaks_at=3)
    w.applier.execute()
    w.remote.breaks_at, w.remote.cut_calls, w.remote.calls = None, set(), 0  # reachable again
    w.remote.answers[w.cfg.fact().command()] = (w.cfg.fact(), a_file(NEW))  # the change did land
    results = by_id(HostApply(HOST, [w.cfg, w.svc, w.pkg], w.remote, False, lambda r: None).execute())
    assert results[w.cfg.id].status is Status.OK
    v = results[w.svc.id]
    assert v.status is Status.CHANGED
    assert v.comment.endswith("reloaded: owed by a change of an earlier run that ended before it")
    assert v.changes["watch"] == {"done": "reload", "because": ["owed"]}
    assert w.remote.owed == []


# --- owed reloads ----------------------------------------------------------------------------


def marker_name(state):
    return owed_marker(state.id).rsplit("/", 1)[1]


def test_owed_marker_is_a_safe_name_per_state():
    a, b = owed_marker("service.running:haproxy"), owed_marker("service.running:nginx")
    assert a.startswith("/var/lib/foobar-ops/owed/") and a != b
    assert re.fullmatch(r"[0-9a-f]{20}", a.rsplit("/", 1)[1])
    assert owed_marker("cmd.run:rm -rf / ; echo $(x)").rsplit("/", 1)[1].isalnum()


def test_a_change_to_a_watched_state_marks_each_watchers_reload_owed():
    cfg = s.file.managed(CFG, NEW)
    svc = s.service.running("haproxy", watch=[cfg])
    log = s.service.running("rsyslog", watch=[cfg])
    other = s.service.running("nginx")
    results, _, remote = run([cfg, svc, other, log], {cfg: a_file(OLD), svc: unit(), other: unit(), log: unit()})
    body = remote.bodies("apply")[0]
    assert body.endswith(f"\nmkdir -p /var/lib/foobar-ops/owed; touch {owed_marker(svc.id)} {owed_marker(log.id)}")
    # both reloaded, each paying its own; nothing is owed once they have
    assert remote.bodies("react") == [
        f"set -e; (\nsystemctl reload haproxy.service\n)\nrm -f {owed_marker(svc.id)}",
        f"set -e; (\nsystemctl reload rsyslog.service\n)\nrm -f {owed_marker(log.id)}",
    ]
    assert remote.owed == [] and statuses(results)[other.id] is Status.OK


def test_a_change_nobody_watches_owes_nothing():
    cfg, pkg = s.file.managed(CFG, NEW), s.pkg.installed("haproxy")
    _, _, remote = run([cfg, pkg], {cfg: a_file(OLD), pkg: packages()})
    assert all("/var/lib/foobar-ops/owed" not in body for body in remote.bodies("apply"))
    assert all("owed" not in remote.tags(script) for script in remote.scripts)  # and nobody asks


def test_an_owed_reload_is_done_even_when_nothing_it_watches_changed():
    cfg = s.file.managed(CFG, NEW)
    svc = s.service.running("haproxy", watch=[cfg])
    remote = FakeRemote({cfg: a_file(NEW), svc: unit()})
    remote.owed = [marker_name(svc)]
    results = by_id(HostApply(HOST, [cfg, svc], remote, False, lambda r: None).execute())
    v = results[svc.id]
    assert v.status is Status.CHANGED
    assert v.comment.endswith("reloaded: owed by a change of an earlier run that ended before it")
    assert v.changes == {"watch": {"done": "reload", "because": ["owed"]}}
    assert remote.bodies("react") == [f"set -e; (\nsystemctl reload haproxy.service\n)\nrm -f {owed_marker(svc.id)}"]
    assert remote.owed == [] and results[cfg.id].status is Status.OK


def test_an_owed_reload_in_test_mode_is_pending_and_not_done():
    cfg = s.file.managed(CFG, NEW)
    svc = s.service.running("haproxy", watch=[cfg])
    remote = FakeRemote({cfg: a_file(NEW), svc: unit()})
    remote.owed = [marker_name(svc)]
    (_, v) = HostApply(HOST, [cfg, svc], remote, True, lambda r: None).execute()
    assert v.status is Status.PENDING and v.result is None
    assert v.comment.endswith("; would reload: owed by a change of an earlier run that ended before it")
    assert v.changes == {"watch": {"would": "reload", "because": ["owed"]}}
    assert remote.bodies("react") == [] and remote.round_trips == 1 and remote.owed == [marker_name(svc)]


def test_a_marker_owed_to_another_state_does_not_reload_this_one():
    cfg = s.file.managed(CFG, NEW)
    svc = s.service.running("haproxy", watch=[cfg])
    remote = FakeRemote({cfg: a_file(NEW), svc: unit()})
    remote.owed = [marker_name(s.service.running("nginx"))]
    results = by_id(HostApply(HOST, [cfg, svc], remote, False, lambda r: None).execute())
    assert results[svc.id].status is Status.OK and remote.bodies("react") == []


def test_a_failed_owed_reload_fails_and_stays_owed():
    cfg = s.file.managed(CFG, NEW)
    svc = s.service.running("haproxy", watch=[cfg])
    remote = FakeRemote({cfg: a_file(NEW), svc: unit()}, react=("Job for haproxy.service failed.", 1))
    remote.owed = [marker_name(svc)]
    results = by_id(HostApply(HOST, [cfg, svc], remote, False, lambda r: None).execute())
    assert results[svc.id].status is Status.FAILED and "reload failed (exit 1)" in results[svc.id].comment
    (body,) = remote.bodies("react")
    assert body.startswith("set -e; ") and body.index("systemctl reload") < body.index("rm -f")  # paid only after
    assert remote.owed == [marker_name(svc)]


def test_a_watcher_started_by_its_own_apply_pays_what_it_owes():
    cfg = s.file.managed(CFG, NEW)
    svc = s.service.running("haproxy", watch=[cfg])
    remote = FakeRemote({cfg: a_file(NEW), svc: unit(active="inactive")})
    remote.owed = [marker_name(svc)]
    results = by_id(HostApply(HOST, [cfg, svc], remote, False, lambda r: None).execute())
    assert results[svc.id].status is Status.CHANGED
    assert remote.bodies("apply") == [f"set -e; systemctl start haproxy.service\nrm -f {owed_marker(svc.id)}"]
    assert remote.bodies("react") == [] and remote.owed == []


# --- the scripts of a change, in a real shell ------------------------------------------------


class ShellRemote:
    """Runs the engine's scripts in a local /bin/sh (the outcome folder is a temporary one)."""

    def __init__(self, command_timeout: float = 30.0):
        self.closed = 0
        self.scripts = []
        self.command_timeout = command_timeout  # the host's, as Remote.run applies it

    def run(self, command, sudo=False, mask=True, timeout=None):
        script = unpacked(command)
        self.scripts.append(script)
        try:
            done = subprocess.run(
                ["/bin/sh", "-c", command], capture_output=True, text=True, timeout=timeout or self.command_timeout
            )
        except subprocess.TimeoutExpired as late:
            out = late.stdout.decode() if isinstance(late.stdout, bytes) else late.stdout or ""
            return FakeOutcome(out, "", None, "timed out")
        return FakeOutcome(done.stdout, done.stderr, done.returncode, None if done.returncode == 0 else "failed")

    def close(self):
        self.closed += 1


@pytest.fixture
def outcomes(tmp_path, monkeypatch):
    folder = tmp_path / "run-foobar-ops"
    monkeypatch.setattr(wire, "OUTCOMES", str(folder))
    monkeypatch.setattr(wire, "LOCK_DIR", str(tmp_path / "lock"))
    monkeypatch.setattr(wire, "CHANGES_LOCK", str(tmp_path / "lock" / "changes.lock"))
    return folder


def test_a_change_holds_the_changes_lock_while_it_runs_and_its_programs_do_not(outcomes, tmp_path):
    lock = tmp_path / "lock" / "changes.lock"
    fds, daemon = tmp_path / "fds", tmp_path / "daemon"
    body = f"sleep 0.6; ls -l /proc/self/fd > {fds}; sleep 30 >/dev/null 2>&1 & echo $! > {daemon}"
    script = "trap '' HUP PIPE\n" + apply_section("0123abcd", body)
    change = subprocess.Popen(["/bin/sh", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 5
        while not lock.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
        probe = f"exec 8>>{lock}; flock -x -n 8 && echo FREE || echo HELD"
        assert subprocess.run(["/bin/sh", "-c", probe], capture_output=True, text=True).stdout == "HELD\n"
        change.communicate(timeout=10)
        assert str(lock) not in fds.read_text()  # the change's own programs lack it
        # ended: free, though a program it started (a daemon) still runs
        assert subprocess.run(["/bin/sh", "-c", probe], capture_output=True, text=True).stdout == "FREE\n"
    finally:
        os.kill(int(daemon.read_text()), signal.SIGKILL)


def test_a_change_section_in_a_shell_prints_its_outcome_and_keeps_it(outcomes):
    script = "trap '' HUP PIPE\n" + apply_section("0123abcd", "echo out; echo err >&2; exit 3")
    done = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0
    assert sections(done.stdout) == {"apply": ("out\nerr\n", 3)}
    assert (outcomes / "apply.0123abcd.out").read_text() == "out\nerr\n"
    assert (outcomes / "apply.0123abcd.rc").read_text() == "3\n"
    names = sorted(p.name for p in outcomes.iterdir())
    assert names == ["apply.0123abcd.out", "apply.0123abcd.rc", "apply.0123abcd.started"]
    assert (outcomes / "apply.0123abcd.started").read_text().strip().isdigit()  # the pid of its shell
    assert oct(outcomes.stat().st_mode & 0o777) == "0o700"


def test_a_change_runs_to_its_end_when_the_connection_hangs_up(outcomes, tmp_path):
    done = tmp_path / "done"
    body = f"sleep 0.5; echo finished; touch {done}"
    script = "trap '' HUP PIPE\n" + apply_section("feed", body)
    proc = subprocess.Popen(["/bin/sh", "-c", script], stdout=subprocess.PIPE, start_new_session=True)
    time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGHUP)  # what sshd sends the session when the connection drops
    proc.stdout.close()  # and nobody reads its output any more
    proc.wait(timeout=10)
    assert done.exists()
    assert (outcomes / "apply.feed.rc").read_text() == "0\n"
    assert (outcomes / "apply.feed.out").read_text() == "finished\n"


def test_reading_back_in_a_shell_waits_for_the_change_to_end(outcomes):
    outcomes.mkdir()
    host = SimpleNamespace(name="web-01", user="root", ssh=SimpleNamespace(command_timeout=10.0))
    applier = HostApply(host, [], ShellRemote(), False, lambda r: None)
    (outcomes / "apply.beef.started").write_text(f"{os.getpid()}\n")  # begun, its shell alive
    (outcomes / "apply.beef.out").write_text("installed\n")
    writer = threading.Timer(1.2, lambda: (outcomes / "apply.beef.rc").write_text("0\n"))  # still running
    writer.start()
    try:
        parts = applier._read_back("beef", ConnectionFailed("web-01", "Connection reset by peer"), [])
    finally:
        writer.cancel()
    assert parts == {"apply": ("installed\n\n(read back after the connection was cut: Connection reset by peer)", 0)}
    assert applier.remote.closed == 1


def test_reading_back_in_a_shell_a_change_still_running_gives_up_after_the_command_timeout(outcomes):
    outcomes.mkdir()
    (outcomes / "apply.slow.started").write_text(f"{os.getpid()}\n")  # its shell lives, no exit code yet
    host = SimpleNamespace(name="web-01", user="root", ssh=SimpleNamespace(command_timeout=1.0))
    applier = HostApply(host, [], ShellRemote(command_timeout=1.0), False, lambda r: None)  # as Remote.run
    started = time.monotonic()
    parts = applier._read_back("slow", ConnectionFailed("web-01", "Broken pipe"), [])
    assert 1.0 <= time.monotonic() - started < 8
    assert parts is not None and parts["apply"][1] == -1
    assert f"the change is still running on the host after 1 s more (pid {os.getpid()})" in parts["apply"][0]
    assert applier.busy == f"a change cut off earlier in this run is still running on the host (pid {os.getpid()})"


def test_reading_back_in_a_shell_stops_waiting_when_the_changes_shell_is_gone(outcomes):
    outcomes.mkdir()
    gone = subprocess.run(["/bin/sh", "-c", "echo $$"], capture_output=True, text=True).stdout.strip()
    (outcomes / "apply.gone.started").write_text(f"{gone}\n")  # begun, then interrupted (e.g. a reboot)
    host = SimpleNamespace(name="web-01", user="root", ssh=SimpleNamespace(command_timeout=30.0))
    applier = HostApply(host, [], ShellRemote(), False, lambda r: None)
    started = time.monotonic()
    parts = applier._read_back("gone", ConnectionFailed("web-01", "Broken pipe"), [])
    assert time.monotonic() - started < 5  # not the command timeout
    assert parts is not None and parts["apply"][1] == -1 and "interrupted" in parts["apply"][0]


def test_reading_back_in_a_shell_a_change_that_never_began_is_none(outcomes):
    outcomes.mkdir()
    host = SimpleNamespace(name="web-01", user="root", ssh=SimpleNamespace(command_timeout=30.0))
    applier = HostApply(host, [], ShellRemote(), False, lambda r: None)
    assert applier._read_back("never", ConnectionFailed("web-01", "Broken pipe"), []) is None


def test_a_reload_script_that_exits_early_still_pays_the_reload_it_owed(tmp_path):
    from foobar_ops.stack.roles import nginx

    cfg = s.file.managed(CFG, NEW)
    svc = s.service.running("nginx", watch=[cfg], reload_with=nginx.RELOAD)
    results, _, remote = run([cfg, svc], {cfg: a_file(OLD), svc: unit()})
    assert by_id(results)[svc.id].status is Status.CHANGED  # the engine takes the reload as done
    (body,) = remote.bodies("react")
    owed = tmp_path / "owed"
    owed.mkdir()
    marker = owed / owed_marker(svc.id).rsplit("/", 1)[1]
    marker.touch()  # what the change left owed
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text("#!/bin/sh\nexit 0\n")
    calls = tmp_path / "pgrep-calls"  # nginx's new workers appear after the reload
    (bin_dir / "pgrep").write_text(f"#!/bin/sh\nif [ -e {calls} ]; then echo 101; else touch {calls}; echo 100; fi\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    pid = tmp_path / "nginx.pid"
    pid.write_text("42\n")  # nginx's master process
    script = section("react", body.replace(engine_host.OWED, str(owed)).replace("/run/nginx.pid", str(pid)))
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    done = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, env=env, timeout=30)
    assert sections(done.stdout)["react"][1] == 0
    assert not marker.exists()


def test_a_change_cut_off_before_it_began_is_made_once_on_the_new_connection():
    class CutBeforeItBegins(FakeRemote):
        """The second call never reaches the host: the connection is cut first."""

        def run(self, command, sudo=False, mask=True, timeout=None):
            if self.calls == 1:
                self.calls += 1
                raise ConnectionFailed(self.host, "Connection reset by peer")
            return super().run(command, sudo, mask)

    cfg, pkg = s.file.managed(CFG, NEW), s.pkg.installed("curl")
    remote = CutBeforeItBegins({cfg: a_file(OLD), pkg: CURL})
    applier = HostApply(HOST, [cfg, pkg], remote, False, lambda r: None)
    results = by_id(applier.execute())
    assert results[cfg.id].status is Status.CHANGED
    assert "made again after the connection was cut before it began" in results[cfg.id].comment
    assert [b for _, b in remote.log if CFG in b] == [remote.bodies("apply")[0]]  # made exactly once
    assert applier.lost is None and results[pkg.id].status is Status.OK


def test_a_fact_error_seen_at_another_line_of_another_runs_script_is_no_drift():
    """A saved plan made while MariaDB was not installed yet sees `sh: 23: mysql: not found`; the
    apply's script puts the same fact at another line: the same thing seen, not a drift."""
    from foobar_ops.core.errors import FactError

    st = s.cmd.run("true", unless="mysql -e 'SELECT 1'", id="probe")
    seen_then = engine_host.digest(st, FactError("MariaDB: sh: 23: mysql: not found"))
    seen_now = engine_host.digest(st, FactError("MariaDB: sh: 41: mysql: not found"))
    other = engine_host.digest(st, FactError("MariaDB: sh: 41: mysqld: not found"))
    assert seen_then == seen_now != other
