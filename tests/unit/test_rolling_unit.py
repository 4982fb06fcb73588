"""The rolling guard without hosts: a fake load balancer records what was asked of it (drains are
refused for the last server UP, as HAProxy.drain refuses them, and carry the run's mark). Also the
put-back of servers a dead run left drained (the rolling phase's prepare)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from foobar_ops import states as s
from foobar_ops.core import ssh as ssh_mod
from foobar_ops.core.engine.phases import apply
from foobar_ops.core.errors import ConnectionFailed, FoobarOpsError
from foobar_ops.core.interrupts import Terminated
from foobar_ops.core.inventory import load_inventory
from foobar_ops.core.journal import Journal
from foobar_ops.core.result import Status
from foobar_ops.stack import balancers, rolling
from foobar_ops.stack import lb as haproxy
from foobar_ops.stack.lb import LastServerUp, LBError
from tests.unit.fakes import FakeRemote, guards

INV = SimpleNamespace(
    hosts={
        "lb-01": SimpleNamespace(name="lb-01", roles=("haproxy",)),
        "web-01": SimpleNamespace(name="web-01", roles=("app",)),
        "web-02": SimpleNamespace(name="web-02", roles=("app",)),
    }
)
NO_LB = SimpleNamespace(hosts={"web-01": SimpleNamespace(roles=("app",)), "web-02": SimpleNamespace(roles=("app",))})
WEB1, WEB2 = SimpleNamespace(name="web-01"), SimpleNamespace(name="web-02")


class FakeLB:
    """Stands for HAProxy: servers' statuses, drain marks (server -> mark), and every call made.
    A drain (or maint) of the last server UP is refused as HAProxy.drain refuses it, in one step."""

    status = {}
    calls = []
    fail = {}
    unreachable = False
    marked = {}  # server -> the mark a run's drain left on the load balancer
    drains = []  # (server, mark) of every drain asked for
    on_refusal = None  # called when a drain is refused (e.g. another server rises meanwhile)

    def __init__(self, inventory, host=None, record=True, remote=None):
        if FakeLB.unreachable:
            raise haproxy.LBError("lb-01: `show stat` failed: connection refused")
        self.host = SimpleNamespace(name=host or "lb-01")
        self.emit = None

    def set_state(self, backend, server, state, mark=None):
        before = FakeLB.status.get(server, "absent")
        if state == "drain":
            self.drain(server, backend, mark=mark)
        elif state == "ready":
            self.ready(server, backend)
        else:
            self._act(state, server)
        return before

    def wait_sessions_end(self, server, backend="bk_web", timeout=60, poll=0.5):
        return 0.1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def servers(self, backend="bk_web"):
        return {n: {"status": s, "scur": 0} for n, s in FakeLB.status.items()}

    def marks(self, backend="bk_web", said=None):
        FakeLB.calls.append(("marks", None))
        if "marks" in FakeLB.fail:
            raise FakeLB.fail["marks"]
        return {server: dict(mark) for server, mark in FakeLB.marked.items()}

    def _act(self, action, server):
        FakeLB.calls.append((action, server))
        fail = FakeLB.fail.get(action)
        if isinstance(fail, list):  # one error per call, then none
            fail = fail.pop(0) if fail else None
        if fail is not None:
            raise fail

    def drain(self, server, backend="bk_web", timeout=30, poll=0.5, mark=None):
        FakeLB.drains.append((server, mark))
        if not [n for n, r in self.servers().items() if n != server and haproxy.is_up(r)]:
            FakeLB.calls.append(("refused", server))
            if FakeLB.on_refusal:
                FakeLB.on_refusal()
            raise LastServerUp(f"refusing to drain bk_web/{server}: it is the last server that is UP")
        FakeLB.status[server] = "DRAIN"
        if mark:
            FakeLB.marked[server] = {"backend": backend, "server": server, "state": "drain", "run": mark}
        self._act("drain", server)
        return 0.1

    def ready(self, server, backend="bk_web"):
        self._act("ready", server)
        FakeLB.status[server] = "UP"
        FakeLB.marked.pop(server, None)

    def wait_up(self, server, backend="bk_web", timeout=30):
        self._act("wait_up", server)
        return 0.2

    def close(self):
        pass


@pytest.fixture(autouse=True)
def fake(monkeypatch):
    monkeypatch.setattr(rolling, "HAProxy", FakeLB)
    monkeypatch.setattr(balancers, "HAProxy", FakeLB)
    monkeypatch.setattr(rolling, "ANOTHER_UP_WAIT", 0.2)  # the wait for another server to rise
    FakeLB.status, FakeLB.calls, FakeLB.fail = {"web-01": "UP", "web-02": "UP"}, [], {}
    FakeLB.unreachable, FakeLB.marked, FakeLB.drains, FakeLB.on_refusal = False, {}, [], None
    return FakeLB


def a_run(inventory=INV, run_id="20260101-090000-run001", test=False):
    """What the rolling guard and prepare are given of the run: its inventory, id, whether it is a
    dry-run, and its connection to a host (the fake load balancer needs none)."""
    return SimpleNamespace(inventory=inventory, id=run_id, test=test, remote=lambda host: None, read=lambda h, k: None)


def run(host, body=lambda: None, inventory=INV):
    emitted = []
    with rolling.drained(a_run(inventory), host, emitted.append):
        body()
    return emitted


def steps(emitted):
    return [(r.host, r.id.rsplit(":", 1)[-1], r.status) for r in emitted]


def test_a_serving_host_is_drained_changed_and_put_back():
    marks = []
    emitted = run(WEB1, lambda: (FakeLB.calls.append(("change", "web-01")), marks.append(dict(FakeLB.marked))))
    assert FakeLB.calls == [("drain", "web-01"), ("change", "web-01"), ("ready", "web-01"), ("wait_up", "web-01")]
    assert FakeLB.drains == [("web-01", "20260101-090000-run001")]  # marked as the run's while out
    assert list(marks[0]) == ["web-01"] and FakeLB.marked == {}  # and the mark goes with the ready
    assert steps(emitted) == [("lb-01", "drain", Status.CHANGED), ("lb-01", "ready", Status.CHANGED)]
    assert [r.changes for r in emitted] == [{"old": "UP", "new": "drain"}, {"old": "DRAIN", "new": "ready"}]
    assert all(r.state == "haproxy.server" and r.name == "bk_web/web-01" for r in emitted)


def test_a_failed_change_still_puts_the_server_back_and_its_error_wins():
    def broken():
        raise FoobarOpsError("health check failed")

    emitted = []
    with pytest.raises(FoobarOpsError, match="health check failed"):
        with rolling.drained(a_run(), WEB1, emitted.append):
            broken()
    assert FakeLB.status["web-01"] == "UP" and ("ready", "web-01") in FakeLB.calls
    assert steps(emitted) == [("lb-01", "drain", Status.CHANGED), ("lb-01", "ready", Status.CHANGED)]


def test_a_server_whose_change_still_runs_after_a_cut_stays_drained_and_marked_for_the_next_run():
    from foobar_ops.core.errors import CutOffChangeRunning

    def still_running():
        raise CutOffChangeRunning("web-01", "a change cut off earlier in this run is still running on the host (pid 7)")

    emitted = []
    with pytest.raises(CutOffChangeRunning):
        with rolling.drained(a_run(run_id="20260101-090000-abc123"), WEB1, emitted.append):
            still_running()
    assert FakeLB.status["web-01"] == "DRAIN" and ("ready", "web-01") not in FakeLB.calls  # not put back
    assert FakeLB.marked["web-01"]["run"] == "20260101-090000-abc123"  # the next run puts it back
    assert steps(emitted) == [("lb-01", "drain", Status.CHANGED), ("lb-01", "ready", Status.FAILED)]
    assert emitted[1].comment == (
        "left out of rotation, marked as this run's: a change cut off earlier in this run is still running on "
        "the host (pid 7); the next run puts it back once it has ended"
    )


def test_a_server_that_does_not_come_back_up_after_its_change_fails_the_ready_step():
    FakeLB.fail["wait_up"] = LBError("bk_web/web-01 is DOWN, not UP, 30 s after it came back")
    emitted = []
    with pytest.raises(LBError, match="not UP"):
        with rolling.drained(a_run(), WEB1, emitted.append):
            pass
    assert steps(emitted) == [("lb-01", "drain", Status.CHANGED), ("lb-01", "ready", Status.FAILED)]
    assert "not UP" in emitted[1].comment


def test_an_interrupt_during_the_change_stays_an_interrupt_and_the_server_goes_back():
    FakeLB.fail["wait_up"] = LBError("not UP after 30 s")

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        with rolling.drained(a_run(), WEB1, lambda r: None):
            interrupted()
    assert FakeLB.status["web-01"] == "UP"


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, Terminated])
def test_an_interrupt_while_the_drain_is_recorded_still_puts_the_server_back(interrupt):
    """The signal lands after the drain, while its result is written (before the change starts)."""

    def emit(result):
        if result.id.endswith(":drain"):
            raise interrupt

    with pytest.raises(interrupt):
        with rolling.drained(a_run(), WEB1, emit):
            pytest.fail("the change must not run after an interrupt")
    assert ("ready", "web-01") in FakeLB.calls
    assert FakeLB.status["web-01"] == "UP" and FakeLB.marked == {}


def test_a_drain_that_fails_puts_the_server_back_and_says_so():
    FakeLB.fail["drain"] = LBError("still has 3 sessions after 30 s")
    emitted = []
    with pytest.raises(LBError):
        with rolling.drained(a_run(), WEB1, emitted.append):
            pytest.fail("the change must not run when the drain failed")
    assert FakeLB.status["web-01"] == "UP"
    assert emitted[0].status is Status.FAILED and emitted[0].result is False
    assert "drain failed, server put back: still has 3 sessions" in emitted[0].comment


def test_a_server_out_of_rotation_is_changed_as_it_is_and_left_alone():
    FakeLB.status["web-01"] = "MAINT"
    emitted = run(WEB1)
    assert FakeLB.calls == [] and FakeLB.status["web-01"] == "MAINT"
    assert steps(emitted) == [("lb-01", "as-is", Status.OK)] and "MAINT" in emitted[0].comment


def test_the_only_server_up_is_changed_without_draining():
    FakeLB.status["web-02"] = "DOWN"
    changed = []
    started = time.monotonic()
    emitted = run(WEB1, lambda: changed.append(True))
    # the load balancer refused to drain it (checked there, in one step), and kept refusing for the wait
    assert set(FakeLB.calls) == {("refused", "web-01")} and len(FakeLB.calls) >= 1
    assert time.monotonic() - started >= rolling.ANOTHER_UP_WAIT
    assert FakeLB.status == {"web-01": "UP", "web-02": "DOWN"} and FakeLB.marked == {}
    assert changed == [True]
    assert steps(emitted) == [("lb-01", "as-is", Status.OK)]
    assert emitted[0].comment == "the only server UP: changed without draining"


def test_without_a_load_balancer_the_change_just_runs():
    FakeLB.unreachable = True  # any use of the load balancer would raise
    changed = []
    assert run(WEB1, lambda: changed.append(True), inventory=NO_LB) == []
    assert changed == [True]


def test_hosts_out_of_rotation_go_first():
    FakeLB.status["web-02"] = "DOWN"
    assert [h.name for h in rolling.out_of_rotation_first([WEB1, WEB2], INV)] == ["web-02", "web-01"]
    FakeLB.status["web-02"] = "UP"
    assert [h.name for h in rolling.out_of_rotation_first([WEB1, WEB2], INV)] == ["web-01", "web-02"]


@pytest.mark.parametrize("inventory, unreachable", [(NO_LB, False), (INV, True)], ids=["no-lb", "lb-unreachable"])
def test_without_a_load_balancer_to_ask_hosts_keep_the_inventory_order(inventory, unreachable):
    FakeLB.status["web-01"] = "DOWN"
    FakeLB.unreachable = unreachable
    assert [h.name for h in rolling.out_of_rotation_first([WEB2, WEB1], inventory)] == ["web-02", "web-01"]


def test_a_rolling_phase_is_serial_drained_and_out_of_rotation_first():
    states_for = lambda host, inventory: []
    phase = rolling.rolling_phase("web", states_for)
    assert (phase.name, phase.states_for, phase.serial) == ("web", states_for, True)
    assert phase.guard is rolling.drained and phase.order is rolling.out_of_rotation_first
    assert phase.prepare is rolling.put_back_left_drained


def test_a_rolling_phase_also_locks_the_load_balancer():
    phase = rolling.rolling_phase("web", lambda host, inventory: [])
    assert phase.also_locks(INV) == [INV.hosts["lb-01"]]
    assert phase.also_locks(NO_LB) == []  # nothing more to lock


# --- a rolling phase through apply() ---------------------------------------------------------

STACK = """
hosts:
  lb-01: {address: 10.77.0.10, roles: [haproxy]}
  web-01: {address: 10.77.0.11, roles: [app]}
  web-02: {address: 10.77.0.12, roles: [app]}
  web-03: {address: 10.77.0.13, roles: [app]}
