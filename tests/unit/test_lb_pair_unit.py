"""The load balancer pair without hosts: the keepalived role's configuration from the inventory
(and the inventory's bad values refused by name), what a load balancer says of itself read into its
state, every load balancer changed alike (an undone drain gives each back the state it had), the
guard that keeps a pair change from running while the peer is down, and a handover's test mode."""

from __future__ import annotations

import json
import re
from contextlib import suppress
from pathlib import Path
from types import SimpleNamespace

import pytest

from foobar_ops.core.errors import FoobarOpsError, InventoryError, LastServerUp, LBError
from foobar_ops.core.result import Status
from foobar_ops.stack import balancers, load_inventory, pair, topology
from foobar_ops.stack.roles import keepalived as keepalived_role
from foobar_ops.stack.roles import states_for
from foobar_ops.stack.topology import TopologyError
from tests.unit.inventories import lab_doc, write_doc

#: what keepalived 2.2.7 printed for its JSON dump on a lab load balancer (one instance, BACKUP)
DUMP = [
    {
        "data": {
            "iname": "foobar",
            "vrid": 51,
            "base_priority": 100,
            "effective_priority": 100,
            "state": 1,
            "wantstate": 1,
            "vips": ["10.77.0.50 dev host0 scope global"],
        },
        "stats": {"advert_rcvd": 12},
    }
]


def said(haproxy="active", keepalived="active", holds=False, state=1, handover=0, dump=True) -> str:
    """What pair.state_script prints on a load balancer."""
    lines = [f"haproxy\t{haproxy}", f"keepalived\t{keepalived}", f"handover\t{handover}", f"holds\t{int(holds)}"]
    if dump:
        lines.append("json\t" + json.dumps([{**DUMP[0], "data": {**DUMP[0]["data"], "state": state}}]))
    return "\n".join(lines) + "\n"


def inventory(tmp_path: Path, edit=None):
    doc = lab_doc()
    if edit:
        edit(doc)
    return load_inventory(write_doc(tmp_path, doc))


# ---- the inventory and the keepalived role ------------------------------------------------------


def config(inv, host: str) -> str:
    states = {st.id: st for st in states_for(inv.host(host), inv, ["keepalived"])}
    return states["keepalived:config"].content.decode()


def test_each_load_balancer_gets_its_priority_its_peer_and_the_address(tmp_path):
    inv = inventory(tmp_path)
    one, two = config(inv, "lb-01"), config(inv, "lb-02")
    assert re.search(r"^\s*priority 150$", one, re.M) and re.search(r"^\s*priority 100$", two, re.M)
    assert re.search(r"unicast_src_ip 10\.77\.0\.10\s+unicast_peer \{\s+10\.77\.0\.13\s+\}", one)
    assert re.search(r"unicast_src_ip 10\.77\.0\.13\s+unicast_peer \{\s+10\.77\.0\.10\s+\}", two)
    for text in (one, two):
        assert "10.77.0.50/32 dev host0" in text and "virtual_router_id 51" in text
        assert re.search(r"^\s*state BACKUP$", text, re.M) and re.search(r"^\s*nopreempt$", text, re.M)
        # failures are FAULTs (weight 0), never weight arithmetic that nopreempt would ignore
        assert re.search(r"track_file \{\s+haproxy_down weight 0\s+handover weight 0\s+\}", text)
        assert "vrrp_script" not in text and not re.search(r"^\s*vrrp_strict", text, re.M)
    states = {st.id: st for st in states_for(inv.host("lb-01"), inv, ["keepalived"])}
    assert states["keepalived:config"].validate == "keepalived -t -f {}"
    assert states["keepalived:service"].watch == ("keepalived:config",)


def test_a_priority_given_in_the_inventory_wins(tmp_path):
    inv = inventory(tmp_path, lambda d: d["hosts"]["lb-02"].setdefault("vars", {}).update(keepalived_priority=200))
    assert re.search(r"^\s*priority 200$", config(inv, "lb-02"), re.M)


