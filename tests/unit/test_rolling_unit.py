"""The rolling guard without hosts: a fake load balancer records what was asked of it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from foobar_ops import states as s
from foobar_ops.core.engine import phases
from foobar_ops.core.engine.phases import apply
from foobar_ops.core.errors import FoobarOpsError
from foobar_ops.core.inventory import load_inventory
from foobar_ops.core.journal import Journal
from foobar_ops.core.result import Status
from foobar_ops.stack import lb as haproxy
from foobar_ops.stack import rolling
from foobar_ops.stack.lb import LBError
from tests.unit.fakes import FakeRemote, guards

INV = SimpleNamespace(
    hosts={
        "lb-01": SimpleNamespace(roles=("haproxy",)),
        "web-01": SimpleNamespace(roles=("app",)),
        "web-02": SimpleNamespace(roles=("app",)),
    }
)
NO_LB = SimpleNamespace(hosts={"web-01": SimpleNamespace(roles=("app",)), "web-02": SimpleNamespace(roles=("app",))})
WEB1, WEB2 = SimpleNamespace(name="web-01"), SimpleNamespace(name="web-02")


class FakeLB:
    status = {}
    calls = []
    fail = {}
    unreachable = False

    def __init__(self, inventory, record=True):
        if FakeLB.unreachable:
            raise haproxy.LBError("lb-01: `show stat` failed: connection refused")
        self.host = SimpleNamespace(name="lb-01")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def servers(self, backend="bk_web"):
        return {n: {"status": s, "scur": 0} for n, s in FakeLB.status.items()}

    def _act(self, action, server):
        FakeLB.calls.append((action, server))
        if action in FakeLB.fail:
            raise FakeLB.fail[action]

    def drain(self, server, backend="bk_web", timeout=30):
        FakeLB.status[server] = "DRAIN"
        self._act("drain", server)
        return 0.1

    def ready(self, server, backend="bk_web"):
        self._act("ready", server)
        FakeLB.status[server] = "UP"

    def wait_others_up(self, server, backend="bk_web", timeout=5):
        return bool(haproxy.others_up(self.servers(), server))

    def wait_up(self, server, backend="bk_web", timeout=30):
        self._act("wait_up", server)
        return 0.2


@pytest.fixture(autouse=True)
def fake(monkeypatch):
    monkeypatch.setattr(rolling, "HAProxy", FakeLB)
    FakeLB.status, FakeLB.calls, FakeLB.fail = {"web-01": "UP", "web-02": "UP"}, [], {}
    FakeLB.unreachable = False
    return FakeLB


def run(host, body=lambda: None, inventory=INV):
    emitted = []
    with rolling.drained(host, inventory, emitted.append):
        body()
    return emitted


def steps(emitted):
    return [(r.host, r.id.rsplit(":", 1)[-1], r.status) for r in emitted]


def test_a_serving_host_is_drained_changed_and_put_back():
    emitted = run(WEB1, lambda: FakeLB.calls.append(("change", "web-01")))
    assert FakeLB.calls == [("drain", "web-01"), ("change", "web-01"), ("ready", "web-01"), ("wait_up", "web-01")]
    assert steps(emitted) == [("lb-01", "drain", Status.CHANGED), ("lb-01", "ready", Status.CHANGED)]
    assert [r.changes for r in emitted] == [{"old": "UP", "new": "drain"}, {"old": "DRAIN", "new": "ready"}]
    assert all(r.state == "haproxy.server" and r.name == "bk_web/web-01" for r in emitted)


def test_a_failed_change_still_puts_the_server_back_and_its_error_wins():
    def broken():
        raise FoobarOpsError("health check failed")

    emitted = []
    with pytest.raises(FoobarOpsError, match="health check failed"):
        with rolling.drained(WEB1, INV, emitted.append):
            broken()
    assert FakeLB.status["web-01"] == "UP" and ("ready", "web-01") in FakeLB.calls
    assert steps(emitted) == [("lb-01", "drain", Status.CHANGED), ("lb-01", "ready", Status.CHANGED)]


def test_a_server_that_does_not_come_back_up_after_its_change_fails_the_ready_step():
    FakeLB.fail["wait_up"] = LBError("bk_web/web-01 is DOWN, not UP, 30 s after it came back")
    emitted = []
    with pytest.raises(LBError, match="not UP"):
        with rolling.drained(WEB1, INV, emitted.append):
            pass
    assert steps(emitted) == [("lb-01", "drain", Status.CHANGED), ("lb-01", "ready", Status.FAILED)]
    assert "not UP" in emitted[1].comment


def test_an_interrupt_during_the_change_stays_an_interrupt_and_the_server_goes_back():
    FakeLB.fail["wait_up"] = LBError("not UP after 30 s")

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        with rolling.drained(WEB1, INV, lambda r: None):
            interrupted()
    assert FakeLB.status["web-01"] == "UP"


def test_a_drain_that_fails_puts_the_server_back_and_says_so():
    FakeLB.fail["drain"] = LBError("still has 3 sessions after 30 s")
    emitted = []
    with pytest.raises(LBError):
        with rolling.drained(WEB1, INV, emitted.append):
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
    emitted = run(WEB1)
    assert FakeLB.calls == []
    assert steps(emitted) == [("lb-01", "as-is", Status.OK)] and "only server UP" in emitted[0].comment


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
def stack(tmp_path, monkeypatch):
    path = tmp_path / "inv.yml"
    path.write_text(STACK)
    FakeLB.status["web-03"] = "UP"
    log: list[tuple[str, str]] = []
    remotes = {
        name: FakeRemote({DEPLOY: guards(unless=False), RESTART: ""}, host=name, log=log)
        for name in ("web-01", "web-02", "web-03")
    }
    monkeypatch.setattr(phases, "Remote", lambda host, inventory: remotes[host.name])
    return SimpleNamespace(inv=load_inventory(path), remotes=remotes, log=log, journal=Journal(tmp_path / "j.sqlite"))


def deploy(stack):
    phase = rolling.rolling_phase("web", lambda host, inventory: [DEPLOY, RESTART])
    return apply(stack.inv, phase, hosts="web-*", journal=stack.journal)


def test_a_rolling_deploy_changes_one_host_at_a_time_out_of_rotation_first(stack):
    FakeLB.status["web-03"] = "DOWN"
    report = deploy(stack)
    assert report.ok
    assert [h for h, _ in stack.log] == ["web-03", "web-03", "web-01", "web-01", "web-02", "web-02"]
    assert FakeLB.calls == [
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