"""
DEPLOY = s.cmd.run("deploy app", unless="app-is-current")
RESTART = s.cmd.run("systemctl restart app", onchanges=[DEPLOY])


@pytest.fixture
def stack(tmp_path, monkeypatch, run_locks):
    path = tmp_path / "inv.yml"
    path.write_text(STACK)
    FakeLB.status["web-03"] = "UP"
    log: list[tuple[str, str]] = []
    remotes = {
        name: FakeRemote({DEPLOY: guards(unless=False), RESTART: ""}, host=name, log=log)
        for name in ("web-01", "web-02", "web-03")
    }
    remotes["lb-01"] = FakeRemote({}, host="lb-01", log=log)  # locked by the run; HAProxy speaks to it
    monkeypatch.setattr(ssh_mod, "Remote", lambda host, inventory: remotes[host.name])
    return SimpleNamespace(
        inv=load_inventory(path), remotes=remotes, log=log, journal=Journal(tmp_path / "j.sqlite"), locks=run_locks
    )


def deploy(stack, test=False):
    phase = rolling.rolling_phase("web", lambda host, inventory: [DEPLOY, RESTART])
    return apply(stack.inv, phase, hosts="web-*", journal=stack.journal, test=test)


def test_a_rolling_deploy_changes_one_host_at_a_time_out_of_rotation_first(stack):
    FakeLB.status["web-03"] = "DOWN"
    report = deploy(stack)
    assert report.ok
    assert [h for h, _ in stack.log] == ["web-03", "web-03", "web-01", "web-01", "web-02", "web-02"]
    assert FakeLB.calls == [
        ("marks", None),  # first: anything a dead run left drained?
        ("drain", "web-01"),
        ("ready", "web-01"),
        ("wait_up", "web-01"),
        ("drain", "web-02"),
        ("ready", "web-02"),
        ("wait_up", "web-02"),
    ]
    lb = [(r.id.rsplit(":", 1)[-1], r.name, r.status) for r in report.results if r.host == "lb-01"]
    assert lb == [
        ("as-is", "bk_web/web-03", Status.OK),
        ("drain", "bk_web/web-01", Status.CHANGED),
        ("ready", "bk_web/web-01", Status.CHANGED),
        ("drain", "bk_web/web-02", Status.CHANGED),
        ("ready", "bk_web/web-02", Status.CHANGED),
    ]
    assert [r.status for r in report.results if r.host != "lb-01"] == [Status.CHANGED] * 6
    assert report.hosts == ["web-01", "web-02", "web-03", "lb-01"]
    assert FakeLB.drains == [("web-01", report.run_id), ("web-02", report.run_id)]  # marked with the run
    assert FakeLB.marked == {}
    assert sorted(stack.locks.hosts) == ["lb-01", "web-01", "web-02", "web-03"]  # the load balancer too
    # one command on the load balancer: its lock, with the drain marks read for the put-back
    assert stack.remotes["lb-01"].calls == 1 and stack.remotes["lb-01"].reads_asked == [haproxy.marks_command()]


def test_a_drain_that_fails_leaves_the_host_unchanged_and_stops_the_rolling_deploy(stack):
    FakeLB.fail["drain"] = LBError("bk_web/web-01 still has 3 sessions after 30 s of draining")
    report = deploy(stack)
    assert stack.log == []  # no host was changed
    assert FakeLB.status["web-01"] == "UP"  # and the server was put back
    web1 = [r for r in report.results if r.host == "web-01"]
    assert [r.status for r in web1] == [Status.NOT_RUN, Status.NOT_RUN]
    assert all(r.comment == "not run: bk_web/web-01 still has 3 sessions after 30 s of draining" for r in web1)
    for host in ("web-02", "web-03"):
        rest = [r for r in report.results if r.host == host]
        assert [r.status for r in rest] == [Status.NOT_RUN, Status.NOT_RUN]
        assert all("web-01 failed earlier" in r.comment for r in rest)
    assert [r.status for r in report.results if r.host == "lb-01"] == [Status.FAILED]
    assert report.failed_hosts == ["web-01", "web-02", "web-03", "lb-01"]


def test_a_drain_refused_for_the_last_server_up_is_retried_while_another_rises(monkeypatch):
    monkeypatch.setattr(rolling, "ANOTHER_UP_WAIT", 3.0)
    FakeLB.status["web-02"] = "DOWN"
    FakeLB.on_refusal = lambda: FakeLB.status.update({"web-02": "UP"})  # just reloaded: rising
    emitted = run(WEB1)
    assert FakeLB.calls == [("refused", "web-01"), ("drain", "web-01"), ("ready", "web-01"), ("wait_up", "web-01")]
    assert steps(emitted) == [("lb-01", "drain", Status.CHANGED), ("lb-01", "ready", Status.CHANGED)]


def test_a_drain_refused_for_another_reason_is_not_retried_and_the_server_goes_back():
    FakeLB.fail["drain"] = LBError("HAProxy refused `set server bk_web/web-01 state drain`: No such server.")
    with pytest.raises(LBError, match="No such server"):
        run(WEB1, lambda: pytest.fail("the change must not run when the drain failed"))
    assert [c for c in FakeLB.calls if c[0] == "drain"] == [("drain", "web-01")]
    assert FakeLB.calls[-1] == ("ready", "web-01") and FakeLB.marked == {}


@pytest.mark.parametrize("broken", ["drain", "every"])
def test_an_emit_that_raises_never_keeps_a_server_out(broken):
    def emit(result):
        if broken == "every" or result.id.endswith(":drain"):
            raise RuntimeError("journal gone")

    changed = []
    with rolling.drained(a_run(), WEB1, emit):
        changed.append(True)
    assert changed == [True]
    assert FakeLB.calls == [("drain", "web-01"), ("ready", "web-01"), ("wait_up", "web-01")]
    assert FakeLB.status["web-01"] == "UP" and FakeLB.marked == {}


def test_an_emit_that_raises_when_the_drain_failed_still_puts_the_server_back():
    FakeLB.fail["drain"] = LBError("still has 3 sessions after 30 s")

    def emit(result):
        raise RuntimeError("journal gone")

    with pytest.raises(LBError, match="still has 3 sessions"):
        with rolling.drained(a_run(), WEB1, emit):
            pytest.fail("the change must not run when the drain failed")
    assert FakeLB.calls[-1] == ("ready", "web-01") and FakeLB.status["web-01"] == "UP"


# --- servers a dead run left drained ---------------------------------------------------------


def left_by(run, at="2026-01-01T09:00:00Z"):
    return {"backend": "bk_web", "state": "drain", "run": run, "at": at}


def put_back(test=False, inventory=INV, this_run="20260101-090000-now001"):
    emitted = []
    rolling.put_back_left_drained(a_run(inventory, this_run, test), emitted.append)
    return emitted


def test_a_server_a_dead_run_left_drained_is_put_back():
    FakeLB.status["web-02"] = "DRAIN"
    FakeLB.marked = {"web-02": dict(left_by("20260101-090000-dead01"), server="web-02")}
    (r,) = put_back()
    assert FakeLB.calls == [("marks", None), ("ready", "web-02"), ("wait_up", "web-02")]
    assert FakeLB.status["web-02"] == "UP" and FakeLB.marked == {}
    assert (r.host, r.id, r.status) == ("lb-01", "haproxy.server:bk_web/web-02:ready", Status.CHANGED)
    assert r.comment == (
        "put back: left drained by run 20260101-090000-dead01 at 2026-01-01T09:00:00Z, which ended without; "
        "UP after 0.2 s"
    )
    assert r.changes == {"old": "DRAIN", "new": "ready"}


def test_a_drain_of_this_run_or_of_an_operator_is_left_alone():
    FakeLB.status.update({"web-01": "DRAIN", "web-02": "DRAIN"})  # web-02: an operator's (no mark)
    FakeLB.marked = {"web-01": left_by("this-run")}
    assert put_back(this_run="this-run") == []
    assert FakeLB.calls == [("marks", None)] and FakeLB.status == {"web-01": "DRAIN", "web-02": "DRAIN"}


def test_in_test_mode_a_server_left_drained_would_be_put_back_and_is_not():
    FakeLB.status["web-02"] = "DRAIN"
    FakeLB.marked = {"web-02": left_by("20260101-090000-dead01")}
    (r,) = put_back(test=True)
    assert r.status is Status.PENDING and r.result is None
    assert r.comment == "would put back: left drained by run 20260101-090000-dead01 at 2026-01-01T09:00:00Z"
    assert FakeLB.calls == [("marks", None)] and FakeLB.status["web-02"] == "DRAIN"


def test_a_server_that_cannot_be_put_back_is_a_failed_result_and_the_others_still_are():
    FakeLB.status.update({"web-01": "DRAIN", "web-02": "DRAIN"})
    FakeLB.marked = {"web-01": left_by("dead-1"), "web-02": left_by("dead-2")}
    FakeLB.fail["wait_up"] = LBError("bk_web/web-01 is DOWN, not UP, 30 s after it came back")
    first, second = put_back()
    assert first.status is Status.FAILED and first.name == "bk_web/web-01"
    assert first.comment == (
        "could not put back (left drained by run dead-1 at 2026-01-01T09:00:00Z): "
        "bk_web/web-01 is DOWN, not UP, 30 s after it came back"
    )
    assert ("ready", "web-02") in FakeLB.calls and second.name == "bk_web/web-02"


def test_a_load_balancer_that_cannot_say_what_was_left_drained_stops_the_run():
    FakeLB.fail["marks"] = LBError("lb-01: exit code 1: sudo: a password is required")
    with pytest.raises(
        LBError, match="cannot check load balancer lb-01 for servers left drained by a dead run: lb-01: exit code 1"
    ):
        put_back()


def test_without_a_load_balancer_nothing_is_put_back():
    FakeLB.unreachable = True  # any use of the load balancer would raise
    assert put_back(inventory=NO_LB) == []


def test_a_rolling_deploy_first_puts_back_what_a_dead_run_left_drained(stack):
    FakeLB.status["web-02"] = "DRAIN"
    FakeLB.marked = {"web-02": left_by("20260101-090000-dead01")}
    report = deploy(stack)
    assert report.ok
    assert FakeLB.calls[:3] == [("marks", None), ("ready", "web-02"), ("wait_up", "web-02")]
    first = [r for r in report.results if r.host == "lb-01"][0]
    assert (first.id, first.status) == ("haproxy.server:bk_web/web-02:ready", Status.CHANGED)
    assert first.comment.startswith("put back: left drained by run 20260101-090000-dead01")
    assert "haproxy.server:bk_web/web-02:ready" in list(stack.journal.results(report.run_id)["state_id"])
    assert [h for h, _ in stack.log].count("web-02") == 2  # then it was deployed as the others


def test_a_rolling_dry_run_says_what_it_would_put_back(stack):
    FakeLB.status["web-02"] = "DRAIN"
    FakeLB.marked = {"web-02": left_by("20260101-090000-dead01")}
    report = deploy(stack, test=True)
    lb = [(r.id, r.status) for r in report.results if r.host == "lb-01"]
    assert lb == [("haproxy.server:bk_web/web-02:ready", Status.PENDING)]
    assert FakeLB.calls == [("marks", None)] and stack.log == [] and stack.locks.calls == []


def test_a_ready_that_cannot_reach_the_load_balancer_fails_the_ready_step():
    lost = ConnectionFailed("lb-01", "10.77.0.10:22 unreachable: No route to host")
    FakeLB.fail["ready"] = [lost]  # (after the runtime API's own second try)
    emitted = []
    with pytest.raises(ConnectionFailed, match="No route to host"):
        with rolling.drained(a_run(), WEB1, emitted.append):
            pass
    assert [c for c in FakeLB.calls if c[0] == "ready"] == [("ready", "web-01")]
    assert steps(emitted) == [("lb-01", "drain", Status.CHANGED), ("lb-01", "ready", Status.FAILED)]
    assert "No route to host" in emitted[1].comment


def test_drain_marks_read_in_the_opening_command_are_parsed_without_asking_the_load_balancer_again():
    lb = haproxy.HAProxy.__new__(haproxy.HAProxy)  # no connection: asking the host would fail
    said = "\n".join(
        [
            '{"backend": "bk_web", "server": "web-02", "run": "20260101-090000-dead01", "state": "drain"}',
            '{"backend": "bk_web", "server": "../etc", "run": "x"}',  # not a name a run writes
            "not json",
        ]
    )
    assert lb.marks("bk_web", said=said) == {
        "web-02": {"backend": "bk_web", "server": "web-02", "run": "20260101-090000-dead01", "state": "drain"}
    }
    assert lb.marks("bk_web", said="") == {}


def test_the_run_lock_names_the_runs_own_command_not_a_read_of_its_phases(stack):
    apply(
        stack.inv,
        rolling.rolling_phase("web", lambda host, inventory: [DEPLOY]),
        hosts="web-*",
        journal=stack.journal,
        command="foobar-ops apply -i inv.yml",
    )
    assert stack.locks.calls[0][2] == "foobar-ops apply -i inv.yml"
