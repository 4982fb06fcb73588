"""apply() over phases without hosts: the real HostApply against one fake remote per host.

Phases run in order, a one-host-at-a-time phase stops at the first failed host, bad input stops
the run before any host is contacted, a host that cannot be reached (or is lost mid-run) is an
unreachable outcome skipped by later phases, and the journal gets every result and outcome. A run
locks its hosts (the run_locks fixture stands for core.runlock), runs its phases' prepare hooks
first, survives a surprise on one host, and goes on when the journal refuses writes (the spool).
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
from sqlalchemy import event

from foobar_ops import states as s
from foobar_ops.core import journal as records
from foobar_ops.core import ssh as ssh_mod
from foobar_ops.core.engine.phases import Phase, apply
from foobar_ops.core.errors import ConnectionFailed, FoobarOpsError, StateError, SudoError
from foobar_ops.core.inventory import load_inventory
from foobar_ops.core.journal import Journal, JournalError
from foobar_ops.core.result import HostOutcome, Outcome, Result, Status
from foobar_ops.core.runlock import Holder, RunLocked
from tests.unit.fakes import Answer, FakeRemote, guards

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
def world(tmp_path, monkeypatch, run_locks):
    """Three hosts, each with a fake remote on which both commands are still to do; `log` is every
    apply section sent, as (host, body), in order; `locks` what the run locked (fakes.RunLocks)."""
    path = tmp_path / "inv.yml"
    path.write_text(INVENTORY)
    log: list[tuple[str, str]] = []
    remotes = {name: FakeRemote({FIRST: TODO, SECOND: TODO}, host=name, log=log) for name in HOSTS}
    monkeypatch.setattr(ssh_mod, "Remote", lambda host, inventory: remotes[host.name])
    monkeypatch.setattr(records, "git_commit", lambda folder=records.CHECKOUT: "abc1234")
    return SimpleNamespace(
        inv=load_inventory(path),
        remotes=remotes,
        log=log,
        journal=Journal(tmp_path / "j.sqlite"),
        locks=run_locks,
        path=tmp_path / "j.sqlite",
    )


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
    assert world.remotes["web-03"].calls == 1 and world.remotes["web-03"].changed_nothing  # its facts only
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


def test_a_serial_phase_stops_after_a_host_that_stopped_answering_in_its_turn(world):
    world.remotes["web-01"].breaks_at = 2  # its facts came with its lock; then it stops answering
    report = run(world, Phase("deploy", only(FIRST), serial=True))
    assert of(report, "web-01") == [(FIRST.id, Status.FAILED)] and world.log == []
    assert report.outcomes["web-01"].outcome is Outcome.UNREACHABLE
    for host in ("web-02", "web-03"):
        assert of(report, host) == [(FIRST.id, Status.NOT_RUN)]
        assert world.remotes[host].calls == 1 and world.remotes[host].changed_nothing  # its facts only
    assert "web-01 failed earlier" in report.results[-1].comment
    assert report.failed_hosts == HOSTS


def test_a_serial_phase_in_test_mode_plans_every_host_without_its_guard(world):
    guarded = []

    @contextmanager
    def guard(run, host, emit):
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
    def guard(run, host, emit):
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
    def guard(run, host, emit):
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
    assert {"host": "web-02", "outcome": "unreachable", "error": RESET, "round_trips": 0, "ssh_bytes": None} in (
        report.as_json()["hosts"]
    )
    outcomes = world.journal.outcomes(report.run_id).set_index("host")
    assert outcomes.loc["web-02", "outcome"] == "unreachable" and outcomes.loc["web-01", "outcome"] == "ok"


def test_a_host_lost_mid_run_is_unreachable_and_skipped_by_later_phases(world):
    world.remotes["web-02"].breaks_at = 2  # it answers the facts, then drops during the first apply
    report = run(world, only(FIRST, SECOND), only(SECOND))
    assert of(report, "web-02") == [(FIRST.id, Status.FAILED), (SECOND.id, Status.NOT_RUN)]
    lost = f"{RESET}; the change's outcome could not be read back (it is kept on the host)"
    assert report.outcomes["web-02"] == HostOutcome("web-02", Outcome.UNREACHABLE, lost, 1)
    assert world.remotes["web-02"].calls == 3  # the apply, one try to read its outcome back, no more
    assert of(report, "web-01") == [
        (FIRST.id, Status.CHANGED),
        (SECOND.id, Status.CHANGED),
        (SECOND.id, Status.CHANGED),
    ]
    assert report.unreachable_hosts == ["web-02"]


def test_a_host_whose_cut_change_is_still_running_fails_and_is_skipped_by_later_phases(world):
    remote = world.remotes["web-02"]
    remote.cut_calls = {2}  # cut during the first apply, which outlasts the read-back's wait
    remote.after_cut = lambda host: host.running.update(host.started)
    report = run(world, only(FIRST, SECOND), only(SECOND))
    busy = "a change cut off earlier in this run is still running on the host (pid 4242)"
    assert of(report, "web-02") == [(FIRST.id, Status.FAILED), (SECOND.id, Status.NOT_RUN)]  # nothing beside it
    assert report.outcomes["web-02"] == HostOutcome("web-02", Outcome.FAILED, busy, 3)
    assert remote.calls == 3  # the facts, the cut apply, the read-back: no later phase there
    assert len(of(report, "web-01")) == 3 and report.failed_hosts == ["web-02"]


def test_a_guard_is_told_when_the_change_it_wraps_is_still_running(world):
    from foobar_ops.core.errors import CutOffChangeRunning

    seen = []

    @contextmanager
    def guard(run, host, emit):
        try:
            yield
        except CutOffChangeRunning as err:  # e.g. the rolling guard: leave the server drained
            seen.append((host.name, err.reason))
            raise
        seen.append((host.name, "put back"))

    remote = world.remotes["web-02"]
    remote.cut_calls = {3}  # the facts (planned first), the facts again, then the cut apply
    remote.after_cut = lambda host: host.running.update(host.started)
    report = run(world, Phase("deploy", only(FIRST), serial=True, guard=guard))
    busy = "a change cut off earlier in this run is still running on the host (pid 4242)"
    assert seen == [("web-01", "put back"), ("web-02", busy)]
    assert of(report, "web-02") == [(FIRST.id, Status.FAILED)]  # its result kept, not turned into not_run
    assert of(report, "web-03") == [(FIRST.id, Status.NOT_RUN)]  # the phase stopped there


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


# --- run locks -------------------------------------------------------------------------------

HOLDER = Holder(
    run="20260101-090000-abc123",
    command="foobar-ops apply web",
    user="alice",
    machine="ctl-2",
    pid=4242,
    since="2026-01-01T09:00:00Z",
    shell=777,
)


def extra(name):
    """A phase's also_locks: one more host it acts on besides its own."""
    return lambda inventory: [inventory.host(name)]


