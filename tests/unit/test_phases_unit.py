"""apply() over phases without hosts: the real HostApply against one fake remote per host.

Phases run in order, a one-host-at-a-time phase stops at the first failed host, bad input stops
the run before any host is contacted, a host that cannot be reached (or is lost mid-run) is an
unreachable outcome skipped by later phases, and the journal gets every result and outcome.
"""

from __future__ import annotations

from contextlib import contextmanager
from types import SimpleNamespace

import pytest

from foobar_ops import states as s
from foobar_ops.core.engine import phases
from foobar_ops.core.engine.phases import Phase, apply
from foobar_ops.core.errors import FoobarOpsError, StateError, SudoError
from foobar_ops.core.inventory import load_inventory
from foobar_ops.core.journal import Journal
from foobar_ops.core.result import HostOutcome, Outcome, Result, Status
from tests.unit.fakes import FakeRemote, guards

INVENTORY = """
hosts:
  web-01: {address: 10.77.0.11, roles: [app]}
  web-02: {address: 10.77.0.12, roles: [app]}
  web-03: {address: 10.77.0.13, roles: [app]}
"""
HOSTS = ["web-01", "web-02", "web-03"]

# Two commands; the fake says whether their guard holds (DONE: nothing to do) or not (TODO).
FIRST = s.cmd.run("deploy first", unless="first-is-done")
SECOND = s.cmd.run("deploy second", unless="second-is-done")
TODO, DONE = guards(unless=False), guards(unless=True)
RESET = "Connection reset by peer"


def only(*states):
    """A phase's states_for: the same states on every host."""
    return lambda host, inventory: list(states)


@pytest.fixture
def world(tmp_path, monkeypatch):
    """Three hosts, each with a fake remote on which both commands are still to do; `log` is every
    apply section sent, as (host, body), in order."""
    path = tmp_path / "inv.yml"
    path.write_text(INVENTORY)
    log: list[tuple[str, str]] = []
    remotes = {name: FakeRemote({FIRST: TODO, SECOND: TODO}, host=name, log=log) for name in HOSTS}
    monkeypatch.setattr(phases, "Remote", lambda host, inventory: remotes[host.name])
    return SimpleNamespace(inv=load_inventory(path), remotes=remotes, log=log, journal=Journal(tmp_path / "j.sqlite"))


def run(world, *steps, **kw):
    return apply(world.inv, list(steps), journal=world.journal, **kw)


def of(report, host):
    return [(r.id, r.status) for r in report.results if r.host == host]


def applied(world):
    """Who ran what: (host, command) of every apply section, in order."""
    return [(host, body.removeprefix("set -e; ")) for host, body in world.log]


# --- phases in order -------------------------------------------------------------------------


def test_phases_run_in_order_for_every_host(world):
    seen = []
    report = run(world, Phase("first", only(FIRST)), Phase("second", only(SECOND), serial=True), on_result=seen.append)
    assert report.ok
    calls = applied(world)
    firsts = [c for c in calls if c[1] == "deploy first"]
    seconds = [c for c in calls if c[1] == "deploy second"]
    assert len(firsts) == len(seconds) == 3 and calls[3:] == seconds  # every first before any second
    assert [h for h, _ in seconds] == HOSTS  # serial: inventory order
    for host in HOSTS:
        assert of(report, host) == [(FIRST.id, Status.CHANGED), (SECOND.id, Status.CHANGED)]
        assert report.outcomes[host] == HostOutcome(host, Outcome.OK, None, 4)  # facts + apply, per phase
    assert len(seen) == 6 and {id(r) for r in seen} == {id(r) for r in report.results}  # as they came
    assert len(world.journal.results(report.run_id)) == 6


def test_a_plain_function_is_a_parallel_phase(world):
    report = run(world, only(FIRST))
    assert [r.status for r in report.results] == [Status.CHANGED] * 3
    assert sorted(h for h, _ in applied(world)) == HOSTS


# --- one host at a time ----------------------------------------------------------------------