@pytest.mark.parametrize(
    ("edit", "names"),
    [
        (lambda d: d["stack"].update(vip="10.77.0.500"), ["stack", "vip", "10.77.0.500"]),
        (lambda d: d["stack"].update(vip="10.77.0.50; reboot"), ["stack", "vip"]),
        (lambda d: d["stack"].update(vrrp_router_id=256), ["vrrp_router_id", "256"]),
        (lambda d: d["groups"]["lb"]["vars"].update(keepalived_interface="host0 x"), ["keepalived_interface"]),
        (lambda d: d["hosts"]["lb-01"].setdefault("vars", {}).update(keepalived_priority=255), ["keepalived_priority"]),
    ],
)
def test_a_bad_pair_value_is_refused_by_name_when_the_inventory_is_read(tmp_path, edit, names):
    with pytest.raises(InventoryError) as err:
        inventory(tmp_path, edit)
    for name in names:
        assert name in str(err.value)


def test_what_the_role_needs_from_the_inventory_is_named_when_missing(tmp_path):
    no_vip = inventory(tmp_path, lambda d: d["stack"].pop("vip"))
    with pytest.raises(TopologyError, match="stack.vip is not set"):
        keepalived_role.states(no_vip.host("lb-01"), no_vip)
    no_interface = inventory(tmp_path, lambda d: d["groups"]["lb"].pop("vars"))
    with pytest.raises(TopologyError, match="vars.keepalived_interface"):
        keepalived_role.states(no_interface.host("lb-01"), no_interface)
    alone = inventory(tmp_path, lambda d: d["hosts"]["lb-02"].update(roles=["haproxy"]))
    with pytest.raises(TopologyError, match="no other load balancer has it"):
        keepalived_role.states(alone.host("lb-01"), alone)


def test_the_site_is_reached_at_the_floating_address_or_the_only_load_balancer(tmp_path):
    assert topology.site_address(inventory(tmp_path)) == "10.77.0.50"
    two = inventory(tmp_path, lambda d: d["stack"].pop("vip"))
    with pytest.raises(TopologyError, match=r"2 load balancers \(lb-01, lb-02\) need a floating address"):
        topology.site_address(two)

    def one_lb(doc):
        doc["stack"].pop("vip")
        del doc["hosts"]["lb-02"]
        doc["groups"]["lb"]["hosts"] = ["lb-01"]

    assert topology.site_address(inventory(tmp_path, one_lb)) == "10.77.0.10"


# ---- what a load balancer says of itself ------------------------------------------------------


def test_a_load_balancers_words_are_read_into_its_state():
    state = pair.parse_state("lb-02", said(holds=False, state=1))
    assert (state.vrrp_state, state.priority, state.haproxy, state.holds_vip, state.serves) == (
        "BACKUP",
        100,
        "active",
        False,
        True,
    )
    assert pair.parse_state("lb-01", said(holds=True, state=2)).vrrp_state == "MASTER"
    assert pair.parse_state("lb-01", said(state=3)).vrrp_state == "FAULT"
    assert pair.parse_state("lb-01", said(state=0)).vrrp_state == "FAULT"  # INIT: not yet able to hold it
    stopped = pair.parse_state("lb-01", said(keepalived="inactive", dump=False))
    assert stopped.vrrp_state == "FAULT" and stopped.priority is None and not stopped.serves
    dead = pair.parse_state("lb-01", said(haproxy="failed", state=1))
    assert not dead.serves and dead.why_not() == "haproxy failed, BACKUP"
    assert pair.parse_state("lb-01", said(handover=1, state=3)).handover
    broken = pair.parse_state("lb-01", "haproxy\tactive\njson\t[{not json\n")
    assert broken.vrrp_state == "FAULT" and not broken.serves


