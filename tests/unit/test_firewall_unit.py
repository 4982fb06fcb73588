"""The firewall without hosts: the openings each host gets from the topology (and a host added to
the inventory reaching every rule that concerns it), the table rendered from them, bad values of
stack.firewall refused by name, the nft.table state's plan for each thing a host can say, the
commit-confirm guard (kept when a new connection gets in, put back at once when it does not), and the
paths `firewall check` measures with what each should show."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from foobar_ops.core.errors import FirewallError, InventoryError
from foobar_ops.core.result import Status
from foobar_ops.core.states.nft import NftInfo, NftTableFact, Table
from foobar_ops.stack import firewall as fw
from foobar_ops.stack import load_inventory
from foobar_ops.stack.firewall_check import CONTROL, plan_checks
from foobar_ops.stack.roles import host_roles, states_for
from foobar_ops.stack.topology import TopologyError
from tests.unit.inventories import lab_doc, write_doc


def inventory(tmp_path: Path, edit=None, firewall=True):
    doc = lab_doc()
    if firewall:
        doc["stack"]["firewall"] = {"admin_sources": ["10.77.0.1"], "confirm_timeout": 30}
    else:
        doc["stack"].pop("firewall", None)
    if edit:
        edit(doc)
    return load_inventory(write_doc(tmp_path, doc))


def ways_in(inv, host: str) -> dict[tuple[str, int | None], tuple[str, ...] | None]:
    return {(o.proto, o.port): o.sources for o in fw.openings(inv.host(host), inv)}


# ---- openings from the topology -------------------------------------------------------------------


def test_each_host_opens_what_its_roles_need_and_to_whom(tmp_path):
    inv = inventory(tmp_path)
    assert ways_in(inv, "lb-01") == {
        ("tcp", 22): ("10.77.0.1",),
        ("tcp", 80): None,
        ("tcp", 443): None,
        ("vrrp", None): ("10.77.0.13",),
    }
    assert ways_in(inv, "web-01") == {
        ("tcp", 22): ("10.77.0.1",),
        ("tcp", 80): ("10.77.0.10", "10.77.0.13"),
        ("tcp", 3306): ("10.77.0.12",),  # the other app and database host, not itself
    }
    assert ways_in(inv, "loadgen-01") == {("tcp", 22): ("10.77.0.1",)}


def test_a_host_added_to_the_inventory_reaches_every_rule_that_concerns_it(tmp_path):
    def grow(doc):
        doc["hosts"]["lb-03"] = {"address": "10.77.0.14", "roles": ["haproxy", "keepalived"]}
        doc["groups"]["lb"]["hosts"].append("lb-03")
        doc["hosts"]["app-03"] = {"address": "10.77.0.15", "roles": ["app"]}

    inv = inventory(tmp_path, grow)
    assert ways_in(inv, "web-02")[("tcp", 80)] == ("10.77.0.10", "10.77.0.13", "10.77.0.14")
    assert ways_in(inv, "web-02")[("tcp", 3306)] == ("10.77.0.11", "10.77.0.15")
    assert ways_in(inv, "lb-01")[("vrrp", None)] == ("10.77.0.13", "10.77.0.14")


def test_allow_entries_open_a_port_on_the_hosts_or_groups_they_name(tmp_path):
    def allow(doc):
        doc["stack"]["firewall"]["allow"] = [{"port": 3306, "from": ["10.77.0.1"], "to": ["web-01"]}]
        doc["stack"]["firewall"]["allow"].append({"port": 9100, "from": ["10.77.0.0/24"], "to": ["lb"]})

    inv = inventory(tmp_path, allow)
    web01 = [o for o in fw.openings(inv.host("web-01"), inv) if o.port == 3306]
    assert [o.sources for o in web01] == [("10.77.0.12",), ("10.77.0.1",)]
    assert ways_in(inv, "lb-02")[("tcp", 9100)] == ("10.77.0.0/24",)
    assert ("tcp", 9100) not in ways_in(inv, "web-02")


def test_the_table_drops_input_unless_an_opening_lets_it_in(tmp_path):
    inv = inventory(tmp_path)
    text = fw.render(inv.host("lb-02"), inv)
    assert text.startswith("table inet foobar {")
    assert "policy drop;" in text and "ct state established,related accept" in text and 'iif "lo" accept' in text
    assert 'ip saddr { 10.77.0.1 } tcp dport 22 accept comment "ssh from the admin sources"' in text
    assert "ip saddr { 10.77.0.10 } ip protocol 112 accept" in text
    assert 'tcp dport 443 accept comment "the site over https"' in text
    assert "flush ruleset" not in text


def test_ipv6_admin_sources_get_rules_of_their_own_family(tmp_path):
    def v6(doc):
        doc["stack"]["firewall"]["admin_sources"] = ["10.77.0.1", "fd00:77::/64"]

    text = fw.render(inventory(tmp_path, v6).host("web-01"), inventory(tmp_path, v6))
    assert "ip6 saddr { fd00:77::/64 } tcp dport 22 accept" in text and "ip saddr { 10.77.0.1 } tcp dport 22" in text


def test_every_host_gets_the_firewall_first_unless_it_opts_out(tmp_path):
    def opt_out(doc):
        doc["hosts"]["loadgen-01"]["vars"] = {"firewall": False}

    inv = inventory(tmp_path, opt_out)
    assert host_roles(inv.host("web-01"), inv) == ("firewall", "nginx", "app", "mysql")
    assert host_roles(inv.host("loadgen-01"), inv) == ("loadgen",)
    ids = [st.id for st in states_for(inv.host("lb-01"), inv, ["firewall"])]
    assert ids == ["firewall:package", "firewall:unit", "firewall:daemon-reload", "firewall:table"]
    plain = inventory(tmp_path, firewall=False)
    assert host_roles(plain.host("web-01"), plain) == ("nginx", "app", "mysql")


# ---- bad values are refused by name ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("firewall", "named"),
    [
        ({"admin_sources": ["10.77.0.1; flush ruleset"]}, "stack.firewall.admin_sources[0]"),
        ({"admin_sources": ["10.77.0.1/8"]}, "stack.firewall.admin_sources[0]"),  # host bits: a typo
        ({"admin_sources": "10.77.0.1"}, "stack.firewall.admin_sources"),
        ({"admin_sources": ["10.77.0.1"], "confirm_timeout": 1}, "stack.firewall.confirm_timeout"),
        ({"admin_sources": ["10.77.0.1"], "confrim_timeout": 30}, "stack.firewall"),
        ({"admin_sources": ["10.77.0.1"], "allow": [{"port": 70000, "from": ["10.77.0.1"], "to": ["web-01"]}]}, "port"),
        ({"admin_sources": ["10.77.0.1"], "allow": [{"port": 22, "from": ["10.77.0.1"], "to": ["web-01 ;"]}]}, "to"),
        ({"admin_sources": ["fe80::1%x } tcp dport 1-65535 accept"]}, "stack.firewall.admin_sources[0]"),
        ({"admin_sources": ["10.77.0.1"], "allow": [{"port": 22, "from": ["10.77.0.1"]}]}, "allow[0].to"),
    ],
)
def test_a_wrong_firewall_value_is_refused_naming_its_key(tmp_path, firewall, named):
    def put(doc):
        doc["stack"]["firewall"] = firewall

    with pytest.raises(InventoryError) as err:
        inventory(tmp_path, put)
    assert named in str(err.value)


def test_a_network_with_host_bits_is_refused_with_the_network_it_likely_meant(tmp_path):
    def typo(doc):
        doc["stack"]["firewall"]["admin_sources"] = ["10.77.0.1/24"]

    with pytest.raises(InventoryError, match=r"host bits set.*did you mean '10.77.0.0/24'"):
        inventory(tmp_path, typo)


def test_no_admin_source_and_an_unknown_allow_target_are_refused_before_any_host_is_touched(tmp_path):
    def empty(doc):
        doc["stack"]["firewall"] = {"admin_sources": []}

    with pytest.raises((InventoryError, TopologyError), match="admin_sources"):
        fw.settings(inventory(tmp_path, empty))

    def unknown(doc):
        doc["stack"]["firewall"]["allow"] = [{"port": 22, "from": ["10.77.0.1"], "to": ["web-09"]}]

    with pytest.raises(TopologyError, match=r"allow\[0\].to.*'web-09'"):
        fw.settings(inventory(tmp_path, unknown))


# ---- the nft.table state ---------------------------------------------------------------------------


def table(timeout=30) -> Table:
    return Table(
        "inet foobar",
        "table inet foobar {\n\tchain input {\n\t}\n}\n",
        persist="/etc/foobar-ops/firewall.nft",
        boot_unit="foobar-firewall.service",
        confirm_timeout=timeout,
        timer="foobar-firewall-rollback",
    )


def info(st: Table, **changed) -> NftInfo:
    wanted = {"live": "L1", "confirmed": (st.sha256, "L1"), "persisted": st.sha256, "boot": "enabled"}
    wanted["armed"] = False
    return NftInfo(**{**wanted, **changed})


def test_a_table_loaded_confirmed_and_kept_for_boot_is_left_alone():
    st = table()
    plan = st.plan(info(st))
    assert not plan.needed and plan.commands == []


@pytest.mark.parametrize(
    ("changed", "why"),
    [
        ({"live": None, "confirmed": None, "persisted": None, "boot": "disabled"}, "absent"),
        ({"live": "L2"}, "changed since its last load"),  # someone edited the live table
        ({"armed": True}, "not confirmed"),  # a run cut off after its load
        ({"confirmed": ("other", "L1")}, "to be replaced"),  # new rules
        ({"persisted": None}, "to be replaced"),
        ({"boot": "disabled"}, "to be replaced"),
    ],
)
def test_a_table_that_differs_is_checked_saved_armed_and_swapped_in_one_transaction(changed, why):
    st = table(12)
    plan = st.plan(info(st, **changed))
    assert plan.needed and why in plan.comment and "12 s" in plan.comment
    script = "\n".join(plan.commands)
    check, arm, load = (script.index(s) for s in ("nft -c -f", "systemd-run", 'nft -f "$FOOBAR_STAGE"/rules'))
    assert check < arm < load  # refused before anything is armed; armed before it loads
    assert "--on-active=12s" in script and "flush ruleset" not in script
    assert plan.uploads["rules"].decode().startswith("table inet foobar\ndelete table inet foobar\ntable inet foobar {")
    assert "exit 97" in script  # a refused candidate fails the state with nft's words, nothing loaded


def test_the_table_fact_reads_what_the_host_prints():
    fact = NftTableFact("inet foobar", "/etc/foobar-ops/firewall.nft", "foobar-firewall.service", "t")
    said = fact.parse("live=abc\nconfirmed=s1,abc\npersisted=s1\nboot=enabled\n\narmed=no\n")
    assert said == NftInfo("abc", ("s1", "abc"), "s1", "enabled", False)
    fresh = fact.parse("live=absent\nconfirmed=none\npersisted=absent\nboot=\narmed=no\n")
    assert fresh.live is None and fresh.confirmed is None and fresh.persisted is None


def test_a_table_state_refuses_what_is_not_a_table_of_its_own():
    with pytest.raises(Exception, match="table such as"):
        Table("inet foobar; flush ruleset", "x", persist="/p", boot_unit="u.service")
    with pytest.raises(Exception, match="must define the table itself"):
        Table("inet foobar", "flush ruleset\n", persist="/p", boot_unit="u.service")


# ---- the commit-confirm guard ------------------------------------------------------------------------


class Own:
    """The run's connection to the host: answers the confirm and rollback scripts."""

    def __init__(self, confirm="confirmed"):
        self.sent, self.confirm = [], confirm

    def run(self, line, sudo=False):
        self.sent.append(line)
        word = self.confirm if "enable --quiet" in line else "rolled back"
        return SimpleNamespace(ok=True, stdout=word + "\n", stderr="", error=None)


