"""The run's inputs to the roles, without hosts: the app's and Locust's wheels are made once per run
and only for what the targeted hosts apply (a dry-run needs them too: it compares the wheels by
content), the roles take them and build nothing themselves, and the states are the same as a role
that builds for itself declares."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from foobar_ops.stack import load_inventory
from foobar_ops.stack.build import AppBuild
from foobar_ops.stack.roles import ROLES, StackInputs, inputs_for, phases, states_for
from foobar_ops.stack.roles import app as app_role
from foobar_ops.stack.roles import inputs as inputs_mod
from foobar_ops.stack.roles import loadgen as loadgen_role
from tests.unit.inventories import lab_doc, write_doc


@pytest.fixture(autouse=True)
def _env_secrets(monkeypatch):
    monkeypatch.setenv("TEST_DB_PW", "t3st-db-pw")
    monkeypatch.setenv("TEST_REPL_PW", "t3st-repl-pw")
    monkeypatch.setenv("TEST_SUDO", "t3st-sudo-pw")


@pytest.fixture
def inv(tmp_path):
    """The lab: lb-01 (haproxy), web-01 and web-02 (mysql, nginx, app), loadgen-01 (loadgen)."""
    return load_inventory(write_doc(tmp_path, lab_doc()))


def wheels(folder: Path, *names: str) -> tuple[Path, ...]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name in names:
        path = folder / name
        path.write_bytes(b"PK\x05\x06" + name.encode() + b"\0" * 18)
        out.append(path)
    return tuple(out)


class Builds:
    """Fake builds (no pip) that count their calls: where inputs_for builds (`made`), and where a
    role given no inputs builds for itself (`fallback`)."""

    def __init__(self, tmp_path: Path) -> None:
        self.app = AppBuild(
            "1.0.0",
            "1.0.0-abc",
            wheels(tmp_path / "app", "foobar_app-1.0.0-py3-none-any.whl", "PyMySQL-1.2.4-py3-none-any.whl"),
        )
        self.loadgen = AppBuild("2.0", "locust-2.0", wheels(tmp_path / "lg", "locust-2.0-py3-none-any.whl"))
        self.made: list[str] = []
        self.fallback: list[str] = []

    def counted(self, calls: list[str], name: str, build: AppBuild):
        def fake(*args, **kwargs) -> AppBuild:
            calls.append(name)
            return build

        return fake


@pytest.fixture
def builds(tmp_path, monkeypatch) -> Builds:
    b = Builds(tmp_path)
    monkeypatch.setattr(inputs_mod, "build_app", b.counted(b.made, "app", b.app))
    monkeypatch.setattr(inputs_mod, "build_loadgen", b.counted(b.made, "loadgen", b.loadgen))
    monkeypatch.setattr(app_role, "build_app", b.counted(b.fallback, "app", b.app))
    monkeypatch.setattr(loadgen_role, "build_loadgen", b.counted(b.fallback, "loadgen", b.loadgen))
    return b


def declare(steps, inv, hosts=None) -> list[dict[str, list]]:
    """Every phase's states for every targeted host, as the engine declares them before a run."""
    return [{h.name: list(step.states_for(h, inv)) for h in inv.select(hosts)} for step in steps]


def signature(states) -> list[tuple]:
    """A state's id and what it declares (a file's content by its digest; a function by its name)."""
    out = []
    for st in states:
        seen = sorted((k, v) for k, v in vars(st).items() if k != "content")
        out.append((st.id, type(st).__name__, re.sub(r" at 0x[0-9a-f]+", "", repr(seen))))
    return out


def test_a_run_of_the_lab_builds_the_app_and_locust_once_each(inv, builds):
    steps = phases(inventory=inv)
    declared = declare(steps, inv)
    assert sorted(builds.made) == ["app", "loadgen"]  # not once per host (two app hosts)
    assert builds.fallback == []
    app_wheels = [st for per_host in declared for st in per_host["web-01"] + per_host["web-02"] if ":wheel:" in st.id]
    assert len(app_wheels) == 4
    # the two hosts' wheel states share the bytes read once
    first, second = (st for st in app_wheels if st.id.endswith("foobar_app-1.0.0-py3-none-any.whl"))
    assert first.content is second.content


