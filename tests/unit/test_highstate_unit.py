"""highstate.apply without hosts: phases in order, serial phases stop at the first failed host,
bad input stops the run before any host is touched, and the journal gets every result."""
from __future__ import annotations

import pytest

from foobar_ops import highstate
from foobar_ops.highstate import Phase, apply
from foobar_ops.inventory import load_inventory
from foobar_ops.records import Journal
from foobar_ops.result import Result

INVENTORY = """
hosts:
  web-01: {address: 10.77.0.11, roles: [app]}
  web-02: {address: 10.77.0.12, roles: [app]}
  web-03: {address: 10.77.0.13, roles: [app]}
"""


class FakeRemote:
    def __init__(self, host, inventory):
        self.host, self.round_trips = host, 1

    def close(self):
        pass


@pytest.fixture
def world(tmp_path, monkeypatch):
    path = tmp_path / "inv.yml"
    path.write_text(INVENTORY)
    calls: list[tuple[str, str]] = []
    failing: set[str] = set()

    class FakeHostRun:
        def __init__(self, host, states, remote, test, emit):
            self.host, self.states, self.emit, self.test = host, states, emit, test

        def execute(self):
            out = []
            for st in self.states:
                if self.test:  # a plan: "pending" states would change
                    r = Result(self.host.name, st, st, "cmd.run", None if st == "pending" else True,
                               changes={"new": 1} if st == "pending" else {})
                else:
                    calls.append((self.host.name, st))
                    r = Result(self.host.name, st, st, "cmd.run", self.host.name not in failing, changed=True)
                self.emit(r)
                out.append(r)
            return out

    monkeypatch.setattr(highstate, "Remote", FakeRemote)
    monkeypatch.setattr(highstate, "HostRun", FakeHostRun)
    return {"inv": load_inventory(path), "calls": calls, "failing": failing,
            "journal": Journal(tmp_path / "j.sqlite")}


def test_phases_run_in_order_for_every_host(world):
    report = apply(world["inv"], [Phase(lambda h, i: ["first"]), Phase(lambda h, i: ["second"], serial=True)],
                   journal=world["journal"])
    assert report.ok
    firsts = [c for c in world["calls"] if c[1] == "first"]
    seconds = [c for c in world["calls"] if c[1] == "second"]
    assert len(firsts) == len(seconds) == 3
    assert world["calls"].index(seconds[0]) > max(world["calls"].index(c) for c in firsts)
    assert [h for h, _ in seconds] == ["web-01", "web-02", "web-03"]  # serial: inventory order


def test_a_serial_phase_stops_at_the_first_failed_host(world):
    world["failing"].add("web-02")
    report = apply(world["inv"], [Phase(lambda h, i: ["deploy"], serial=True)], journal=world["journal"])
    assert not report.ok
    assert [h for h, _ in world["calls"]] == ["web-01", "web-02"]  # web-03 untouched
    skipped = [r for r in report.results if r.host == "web-03"]
    assert len(skipped) == 1 and skipped[0].run is False and "web-02 failed" in skipped[0].comment
    assert report.failed_hosts == ["web-02", "web-03"]
    rows = world["journal"].results(report.run_id)
    assert len(rows) == 3 and world["journal"].run(report.run_id)["status"] == "failed"


def test_bad_input_stops_before_any_host_and_is_journaled(world):
    def broken(host, inventory):
        raise ValueError("template for web-02 is broken")

    with pytest.raises(ValueError):
        apply(world["inv"], broken, journal=world["journal"])
    assert world["calls"] == []
    runs = world["journal"].runs()
    assert list(runs["status"]) == ["error"] and "broken" in runs["error"][0]


def test_a_guard_wraps_only_hosts_with_pending_changes(world):
    from contextlib import contextmanager
    guarded = []

    @contextmanager
    def guard(host, inventory, emit):
        guarded.append(host.name)
        emit(Result("lb-x", f"drain:{host.name}", host.name, "haproxy.server", True, changed=True))
        yield

    states = {"web-01": ["pending"], "web-02": ["quiet"], "web-03": ["pending"]}
    report = apply(world["inv"], [Phase(lambda h, i: states[h.name], serial=True, guard=guard)],
                   journal=world["journal"])
    assert guarded == ["web-01", "web-03"]
    assert world["calls"] == [("web-01", "pending"), ("web-03", "pending")]  # web-02 was only planned
    assert [r.id for r in report.results if r.host == "lb-x"] == ["drain:web-01", "drain:web-03"]
    assert "lb-x" in report.hosts and report.ok


def test_a_failing_guard_stops_the_serial_phase(world):
    from contextlib import contextmanager

    from foobar_ops.errors import FoobarOpsError

    @contextmanager
    def guard(host, inventory, emit):
        raise FoobarOpsError(f"cannot drain {host.name}")
        yield

    report = apply(world["inv"], [Phase(lambda h, i: ["pending"], serial=True, guard=guard)],
                   journal=world["journal"])
    assert world["calls"] == []
    first = [r for r in report.results if r.host == "web-01"]
    assert first[0].result is False and "cannot drain web-01" in first[0].comment
    assert all(r.run is False for r in report.results if r.host in ("web-02", "web-03"))