def guarded(inv, own, new_connection, monkeypatch):
    monkeypatch.setattr(fw, "_new_connection", lambda host, inventory: new_connection)
    run = SimpleNamespace(inventory=inv, remote=lambda h: own)
    emitted = []
    with fw.confirmed(run, inv.host("web-01"), emitted.append):
        pass
    return emitted


def test_rules_are_kept_only_once_a_new_connection_gets_in(tmp_path, monkeypatch):
    own = Own()
    emitted = guarded(inventory(tmp_path), own, None, monkeypatch)
    assert [r.status for r in emitted] == [Status.OK] and "kept for boot" in emitted[0].comment
    assert len(own.sent) == 1 and "systemctl stop foobar-firewall-rollback.timer" in own.sent[0]


def test_rules_that_lock_us_out_are_put_back_at_once_and_the_host_fails(tmp_path, monkeypatch):
    own = Own()
    with pytest.raises(FirewallError, match="would have locked foobar-ops out.*put back at once"):
        guarded(inventory(tmp_path), own, "timed out", monkeypatch)
    assert "rollback.nft" in own.sent[0] and "enable" not in own.sent[0]


def test_a_confirm_that_comes_after_the_host_rolled_back_fails(tmp_path, monkeypatch):
    with pytest.raises(FirewallError, match="confirm_timeout 30 s"):
        guarded(inventory(tmp_path), Own(confirm="late"), None, monkeypatch)