def test_a_run_locks_every_targeted_host_and_the_hosts_its_phases_act_on(world):
    phase = Phase("deploy", only(FIRST), also_locks=extra("web-03"))
    report = run(world, phase, Phase("none", only(SECOND), also_locks=lambda inventory: [None]), hosts="web-01,web-02")
    hosts, run_id, command, wait = world.locks.calls[0]
    assert sorted(hosts) == HOSTS and len(world.locks.calls) == 1  # once, for the whole run
    assert (run_id, command, wait) == (report.run_id, "python", 0.0)
    assert world.remotes["web-03"].calls == 0 and world.remotes["web-03"].closed >= 1  # locked, not changed
    assert report.hosts == ["web-01", "web-02"] and report.ok
    for name in ("web-01", "web-02"):  # a lost connection takes the lock again when it reconnects
        assert world.remotes[name].relock == world.locks.held[name].reacquire
    assert world.locks.open == 0 and all(lock.released for lock in world.locks.held.values())


def test_the_lock_is_held_while_the_phases_run(world):
    seen = []
    run(
        world,
        only(FIRST),
        on_result=lambda r: seen.append(sorted(n for n, k in world.locks.held.items() if not k.released)),
    )
    assert seen == [["web-01", "web-02", "web-03"]] * 3  # every host's lock, none let go yet
    assert all(k.released for k in world.locks.held.values())  # then let go