def test_the_inputs_are_made_when_the_engine_first_asks_for_states(inv, builds):
    steps = phases(inventory=inv)
    assert builds.made == []  # made inside the run (a failed build is the run's journaled error)
    declare(steps, inv)
    declare(steps, inv)
    assert sorted(builds.made) == ["app", "loadgen"]


@pytest.mark.parametrize(
    "roles, hosts, made",
    [
        (None, "lb-01", []),  # a run (or a dry-run) of the load balancer alone builds nothing
        (["haproxy", "nginx", "mysql"], None, []),  # no role that needs a wheel
        (["app"], "web-01", ["app"]),
        (None, "web-*", ["app"]),
        (["loadgen"], None, ["loadgen"]),
        (None, "loadgen-01", ["loadgen"]),
        (["app"], "loadgen-01,lb-01", []),
    ],
)
def test_only_what_the_targeted_hosts_apply_is_built(inv, builds, roles, hosts, made):
    declare(phases(roles, inventory=inv, hosts=hosts), inv, hosts)
    assert builds.made == made
    assert builds.fallback == []


def test_inputs_for_builds_only_what_is_needed(inv, builds):
    none = inputs_for(inv, [inv.host("lb-01")])
    assert (none.app, none.loadgen, dict(none.wheels)) == (None, None, {})
    both = inputs_for(inv, inv.select(None))
    assert both.app == builds.app and both.loadgen == builds.loadgen
    assert set(both.wheels) == {*builds.app.wheels, *builds.loadgen.wheels}
    assert both.content(builds.app.wheels[0]) == builds.app.wheels[0].read_bytes()
    assert inputs_for(inv, inv.select(None), ["nginx"]) == StackInputs()
    assert sorted(builds.made) == ["app", "loadgen"]


@pytest.mark.parametrize("hosts", [None, "web-02", "lb-01,loadgen-01"])
def test_the_states_are_those_a_role_that_builds_for_itself_declares(inv, builds, hosts):
    new = declare(phases(inventory=inv, hosts=hosts), inv, hosts)
    old = declare(phases(), inv, hosts)  # no inventory: each role builds at each call, as before
    assert builds.fallback.count("app") == sum("app" in h.roles for h in inv.select(hosts))
    assert [{h: signature(s) for h, s in p.items()} for p in new] == [
        {h: signature(s) for h, s in p.items()} for p in old
    ]
    for p_new, p_old in zip(new, old, strict=True):
        for host in p_new:
            assert [getattr(st, "sha256", None) for st in p_new[host]] == [
                getattr(st, "sha256", None) for st in p_old[host]
            ]


def test_states_for_without_inputs_still_builds_for_the_call(inv, builds):
    ids = [st.id for st in states_for(inv.host("web-01"), inv, ["app"])]
    assert "app:wheel:foobar_app-1.0.0-py3-none-any.whl" in ids
    assert builds.fallback == ["app"] and builds.made == []


def test_a_role_given_the_inputs_builds_and_reads_nothing(inv, builds, monkeypatch):
    given = inputs_for(inv, inv.select(None))
    builds.made.clear()

    def no_read(self):
        raise AssertionError(f"read {self} in a role")

    monkeypatch.setattr(Path, "read_bytes", no_read)
    app_states = ROLES["app"].states(inv.host("web-01"), inv, given)
    loadgen_states = ROLES["loadgen"].states(inv.host("loadgen-01"), inv, given)
    assert builds.made == [] and builds.fallback == []
    wheel_ids = [st.id for st in [*app_states, *loadgen_states] if ":wheel:" in st.id]
    assert wheel_ids == [
        "app:wheel:foobar_app-1.0.0-py3-none-any.whl",
        "app:wheel:PyMySQL-1.2.4-py3-none-any.whl",
        "loadgen:wheel:locust-2.0-py3-none-any.whl",
    ]
    assert states_for(inv.host("web-02"), inv, inputs=given) and builds.fallback == []