# ---- the paths firewall check measures ---------------------------------------------------------------


def test_the_check_names_every_path_and_what_the_rules_intend(tmp_path):
    inv = inventory(tmp_path)
    paths = {(src, host.name, port): want for src, _, host, port, want in plan_checks(inv, "10.77.0.1")}
    assert paths[("loadgen-01", "web-01", 80)] == "closed"  # the load generator goes through the site only
    assert paths[("loadgen-01", "web-01", 3306)] == "closed"
    assert paths[("loadgen-01", "lb-01", 80)] == "open"
    assert paths[("lb-01", "web-02", 3306)] == "closed"
    assert paths[("lb-01", "web-02", 80)] == "open"
    assert paths[("web-02", "web-01", 3306)] == "open"
    assert {want for (src, _, port), want in paths.items() if port == 22 and src == CONTROL} == {"open"}
    assert {want for (src, _, port), want in paths.items() if port == 22 and src != CONTROL} == {"closed"}
    assert not [k for k in paths if k[0] == k[1]]  # a host is not checked against itself
    assert len(paths) == (6 * 5 + 6) * 4  # 7 sources (6 hosts and this machine), 6 hosts, 4 ports (22, 80, 443, 3306)


class Probe:
    """A source host's connection that answers the probe with chosen words, or cannot be asked."""

    def __init__(self, words: dict[str, str] | None, host: str):
        self.words, self.host = words, SimpleNamespace(name=host)

    def run(self, line, timeout=None):
        if self.words is None:
            raise FirewallError(f"{self.host.name}: unreachable")
        import json

        return SimpleNamespace(ok=True, stdout=json.dumps(self.words) + "\n", stderr="", error=None)