def test_the_pair_is_ok_only_with_one_holder_and_every_one_serving():
    master, backup = pair.parse_state("lb-01", said(holds=True, state=2)), pair.parse_state("lb-02", said())
    ok = pair.PairStatus("10.77.0.50", [master, backup])
    assert ok.ok and ok.holder == "lb-01" and ok.line() == "lb-01 holds 10.77.0.50"
    doc = ok.as_json()
    assert set(doc) == {"ok", "vip", "holder", "lbs"} and doc["lbs"][1]["vrrp_state"] == "BACKUP"
    assert {"host", "vrrp_state", "haproxy", "priority"} <= set(doc["lbs"][0])
    split = pair.PairStatus("10.77.0.50", [master, pair.parse_state("lb-02", said(holds=True, state=2))])
    assert not split.ok and split.holder is None and "split brain" in split.line()
    nobody = pair.PairStatus("10.77.0.50", [pair.parse_state("lb-01", said(state=2)), backup])
    assert not nobody.ok and nobody.line() == "nobody holds 10.77.0.50"
    down = pair.PairStatus("10.77.0.50", [master, pair.parse_state("lb-02", said(haproxy="inactive"))])
    assert not down.ok and down.line() == "lb-01 holds 10.77.0.50; lb-02 does not serve (haproxy inactive, BACKUP)"


def test_the_state_script_quotes_the_address_and_asks_keepalived_once():
    script = pair.state_script("10.77.0.50")
    assert "grep -qF ' 10.77.0.50/'" in script and script.count("--signum=JSON") == 1
    assert "holds\t0" in pair.state_script(None)


# ---- every load balancer alike -----------------------------------------------------------------


class FakeHAProxy:
    """One load balancer's runtime API: its servers' statuses and every state change asked."""

    views: dict[str, dict[str, str]] = {}
    asked: list[tuple[str, str, str]] = []
    refuse: dict[str, BaseException] = {}

    def __init__(self, inventory, host=None, record=True, remote=None):
        self.host = SimpleNamespace(name=host)
        self.emit = None

    def set_state(self, backend, server, state, mark=None):
        FakeHAProxy.asked.append((self.host.name, server, state))
        if self.host.name in FakeHAProxy.refuse:
            raise FakeHAProxy.refuse[self.host.name]
        view = FakeHAProxy.views[self.host.name]
        before = view[server]
        view[server] = {"drain": "DRAIN", "maint": "MAINT", "ready": "UP"}[state]
        return before

    def close(self):
        pass


@pytest.fixture
def lbs(tmp_path, monkeypatch):
    monkeypatch.setattr(balancers, "HAProxy", FakeHAProxy)
    FakeHAProxy.views = {"lb-01": {"web-01": "UP", "web-02": "UP"}, "lb-02": {"web-01": "MAINT", "web-02": "UP"}}
    FakeHAProxy.asked, FakeHAProxy.refuse = [], {}
    return balancers.Balancers(inventory(tmp_path))


def test_a_change_refused_on_one_load_balancer_is_undone_on_the_other_to_what_it_was(lbs):
    FakeHAProxy.views["lb-01"]["web-01"] = "MAINT"  # an operator's maint there
    FakeHAProxy.refuse["lb-02"] = LastServerUp("lb-02: refusing to drain bk_web/web-01: it is the last server")
    with pytest.raises(LastServerUp, match="^lb-02: "):
        lbs.set_state("bk_web", "web-01", "drain")
    assert FakeHAProxy.views["lb-01"]["web-01"] == "MAINT"  # given back its own state, not ready
    assert FakeHAProxy.asked == [
        ("lb-01", "web-01", "drain"),
        ("lb-02", "web-01", "drain"),
        ("lb-01", "web-01", "maint"),
    ]


def test_a_drain_on_every_load_balancer_changes_each_once(lbs):
    lbs.set_state("bk_web", "web-02", "drain")
    assert {name: view["web-02"] for name, view in FakeHAProxy.views.items()} == {"lb-01": "DRAIN", "lb-02": "DRAIN"}


def test_a_ready_is_tried_on_every_load_balancer_and_the_first_error_raised_after(lbs):
    FakeHAProxy.refuse["lb-01"] = LBError("lb-01: connection refused")
    with pytest.raises(LBError, match="lb-01: connection refused"):
        lbs.ready("web-01")
    assert FakeHAProxy.views["lb-02"]["web-01"] == "UP"  # still put back on the other one


# ---- the pair guard and a handover's test mode --------------------------------------------------