@pytest.mark.parametrize("given, wait", [(7, 7.0), (None, 0.0), (0, 0.0), ("2.5", 2.5)])
def test_how_long_a_run_waits_for_a_lock_is_its_lock_wait(world, monkeypatch, given, wait):
    monkeypatch.setenv("FOOBAR_OPS_LOCK_WAIT", "600")  # no longer read: the wait is a parameter
    run(world, only(FIRST), lock_wait=given)
    assert world.locks.calls[0][3] == wait


@pytest.mark.parametrize("given", [-3, "soon", float("nan"), True, 10**9])
def test_a_lock_wait_that_is_no_number_of_seconds_stops_the_run_before_any_host(world, given):
    with pytest.raises(FoobarOpsError, match=r"lock_wait=.* (is not a number of seconds|must be from 0)"):
        run(world, only(FIRST), lock_wait=given)
    assert world.locks.calls == [] and all(r.calls == 0 for r in world.remotes.values())


def test_a_host_locked_by_another_run_refuses_the_whole_run_naming_that_run(world):
    world.locks.refuse["web-02"] = RunLocked("web-02", HOLDER, 0)
    with pytest.raises(RunLocked) as raised:
        run(world, only(FIRST), Phase("second", only(SECOND), serial=True))
    assert raised.value is world.locks.refuse["web-02"]  # the holder's own error, naming it
    assert raised.value.host == "web-02" and HOLDER.describe() in str(raised.value)
    assert world.log == [] and all(r.changed_nothing for r in world.remotes.values())  # nothing applied anywhere
    assert world.locks.open == 0 and all(lock.released for lock in world.locks.held.values())
    (journaled,) = world.journal.runs().to_dict("records")
    assert journaled["status"] == "error" and "RunLocked" in journaled["error"] and "web-02" in journaled["error"]


def test_a_load_balancer_locked_by_another_run_refuses_the_run_too(world):
    world.locks.refuse["web-03"] = RunLocked("web-03", HOLDER, 5)
    with pytest.raises(RunLocked) as raised:
        run(world, Phase("deploy", only(FIRST), also_locks=extra("web-03")), hosts="web-01")
    assert raised.value.host == "web-03" and HOLDER.describe() in str(raised.value)
    assert world.log == [] and world.remotes["web-01"].changed_nothing


def test_a_dry_run_takes_no_lock(world):
    report = run(world, Phase("deploy", only(FIRST), also_locks=extra("web-03")), test=True)
    assert world.locks.calls == [] and report.ok
    assert [r.status for r in report.results] == [Status.PENDING] * 3


def test_a_host_that_cannot_be_reached_for_its_lock_is_unreachable_and_the_others_go_on(world):
    world.locks.refuse["web-02"] = ConnectionFailed("web-02", "10.77.0.12:22 unreachable: No route to host")
    report = run(world, only(FIRST), only(SECOND))
    assert report.outcomes["web-02"] == HostOutcome(
        "web-02", Outcome.UNREACHABLE, "10.77.0.12:22 unreachable: No route to host", 0
    )
    assert of(report, "web-02") == [] and world.remotes["web-02"].calls == 0
    assert sorted(applied(world)) == sorted(
        (h, c) for h in ("web-01", "web-03") for c in ("deploy first", "deploy second")
    )
    assert {c for _, c in applied(world)[:2]} == {"deploy first"}  # phases in order


@pytest.mark.parametrize(
    "error, why",
    [
        (
            SudoError("web-03", "sudo refused the password from env:SUDO_PW"),
            "sudo refused the password from env:SUDO_PW",
        ),
        (
            FoobarOpsError("web-03: cannot take the run lock: sh: 1: flock: not found"),
            "cannot take the run lock: sh: 1: flock: not found",
        ),
    ],
    ids=["sudo", "other"],
)
def test_a_host_that_refuses_its_lock_fails_and_the_others_go_on(world, error, why):
    world.locks.refuse["web-03"] = error
    report = run(world, only(FIRST))
    assert report.outcomes["web-03"] == HostOutcome("web-03", Outcome.FAILED, why, 0)
    assert of(report, "web-03") == [] and world.remotes["web-03"].calls == 0
    assert sorted(h for h, _ in applied(world)) == ["web-01", "web-02"]
    assert report.failed_hosts == ["web-03"]