def test_the_check_compares_what_each_source_saw_with_the_rules_and_names_who_was_not_asked(tmp_path):
    from foobar_ops.stack.firewall_check import check

    inv = inventory(tmp_path)
    targets = {h.name: h.address for h in inv.hosts.values()}
    seen = {
        name: {f"{addr} {port}": "timeout" for addr in targets.values() for port in (22, 80, 443, 3306)}
        for name in targets
    }
    seen["lb-01"]["10.77.0.11 80"] = "connected"  # allowed and answered: open, as intended
    seen["lb-01"]["10.77.0.13 443"] = "refused"  # allowed, nothing listens: still open
    seen["loadgen-01"]["10.77.0.11 80"] = "connected"  # the rules say closed: a difference
    remotes = {name: Probe(words, name) for name, words in seen.items()}
    remotes["web-02"] = Probe(None, "web-02")
    found = check(inv, remotes, timeout=0.5, from_control=False)
    by_path = {(c.source, c.to, c.port): c for c in found.checks}
    assert by_path[("lb-01", "web-01", 80)].ok and by_path[("lb-01", "lb-02", 443)].measured == "open"
    wrong = found.differences()
    assert ("loadgen-01", "web-01", 80) in {(c.source, c.to, c.port) for c in wrong}
    assert "web-02" in found.errors and not [c for c in found.checks if c.source == "web-02"]
    assert not found.ok and "not asked: web-02" in found.line()


@pytest.mark.parametrize("timeout", [0, 0.1, 11, float("nan")])
def test_a_check_timeout_out_of_range_is_refused_before_any_host_is_asked(tmp_path, timeout, monkeypatch):
    from foobar_ops.ops import firewall as firewall_op

    monkeypatch.setattr(firewall_op, "check", lambda *a, **k: pytest.fail("no host may be asked"))
    with pytest.raises(FirewallError, match="timeout=.* must be from 0.2 to 10 seconds"):
        firewall_op.firewall_check(inventory(tmp_path), timeout=timeout)