class Remote:
    """A load balancer's connection that answers state_script with what it is given, and keeps
    every other command sent."""

    def __init__(self, text: str) -> None:
        self.text, self.sent = text, []

    def run(self, line, sudo=False):
        self.sent.append(line)
        return SimpleNamespace(ok=True, stdout=self.text if "--signum=JSON" in line else "", stderr="", error=None)

    def close(self):
        pass


def guard(inv, remotes, host="lb-01"):
    run = SimpleNamespace(inventory=inv, remote=lambda h: remotes[h.name])
    emitted = []
    entered = []
    with suppress(FoobarOpsError):
        with pair.peer_serves(run, inv.host(host), emitted.append):
            entered.append(host)
    return entered, emitted


@pytest.fixture
def settle(monkeypatch):
    monkeypatch.setattr(pair, "PEER_SETTLE", 1.0)  # how long a down peer is waited for


def test_a_load_balancer_is_not_changed_while_its_peer_is_down(tmp_path, settle):
    inv = inventory(tmp_path)
    entered, emitted = guard(inv, {"lb-01": Remote(said(holds=True, state=2)), "lb-02": Remote(said(haproxy="failed"))})
    assert entered == [] and [r.status for r in emitted] == [Status.FAILED]
    assert emitted[0].id == "lb-pair:peer" and "lb-02 does not serve (haproxy failed, BACKUP)" in emitted[0].comment
    unreachable = {"lb-01": Remote(said(holds=True, state=2)), "lb-02": SimpleNamespace(run=None)}
    entered, emitted = guard(inv, unreachable)
    assert entered == [] and emitted[0].status is Status.FAILED  # a peer that cannot be asked is down


def test_a_load_balancer_changes_while_its_peer_serves_or_when_it_serves_nothing_itself(tmp_path):
    inv = inventory(tmp_path)
    entered, emitted = guard(inv, {"lb-01": Remote(said(holds=True, state=2)), "lb-02": Remote(said())})
    assert entered == ["lb-01"] and emitted[0].status is Status.OK and "lb-02 backup" in emitted[0].comment
    first = {
        "lb-01": Remote(said(haproxy="inactive", keepalived="inactive", dump=False)),
        "lb-02": Remote(said(haproxy="inactive")),
    }
    assert guard(inv, first)[0] == ["lb-01"]  # a first deploy: nothing serves yet, nothing to lose


def test_a_peer_in_the_middle_of_a_reload_serves_and_one_that_settles_soon_is_waited_for(tmp_path, settle):
    inv = inventory(tmp_path)
    reloading = {"lb-01": Remote(said(holds=True, state=2)), "lb-02": Remote(said(haproxy="reloading"))}
    assert guard(inv, reloading)[0] == ["lb-01"]  # the old process serves until the new one does

    class Settling(Remote):  # down when first asked (just changed by the same run), then serving
        def run(self, line, sudo=False):
            out = super().run(line, sudo)
            self.text = said()
            return out

    settling = {"lb-01": Remote(said(holds=True, state=2)), "lb-02": Settling(said(keepalived="inactive"))}
    entered, emitted = guard(inv, settling)
    assert entered == ["lb-01"] and emitted[0].status is Status.OK


def test_a_handover_in_test_mode_only_asks(tmp_path):
    inv = inventory(tmp_path)
    remotes = {"lb-01": Remote(said(holds=True, state=2)), "lb-02": Remote(said())}
    pairing = pair.PairRemotes.__new__(pair.PairRemotes)
    pairing.inventory, pairing.hosts, pairing.remotes = inv, {h: inv.host(h) for h in remotes}, remotes
    plan = pair.handover(pairing, "lb-02", test=True)
    assert plan.ok and plan.test and not plan.changed and plan.source == "lb-01"
    assert all("--signum=JSON" in line for r in remotes.values() for line in r.sent)  # nothing but questions
    with pytest.raises(LBError, match=r"no load balancer named 'web-01' .*\(load balancers: lb-01, lb-02\)"):
        pair.handover(pairing, "web-01", test=True)
    remotes["lb-02"].text = said(haproxy="inactive")
    with pytest.raises(LBError, match="lb-02 does not serve .*the address stays on lb-01"):
        pair.handover(pairing, "lb-02", test=True)