def test_a_serial_phase_stops_at_the_first_failed_host(world):
    world.remotes["web-02"].apply = ("deploy: No space left on device", 1)
    report = run(world, Phase("deploy", only(FIRST, SECOND), serial=True))
    assert not report.ok
    assert [h for h, _ in applied(world)] == ["web-01", "web-01", "web-02", "web-02"]  # web-03 untouched
    assert world.remotes["web-03"].calls == 0
    assert of(report, "web-02") == [(FIRST.id, Status.FAILED), (SECOND.id, Status.FAILED)]
    assert of(report, "web-03") == [(FIRST.id, Status.NOT_RUN), (SECOND.id, Status.NOT_RUN)]
    assert all(
        r.comment.startswith("not run: web-02 failed earlier in this one-host-at-a-time phase")
        for r in report.results
        if r.host == "web-03"
    )
    assert report.failed_hosts == ["web-02", "web-03"]
    assert [report.outcomes[h].outcome for h in HOSTS] == [Outcome.OK, Outcome.FAILED, Outcome.FAILED]
    assert len(world.journal.results(report.run_id)) == 6
    assert world.journal.run(report.run_id)["status"] == "failed"


def test_a_serial_phase_stops_after_an_unreachable_host(world):
    world.remotes["web-01"].breaks_at = 1
    report = run(world, Phase("deploy", only(FIRST), serial=True))
    assert of(report, "web-01") == []
    assert report.outcomes["web-01"].outcome is Outcome.UNREACHABLE
    for host in ("web-02", "web-03"):
        assert of(report, host) == [(FIRST.id, Status.NOT_RUN)]
        assert world.remotes[host].calls == 0
    assert "web-01 failed earlier" in report.results[-1].comment
    assert report.failed_hosts == HOSTS


def test_a_serial_phase_in_test_mode_plans_every_host_without_its_guard(world):
    guarded = []

    @contextmanager
    def guard(host, inventory, emit):
        guarded.append(host.name)
        yield

    report = run(world, Phase("deploy", only(FIRST), serial=True, guard=guard), test=True)
    assert guarded == [] and world.log == []
    assert [r.status for r in report.results] == [Status.PENDING] * 3
    assert report.ok


# --- the guard of a serial phase -------------------------------------------------------------


def lb_result(action, host, status=Status.CHANGED):
    return Result("lb-x", f"{action}:{host.name}", host.name, "haproxy.server", status)


def test_a_guard_wraps_only_hosts_with_pending_changes(world):
    guarded = []

    @contextmanager
    def guard(host, inventory, emit):
        guarded.append(host.name)
        emit(lb_result("drain", host))
        yield
        emit(lb_result("ready", host))

    world.remotes["web-02"] = FakeRemote({FIRST: DONE}, host="web-02", log=world.log)  # nothing to do there
    report = run(world, Phase("deploy", only(FIRST), serial=True, guard=guard))
    assert guarded == ["web-01", "web-03"]
    assert applied(world) == [("web-01", "deploy first"), ("web-03", "deploy first")]  # web-02 only planned
    assert of(report, "web-02") == [(FIRST.id, Status.OK)] and report.round_trips["web-02"] == 1
    assert [r.id for r in report.results if r.host == "lb-x"] == [
        "drain:web-01",
        "ready:web-01",
        "drain:web-03",
        "ready:web-03",
    ]
    assert "lb-x" in report.hosts and report.outcomes["lb-x"].outcome is Outcome.OK
    assert report.ok


def test_a_guard_that_fails_before_the_change_leaves_the_hosts_states_not_run(world):
    @contextmanager
    def guard(host, inventory, emit):
        emit(lb_result("drain", host, Status.FAILED))
        raise FoobarOpsError(f"cannot drain {host.name}")
        yield

    report = run(world, Phase("deploy", only(FIRST, SECOND), serial=True, guard=guard))
    assert world.log == []  # nothing was applied anywhere
    assert of(report, "web-01") == [(FIRST.id, Status.NOT_RUN), (SECOND.id, Status.NOT_RUN)]
    assert all(r.comment == "not run: cannot drain web-01" for r in report.results if r.host == "web-01")
    assert [r.status for r in report.results if r.host == "lb-x"] == [Status.FAILED]
    for host in ("web-02", "web-03"):  # planned up front (read-only), never changed
        assert of(report, host) == [(FIRST.id, Status.NOT_RUN), (SECOND.id, Status.NOT_RUN)]
        assert world.remotes[host].calls == 1
    assert world.remotes["web-01"].calls == 1  # only its plan
    assert report.failed_hosts == HOSTS + ["lb-x"]


