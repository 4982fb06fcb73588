"""The rolling guard without hosts: a fake load balancer records what was asked of it."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from foobar_ops import haproxy
from foobar_ops.errors import FoobarOpsError
from foobar_ops.haproxy import LBError
from foobar_ops.roles import rolling

INV = SimpleNamespace(hosts={"lb-01": SimpleNamespace(roles=("haproxy",)),
                             "web-01": SimpleNamespace(roles=("app",)),
                             "web-02": SimpleNamespace(roles=("app",))})
WEB1, WEB2 = SimpleNamespace(name="web-01"), SimpleNamespace(name="web-02")


class FakeLB:
    status = {}
    calls = []
    fail = {}

    def __init__(self, inventory, record=True):
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
    return FakeLB


def run(host, body=lambda: None):
    emitted = []
    with rolling.drained(host, INV, emitted.append):
        body()
    return emitted


def test_a_serving_host_is_drained_changed_and_put_back():
    emitted = run(WEB1, lambda: FakeLB.calls.append(("change", "web-01")))
    assert FakeLB.calls == [("drain", "web-01"), ("change", "web-01"), ("ready", "web-01"), ("wait_up", "web-01")]
    assert [r.id.rsplit(":", 1)[-1] for r in emitted] == ["drain", "ready"] and all(r.result for r in emitted)


def test_a_failed_change_still_puts_the_server_back_and_its_error_wins():
    def broken():
        raise FoobarOpsError("health check failed")

    emitted = []
    with pytest.raises(FoobarOpsError, match="health check failed"):
        with rolling.drained(WEB1, INV, emitted.append):
            broken()
    assert FakeLB.status["web-01"] == "UP" and ("ready", "web-01") in FakeLB.calls


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
    assert emitted[0].result is False and "server put back" in emitted[0].comment


def test_a_server_out_of_rotation_is_changed_as_it_is_and_left_alone():
    FakeLB.status["web-01"] = "MAINT"
    emitted = run(WEB1)
    assert FakeLB.calls == [] and FakeLB.status["web-01"] == "MAINT"
    assert emitted[0].changed is False and "MAINT" in emitted[0].comment


def test_the_only_server_up_is_changed_without_draining():
    FakeLB.status["web-02"] = "DOWN"
    emitted = run(WEB1)
    assert FakeLB.calls == [] and "only server UP" in emitted[0].comment


def test_hosts_out_of_rotation_go_first():
    FakeLB.status["web-02"] = "DOWN"
    assert [h.name for h in rolling.out_of_rotation_first([WEB1, WEB2], INV)] == ["web-02", "web-01"]
    FakeLB.status["web-02"] = "UP"
    assert [h.name for h in rolling.out_of_rotation_first([WEB1, WEB2], INV)] == ["web-01", "web-02"]