def test_a_host_acted_on_for_others_that_cannot_be_locked_is_left_to_the_phase(world):
    world.locks.refuse["web-03"] = ConnectionFailed("web-03", "Connection refused")
    report = run(world, Phase("deploy", only(FIRST), also_locks=extra("web-03")), hosts="web-01,web-02")
    assert report.ok and "web-03" not in report.outcomes  # its own step says so when it is needed
    assert world.remotes["web-03"].closed >= 1 and world.remotes["web-03"].calls == 0


@pytest.mark.parametrize(
    "error, why",
    [
        (ConnectionFailed("web-03", "Connection refused"), "Connection refused"),
        (SudoError("web-03", "sudo refused the password from env:SUDO_PW"), "sudo refused the password"),
    ],
    ids=["unreachable", "sudo"],
)
@pytest.mark.parametrize("hosts", ["web-01,web-02", None], ids=["acted-on", "also-targeted"])
def test_a_guarded_phase_changes_nothing_when_the_host_it_acts_on_could_not_be_locked(world, error, why, hosts):
    guarded = []

    @contextmanager
    def guard(run, host, emit):  # would reach web-03 (the load balancer) without its lock
        guarded.append(host.name)
        yield

    world.locks.refuse["web-03"] = error
    world.remotes["web-02"] = FakeRemote({FIRST: DONE}, host="web-02", log=world.log)  # nothing to do there
    phase = Phase("deploy", only(FIRST), serial=True, guard=guard, also_locks=extra("web-03"))
    report = run(world, phase, hosts=hosts)
    assert guarded == [] and world.log == []  # neither the guard nor the change ran
    (refused,) = [r for r in report.results if r.host == "web-01"]
    assert refused.status is Status.NOT_RUN
    assert refused.comment.startswith(f"not run: web-03 could not be locked for this run ({why}")
    assert refused.comment.endswith("; nothing is changed here without it")
    (after,) = [r for r in report.results if r.host == "web-02"]  # one at a time: the phase stopped there
    assert after.status is Status.NOT_RUN and after.comment.startswith("not run: web-01 failed earlier")
    assert world.remotes["web-03"].calls == 0 and not report.ok


@pytest.mark.parametrize(
    "note, how",
    [("took_over", "its process is gone: lock taken over"), ("stale", "it ended without releasing it")],
)
def test_a_lock_a_dead_run_held_is_noted_as_a_result(world, note, how):
    world.locks.notes["web-01"] = {note: HOLDER}
    report = run(world, only(FIRST))
    (noted,) = [r for r in report.results if r.id == "run.lock"]
    assert (noted.host, noted.state, noted.status) == ("web-01", "run.lock", Status.OK)
    assert noted.comment == f"the lock was held by {HOLDER.describe()}; {how}"
    assert "run.lock" in list(world.journal.results(report.run_id)["state_id"])
    assert report.ok


def test_a_display_callback_that_fails_on_a_lock_note_does_not_stop_the_run(world):
    # the note comes from the lock's command, before any phase: the run's record is there already
    world.locks.notes["web-01"] = {"took_over": HOLDER}

    def on_result(result):
        raise RuntimeError("the notebook's callback broke")

    report = run(world, only(FIRST), on_result=on_result)
    assert any("on_result callback failed: RuntimeError" in e for e in report.journal_errors)
    assert "run.lock" in list(world.journal.results(report.run_id)["state_id"])


# --- what a run does before its phases -------------------------------------------------------


@pytest.mark.parametrize("test", [False, True], ids=["apply", "dry-run"])
def test_prepare_runs_once_before_any_phase_and_its_results_are_the_runs(world, test):
    calls = []

    def prepare(run, emit):
        calls.append((run.inventory, run.test, list(world.log), run.id))
        emit(Result("web-03", "put-back", "put back", "haproxy.server", Status.CHANGED, comment="put back"))

    seen = []
    report = run(
        world,
        Phase("one", only(FIRST), prepare=prepare),
        Phase("two", only(SECOND), serial=True, prepare=prepare),
        test=test,
        on_result=seen.append,
    )
    assert calls == [(world.inv, test, [], report.run_id)]  # once, before anything was applied
    (put,) = [r for r in report.results if r.id == "put-back"]
    assert put in seen and seen[0] is put
    assert list(world.journal.results(report.run_id)["state_id"]).count("put-back") == 1