# --- bad input -------------------------------------------------------------------------------


def test_bad_input_stops_before_any_host_is_contacted(world):
    def broken(host, inventory):
        if host.name == "web-02":
            raise ValueError("template for web-02 is broken")
        return [FIRST]

    with pytest.raises(ValueError, match="template for web-02 is broken"):
        run(world, only(FIRST), broken)
    assert all(r.calls == 0 for r in world.remotes.values())


@pytest.mark.parametrize(
    "second, message",
    [
        (
            lambda host, inventory: [SECOND, SECOND] if host.name == "web-03" else [SECOND],
            "host web-03: state id 'cmd.run:deploy second' is declared twice",
        ),
        (
            only(s.cmd.run("reload", watch=[FIRST.id])),
            "host web-01: state 'cmd.run:reload': watch names 'cmd.run:deploy first', which is not a state declared",
        ),
    ],
    ids=["duplicate-id", "requisite-on-another-phase"],
)
def test_bad_declarations_are_refused_before_any_host_is_contacted(world, second, message):
    with pytest.raises(StateError, match=message):
        run(world, only(FIRST), second)  # the first phase is fine: it must not run either
    assert all(r.calls == 0 for r in world.remotes.values())


# --- hosts that cannot be reached ------------------------------------------------------------


def test_an_unreachable_host_has_an_outcome_no_results_and_is_skipped_by_later_phases(world):
    world.remotes["web-02"].breaks_at = 1
    report = run(world, only(FIRST), only(SECOND))
    assert of(report, "web-02") == []
    assert report.outcomes["web-02"] == HostOutcome("web-02", Outcome.UNREACHABLE, RESET, 0)
    assert world.remotes["web-02"].calls == 1  # the second phase did not try it again
    for host in ("web-01", "web-03"):
        assert of(report, host) == [(FIRST.id, Status.CHANGED), (SECOND.id, Status.CHANGED)]
        assert report.outcomes[host].outcome is Outcome.OK
    assert report.unreachable_hosts == report.failed_hosts == ["web-02"] and not report.ok
    assert report.counts()["unreachable"] == 1
    assert {"host": "web-02", "outcome": "unreachable", "error": RESET, "round_trips": 0} in report.as_json()["hosts"]
    outcomes = world.journal.outcomes(report.run_id).set_index("host")
    assert outcomes.loc["web-02", "outcome"] == "unreachable" and outcomes.loc["web-01", "outcome"] == "ok"


def test_a_host_lost_mid_run_is_unreachable_and_skipped_by_later_phases(world):
    world.remotes["web-02"].breaks_at = 2  # it answers the facts, then drops during the first apply
    report = run(world, only(FIRST, SECOND), only(SECOND))
    assert of(report, "web-02") == [(FIRST.id, Status.FAILED), (SECOND.id, Status.NOT_RUN)]
    assert report.outcomes["web-02"] == HostOutcome("web-02", Outcome.UNREACHABLE, RESET, 1)
    assert world.remotes["web-02"].calls == 2
    assert of(report, "web-01") == [
        (FIRST.id, Status.CHANGED),
        (SECOND.id, Status.CHANGED),
        (SECOND.id, Status.CHANGED),
    ]
    assert report.unreachable_hosts == ["web-02"]


def test_a_host_that_refuses_sudo_fails_with_its_error_and_is_skipped_by_later_phases(world):
    remote = world.remotes["web-03"]
    remote.breaks_at, remote.breaks_with = 1, SudoError("web-03", "sudo refused the password from env:SUDO_PW")
    report = run(world, only(FIRST), only(SECOND))
    assert of(report, "web-03") == [] and remote.calls == 1
    assert report.outcomes["web-03"] == HostOutcome(
        "web-03", Outcome.FAILED, "sudo refused the password from env:SUDO_PW", 0
    )
    assert report.failed_hosts == ["web-03"] and report.unreachable_hosts == []
    assert [r.status for r in report.results] == [Status.CHANGED] * 4  # the other hosts went on