@pytest.mark.parametrize("hosts", ["web-01,web-02", None], ids=["acted-on", "also-targeted"])
def test_a_prepare_is_not_run_when_the_host_it_acts_on_could_not_be_locked(world, hosts):
    calls = []
    world.locks.refuse["web-03"] = ConnectionFailed("web-03", "No route to host")
    prepare = lambda run, emit: calls.append(run.test)  # would put back a drained server
    report = run(world, Phase("deploy", only(FIRST), prepare=prepare, also_locks=extra("web-03")), hosts=hosts)
    assert calls == []  # never beside another run that may hold the load balancer meanwhile
    (skipped,) = [r for r in report.results if r.id == "prepare:deploy"]
    assert (skipped.host, skipped.status) == ("web-03", Status.NOT_RUN)
    assert skipped.comment == (
        "not run: web-03 could not be locked for this run (No route to host); a later run does it"
    )
    assert sorted(h for h, _ in applied(world)) == ["web-01", "web-02"]  # the rest of the run went on
    run(world, Phase("deploy", only(FIRST), prepare=prepare, also_locks=extra("web-03")), test=True)
    assert calls == [True]  # a dry-run takes no lock: it plans the put-back as always


def test_different_prepares_each_run_once_in_phase_order(world):
    order = []
    first = lambda run, emit: order.append("first")
    second = lambda run, emit: order.append("second")
    run(
        world,
        Phase("a", only(FIRST), prepare=second),
        Phase("b", only(SECOND), prepare=first),
        Phase("c", only(SECOND), prepare=second),
    )
    assert order == ["second", "first"]


def test_a_guard_is_given_the_run_itself_with_its_id_and_its_connections(world):
    seen = []

    @contextmanager
    def guard(the_run, host, emit):
        seen.append((the_run.id, the_run.test, the_run.remote(host) is the_run.remotes[host.name]))
        yield

    report = run(world, Phase("deploy", only(FIRST), serial=True, guard=guard))
    assert seen == [(report.run_id, False, True)] * 3


# --- surprises -------------------------------------------------------------------------------


def test_an_unexpected_error_on_one_host_fails_that_host_and_the_run_goes_on(world):
    remote = world.remotes["web-02"]
    remote.breaks_at, remote.breaks_with = 1, RuntimeError("boom")  # in the command that locks it
    report = run(world, only(FIRST, SECOND), only(SECOND))
    assert of(report, "web-02") == []  # nothing planned, nothing changed
    assert report.outcomes["web-02"].outcome is Outcome.FAILED
    assert report.outcomes["web-02"].error == "cannot take the run lock: RuntimeError: boom"
    assert remote.calls == 1  # later phases leave it alone
    for host in ("web-01", "web-03"):
        assert of(report, host) == [
            (FIRST.id, Status.CHANGED),
            (SECOND.id, Status.CHANGED),
            (SECOND.id, Status.CHANGED),
        ]


def test_a_result_callback_that_breaks_never_stops_the_change_and_is_reported(world):
    def on_result(result):
        if result.host == "web-02" and result.id == FIRST.id and result.status is Status.CHANGED:
            raise RuntimeError("the notebook's callback broke")

    report = run(world, only(FIRST, SECOND), on_result=on_result)
    assert of(report, "web-02") == [(FIRST.id, Status.CHANGED), (SECOND.id, Status.CHANGED)]
    assert report.journal_errors == ["on_result callback failed: RuntimeError: the notebook's callback broke"]
    assert of(report, "web-01") == [(FIRST.id, Status.CHANGED), (SECOND.id, Status.CHANGED)]


@pytest.mark.parametrize("test", [True, False], ids=["dry-run", "apply"])
def test_an_unexpected_error_on_a_host_fails_that_host_and_the_others_go_on(world, test):
    world.remotes["web-02"].breaks_at = 1 if test else 2  # a dry-run's facts; the change of a run
    world.remotes["web-02"].breaks_with = RuntimeError("sftp: No space left on device")
    report = run(world, only(FIRST, SECOND), test=test)
    why = "RuntimeError: sftp: No space left on device"
    if test:  # its facts could not be had: nothing planned there
        assert of(report, "web-02") == [] and report.outcomes["web-02"].error == why
    else:  # each change failed with the surprise, and was not made
        assert of(report, "web-02") == [(FIRST.id, Status.FAILED), (SECOND.id, Status.FAILED)]
        assert all(r.comment == why for r in report.results if r.host == "web-02")
    assert report.outcomes["web-02"].outcome is Outcome.FAILED
    assert [b for h, b in world.log if h == "web-02"] == []
    done = Status.PENDING if test else Status.CHANGED
    assert of(report, "web-01") == [(FIRST.id, done), (SECOND.id, done)]


def test_a_guard_that_breaks_unexpectedly_before_the_change_leaves_the_hosts_states_not_run(world):
    @contextmanager
    def guard(run, host, emit):
        raise RuntimeError("socket gone")
        yield

    report = run(world, Phase("deploy", only(FIRST, SECOND), serial=True, guard=guard))
    assert world.log == []
    assert of(report, "web-01") == [(FIRST.id, Status.NOT_RUN), (SECOND.id, Status.NOT_RUN)]
    assert all(r.comment == "not run: RuntimeError: socket gone" for r in report.results if r.host == "web-01")
    assert all("web-01 failed earlier" in r.comment for r in report.results if r.host != "web-01")
    assert report.failed_hosts == HOSTS


# --- a journal that refuses writes -----------------------------------------------------------


def refuse_writes(journal):
    """Make the journal's database refuse every write from now on, as a file made read-only does.
    chmod alone does not stop root (who runs the tests in CI), so every new connection is also made
    read-only (SQLite's query_only): a write then fails inside SQLite, as it would on a read-only file."""
    journal.path.chmod(0o444)
    event.listen(journal.engine, "connect", lambda conn, record: conn.execute("PRAGMA query_only = ON"))
    journal.engine.dispose()


def test_a_journal_that_refuses_writes_mid_run_does_not_stop_it_and_replays_later(world):
    def on_result(result):
        if not world.journal.path.stat().st_mode & 0o200:
            return
        refuse_writes(world.journal)  # after the first result was journaled

    report = run(world, only(FIRST, SECOND), on_result=on_result, parallel=1)  # one result, then refused
    assert [r.status for r in report.results] == [Status.CHANGED] * 6 and len(world.log) == 6  # it went on
    spool = world.path.with_name("j.sqlite.spool.jsonl")
    assert report.journal_errors and all(f"kept in {spool}" in e for e in report.journal_errors)
    assert report.as_json()["journal_errors"] == report.journal_errors
    kept = [json.loads(line) for line in spool.read_text().splitlines()]
    assert [k["table"] for k in kept] == ["results"] * 5 + ["hosts"] * 3 + ["runs"]
    assert kept[-1]["run_id"] == report.run_id and kept[-1]["values"]["status"] == "failed"

    world.path.chmod(0o644)
    reopened = Journal(world.path)  # writable again: the spool goes in
    assert not spool.exists()
    assert len(reopened.results(report.run_id)) == 6
    assert sorted(reopened.outcomes(report.run_id)["host"]) == HOSTS
    finished = reopened.run(report.run_id)
    assert finished["finished"] and finished["status"] == "failed"  # its journal was not whole


def test_a_journal_that_cannot_start_the_run_refuses_it_before_any_host_is_asked(world):
    # the run's start is written while the states are built; no command (not even the lock's,
    # which clears what dead runs left) reaches a host before it is on record
    refuse_writes(world.journal)
    with pytest.raises(JournalError, match="cannot write"):
        run(world, only(FIRST))
    assert world.locks.calls == [] and all(r.calls == 0 for r in world.remotes.values())
    assert not world.path.with_name("j.sqlite.spool.jsonl").exists()


# --- one round trip per host -----------------------------------------------------------------


@pytest.mark.parametrize("test", [False, True], ids=["apply", "dry-run"])
def test_a_no_op_run_of_three_phases_asks_each_host_once_in_the_command_that_locks_it(world, test):
    for remote in world.remotes.values():
        remote.answers = FakeRemote({FIRST: DONE, SECOND: DONE}).answers
    report = run(
        world, Phase("a", only(FIRST)), Phase("b", only(SECOND), serial=True), Phase("c", only(FIRST)), test=test
    )
    assert report.ok and world.log == []
    for name, remote in world.remotes.items():
        assert remote.calls == 1 and report.round_trips[name] == 1  # every phase's facts in one command
        assert remote.tags(remote.scripts[0]) == ["f0", "f1", "f2"]  # a's, b's and c's state
    assert world.locks.openings == ([] if test else [{n: r.scripts[0] for n, r in world.remotes.items()}])


def test_phases_after_a_change_gather_their_facts_afresh(world):
    for name in ("web-01", "web-03"):
        world.remotes[name].answers = FakeRemote({FIRST: DONE, SECOND: DONE}).answers
    report = run(world, Phase("a", only(FIRST)), Phase("b", only(SECOND), serial=True))
    assert report.ok and [h for h, _ in world.log] == ["web-02", "web-02"]
    # a: nothing changed before it began, every host plans from the facts of its lock's command
    # b: web-02 changed in a, so each host asks afresh (web-02 then changes b too)
    assert world.remotes["web-01"].calls == 1 + 1
    assert world.remotes["web-02"].calls == 1 + 1 + 2
    assert world.remotes["web-03"].calls == 1 + 1


def test_facts_of_the_opening_command_are_held_to_a_saved_plan_as_any_others(world):
    planned = run(world, Phase("a", only(FIRST)), Phase("b", only(SECOND), serial=True), test=True)
    digests = {r.host: {} for r in planned.results}
    for r in planned.results:
        assert r.digest is not None  # every state's digest, though its facts came in the opening command
        digests[r.host][r.id] = r.digest
    world.remotes["web-02"].answers = FakeRemote({FIRST: DONE, SECOND: TODO}).answers  # FIRST drifted since
    report = run(world, Phase("a", only(FIRST)), Phase("b", only(SECOND), serial=True), expected=digests)
    assert of(report, "web-02")[0] == (FIRST.id, Status.FAILED)
    assert "drifted since the plan was made" in [r for r in report.results if r.host == "web-02"][0].comment
    assert ("web-02", "deploy first") not in applied(world)  # refused, nothing changed by that phase
    assert sorted(h for h, c in applied(world) if c == "deploy first") == ["web-01", "web-03"]  # as planned


def test_a_saved_plan_is_held_to_the_hosts_before_the_run_not_to_what_its_earlier_phases_made(world):
    # applying phase a makes what phase b's state sees change (as a package installed by one phase
    # creates a directory a later phase manages, on a fresh host): the plan coming true, not drift
    planned = run(world, Phase("a", only(FIRST)), Phase("b", only(SECOND), serial=True), test=True)
    digests = {r.host: {} for r in planned.results}
    for r in planned.results:
        digests[r.host][r.id] = r.digest
    for name, remote in world.remotes.items():

        def call(command, *a, _remote=remote, _orig=remote.run, _name=name, **k):
            out = _orig(command, *a, **k)
            if (_name, "set -e; deploy first") in world.log:  # phase a changed this host
                _remote.answers.update(FakeRemote({SECOND: DONE}).answers)
            return out

        remote.run = call
    report = run(world, Phase("a", only(FIRST)), Phase("b", only(SECOND), serial=True), expected=digests)
    assert report.ok, [r.comment for r in report.results if r.failed]
    assert sorted(h for h, c in applied(world) if c == "deploy first") == HOSTS
    assert "drifted" not in " ".join(r.comment for r in report.results)


@pytest.mark.parametrize("test", [False, True], ids=["apply", "dry-run"])
def test_a_secret_in_what_the_opening_command_brings_back_never_reaches_the_records(world, test):
    from foobar_ops.core.secrets import remember

    remember("opening-s3cr3t-4711")
    world.remotes["web-01"].answers = FakeRemote(
        {FIRST: Answer("password=opening-s3cr3t-4711", 1), SECOND: DONE}
    ).answers
    report = run(world, only(FIRST, SECOND), test=test)
    (failed,) = [r for r in report.results if r.host == "web-01" and r.id == FIRST.id]
    assert failed.status is Status.FAILED and "password=********" in failed.comment
    journaled = world.journal.results(report.run_id).to_string()
    assert "opening-s3cr3t-4711" not in journaled + str([r.as_dict() for r in report.results])
