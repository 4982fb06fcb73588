"""The load balancer pair: what each load balancer's VRRP and HAProxy say (status), a planned move
of the floating address (handover), and the phase that changes the pair one load balancer at a
time, each only while its peer serves."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from ..core.engine import Phase
from ..core.errors import LBError
from ..core.result import Result, Status
from ..core.run import Run
from ..core.shell import cmd
from ..core.states import State
from .topology import lb_hosts, vip

TRACK_DIR = "/run/foobar-ops/keepalived"
HAPROXY_DOWN = f"{TRACK_DIR}/haproxy-down"
HANDOVER = f"{TRACK_DIR}/handover"
#: keepalived's VRRP states by the number its JSON dump gives (vrrp.h: INIT 0, BACKUP 1, MASTER 2,
#: FAULT 3). Only MASTER and BACKUP can hold the address: an instance still in INIT (keepalived just
#: started), or a load balancer whose keepalived does not run, is reported FAULT.
VRRP_STATES = {1: "BACKUP", 2: "MASTER"}
#: keepalived's JSON dump, asked with its signal; one asker at a time on a host (the file is shared)
_JSON = "/tmp/keepalived.json"
_ASK_JSON = f"""exec 7>>{TRACK_DIR}.json.lock; flock -w 5 7 || exit 0
rm -f {_JSON}; kill -$(keepalived --signum=JSON) "$(cat /run/keepalived.pid)" 2>/dev/null || exit 0
python3 - <<'PY'
import json, time
for _ in range(60):
    try:
        with open("{_JSON}") as f:
            print("json\\t" + json.dumps(json.load(f)))
        break
    except (OSError, ValueError):
        time.sleep(0.05)
PY"""

Emit = Callable[[Result], None]


@dataclass
class LBState:
    """What one load balancer says of itself.

    host: its inventory name.
    vrrp_state: MASTER, BACKUP or FAULT (FAULT too when keepalived does not run).
    haproxy: systemd's word for HAProxy (active, inactive, failed, ...).
    keepalived: systemd's word for keepalived.
    priority: the VRRP priority in effect (None when keepalived does not run).
    holds_vip: the floating address is on one of its interfaces.
    handover: it is taken out for a planned handover.
    error: why it could not be asked, or None.
    """

    host: str
    vrrp_state: str = "FAULT"
    haproxy: str = "unknown"
    keepalived: str = "unknown"
    priority: int | None = None
    holds_vip: bool = False
    handover: bool = False
    error: str | None = None

    @property
    def serves(self) -> bool:
        """HAProxy runs (a reload in progress counts: the old process serves until the new one
        does) and keepalived is ready to hold the address (MASTER or BACKUP)."""
        return (
            self.error is None and self.haproxy in ("active", "reloading") and self.vrrp_state in ("MASTER", "BACKUP")
        )

    def why_not(self) -> str:
        """Why it does not serve, in a few words."""
        return self.error or f"haproxy {self.haproxy}, {self.vrrp_state}"

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PairStatus:
    """The pair as its members see it.

    vip: the floating address.
    lbs: each load balancer's LBState, in inventory order.
    ok: exactly one holds the address and every one serves.
    """

    vip: str | None
    lbs: list[LBState] = field(default_factory=list)

    @property
    def holders(self) -> list[str]:
        return [lb.host for lb in self.lbs if lb.holds_vip]

    @property
    def holder(self) -> str | None:
        return self.holders[0] if len(self.holders) == 1 else None

    @property
    def ok(self) -> bool:
        return len(self.holders) == 1 and all(lb.serves for lb in self.lbs)

    def lb(self, name: str) -> LBState:
        """One load balancer's state."""
        return next(lb for lb in self.lbs if lb.host == name)

    def down(self, but: str | None = None) -> list[LBState]:
        """The load balancers that do not serve (but: leave this one out)."""
        return [lb for lb in self.lbs if not lb.serves and lb.host != but]

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "vip": self.vip, "holder": self.holder, "lbs": [lb.as_json() for lb in self.lbs]}

    def line(self) -> str:
        """One line: who holds the address, and what is wrong when something is."""
        if not self.holders:
            said = f"nobody holds {self.vip}"
        elif len(self.holders) > 1:
            said = f"{len(self.holders)} load balancers hold {self.vip} ({', '.join(self.holders)}): split brain"
        else:
            said = f"{self.holder} holds {self.vip}"
        return "; ".join([said, *(f"{lb.host} does not serve ({lb.why_not()})" for lb in self.down())])


def state_script(address: str | None) -> str:
    """The one command that asks a load balancer for its HAProxy, keepalived and VRRP state.

    address: the floating address (None: the stack has none; nobody holds it).
    """
    holds = (
        f"if ip -o -4 addr show | grep -qF {cmd(' ' + address + '/')}; then echo 'holds\t1'; else echo 'holds\t0'; fi"
        if address
        else "echo 'holds\t0'"
    )
    return "\n".join(
        [
            "printf 'haproxy\\t%s\\n' \"$(systemctl is-active haproxy 2>/dev/null)\"",
            "ka=$(systemctl is-active keepalived 2>/dev/null); printf 'keepalived\\t%s\\n' \"$ka\"",
            f"printf 'handover\\t%s\\n' \"$(cat {HANDOVER} 2>/dev/null)\"",
            holds,
            f'if [ "$ka" = active ]; then (\n{_ASK_JSON}\n); fi',
        ]
    )


def parse_state(name: str, text: str) -> LBState:
    """Read what state_script printed on a load balancer.

    name: the load balancer.
    text: its output.
    """
    said = dict(line.split("\t", 1) for line in text.splitlines() if "\t" in line)
    state = LBState(
        name,
        haproxy=said.get("haproxy", "unknown") or "unknown",
        keepalived=said.get("keepalived", "unknown") or "unknown",
        holds_vip=said.get("holds") == "1",
        handover=said.get("handover", "").strip() not in ("", "0"),
    )
    try:
        dump = json.loads(said["json"]) if "json" in said else []
    except ValueError:
        dump = []
    instance = dump[0].get("data", {}) if dump and isinstance(dump[0], dict) else {}
    if instance:
        state.vrrp_state = VRRP_STATES.get(int(instance.get("state", 3)), "FAULT")  # INIT too
        state.priority = int(instance.get("effective_priority", instance.get("base_priority", 0)))
    return state


def ask(remote: Any, host: Any, address: str | None) -> LBState:
    """Ask one load balancer for its state; an unreachable one is a FAULT with the error said.

    remote: its connection (a Remote).
    host: its inventory Host.
    address: the floating address.
    """
    try:
        out = remote.run(cmd("sh", "-c", state_script(address)), sudo=host.user != "root")
    except Exception as err:  # noqa: BLE001 - a load balancer that cannot be asked is reported as such
        return LBState(host.name, error=str(err) or type(err).__name__)
    if not out.ok:
        return LBState(host.name, error=f"{out.error}: {(out.stderr or out.stdout).strip()[-200:]}")
    return parse_state(host.name, out.stdout)


def pair_status(inventory: Any, remotes: dict[str, Any]) -> PairStatus:
    """Ask every load balancer at once for its state.

    inventory: the Inventory.
    remotes: load balancer name -> its connection.
    """
    from concurrent.futures import ThreadPoolExecutor

    address = vip(inventory)
    hosts = lb_hosts(inventory)
    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        states = list(pool.map(lambda h: ask(remotes[h.name], h, address), hosts))
    return PairStatus(address, states)


def pair_phase(name: str, states_for: Callable[[Any, Any], Sequence[State[Any]]]) -> Phase:
    """Return a phase that changes the load balancers one at a time, each only while every other
    load balancer serves (when it serves itself: a first deploy has nothing to lose).

    name: the phase's name.
    states_for: function (host, inventory) -> the host's states.
    """
    return Phase(name, states_for, serial=True, guard=peer_serves, also_locks=lb_hosts)


def _result(host: Any, ok: bool, comment: str, started: float) -> Result:
    return Result.check(host.name, "lb-pair:peer", "peer serves", "lb.pair", ok, comment, started)


@contextmanager
def peer_serves(run: Run, host: Any, emit: Emit) -> Iterator[None]:
    """Let a load balancer change only while every other load balancer serves (HAProxy active and
    keepalived MASTER or BACKUP), unless it does not serve itself (nothing to lose); else the
    change is refused with a failed result naming the peer.

    run: the run (its connections to the load balancers, which it has locked).
    host: the load balancer about to change.
    emit: where the check's result goes.
    """
    balancers = lb_hosts(run.inventory)
    if len(balancers) < 2:
        yield
        return
    started = time.perf_counter()
    remotes = {h.name: run.remote(h) for h in balancers}
    seen = pair_status(run.inventory, remotes)  # all at once
    down = seen.down(but=host.name)
    deadline = time.monotonic() + PEER_SETTLE
    while down and seen.lb(host.name).serves and time.monotonic() < deadline:  # e.g. the peer just reloaded
        time.sleep(0.5)
        seen = pair_status(run.inventory, remotes)
        down = seen.down(but=host.name)
    if down and seen.lb(host.name).serves:
        why = "; ".join(f"{lb.host} does not serve ({lb.why_not()})" for lb in down)
        emit(_result(host, False, f"not changed while its peer is down: {why}", started))
        raise LBError(f"{host.name} is not changed while its peer is down: {why}")
    said = ", ".join(f"{lb.host} {lb.vrrp_state.lower()}" for lb in seen.lbs if lb.host != host.name)
    emit(_result(host, True, f"peers serve ({said}): {host.name} changes alone", started))
    yield


# ---- status and a planned handover, on connections of their own ---------------------------------


class PairRemotes:
    """A connection to every load balancer, closed together (a context manager).

    inventory: the Inventory.
    """

    def __init__(self, inventory: Any) -> None:
        from ..core.ssh import Remote  # paramiko: imported by what connects

        hosts = lb_hosts(inventory)
        if not hosts:
            raise LBError(f"{inventory.path}: no host has the haproxy role")
        self.inventory = inventory
        self.hosts = {h.name: h for h in hosts}
        self.remotes = {h.name: Remote(h, inventory) for h in hosts}

    def status(self) -> PairStatus:
        """Every load balancer's state, asked at once."""
        return pair_status(self.inventory, self.remotes)

    def close(self) -> None:
        for remote in self.remotes.values():
            remote.close()

    def __enter__(self) -> "PairRemotes":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Handover:
    """What a planned move of the floating address did (or, with test, would do).

    ok: the target holds the address and the old holder is back as its standby (test: it could).
    vip, source, target: the address, who held it, who was asked to take it.
    test: nothing was changed.
    changed: the address moved.
    seconds: from the old holder's step back to the target holding the address.
    line: one sentence.
    status: the pair's status at the end.
    """

    ok: bool
    vip: str | None
    source: str | None
    target: str
    test: bool
    changed: bool
    seconds: float
    line: str
    status: PairStatus | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "vip": self.vip,
            "from": self.source,
            "to": self.target,
            "test": self.test,
            "changed": self.changed,
            "seconds": self.seconds,
            "line": self.line,
            "status": self.status.as_json() if self.status else None,
        }

    def __str__(self) -> str:
        return f"{'OK' if self.ok else 'FAILED'} {self.line}"


#: how long a load balancer's change waits for a peer that does not serve (one just changed by
#: the same run may still be settling) before it is refused
PEER_SETTLE = 10.0
#: the holder's own table during a handover: new connections to the floating address wait
HOLD_TABLE = "foobar_handover"


def _step_back_script(address: str, run_id: str) -> str:
    """The holder's side of a handover, run on the holder by systemd (so it finishes even when the
    controller dies or its connection is cut):
    1. new connections to the address are held back (their SYN dropped: the client sends it again a
       second later, and by then it reaches the new holder), while those in flight end (a TLS
       handshake and its request take longer than a plain request, and one cut in the middle by
       the move would fail); at most 0.3 s, so that the hold, the step out and the peer's takeover
       (about 0.6 s) are over before a held-back client sends its SYN again;
    2. step out of the election, wait until the address has left (at most 10 s);
    3. let new connections in again, hold out 2 s more while the peer settles as master, then step
       back in as its standby (nopreempt: it does not take the address back).
    The hold is removed however the script ends; without nft (no firewall role), step 1 is skipped."""
    has = f"ip -o -4 addr show | grep -qF {cmd(' ' + address + '/')}"
    table = f"inet {HOLD_TABLE}"
    hold = (
        f"nft add table {table} && nft add chain {table} hold '{{ type filter hook input priority -10; }}' "
        f"&& nft add rule {table} hold ip daddr {address} meta l4proto tcp ct state new drop"
    )
    in_flight = f"ss -Htn state established src {address} | grep -q ."
    body = (
        f"trap 'nft delete table {table} 2>/dev/null; true' EXIT; mkdir -p {TRACK_DIR}; "
        f"if command -v nft >/dev/null; then nft delete table {table} 2>/dev/null; {hold}; i=0; "
        f"while {in_flight} && [ $i -lt 3 ]; do sleep 0.1; i=$((i + 1)); done; fi; "
        f"echo 1 > {HANDOVER}; i=0; "
        f"while {has} && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done; "
        f"nft delete table {table} 2>/dev/null; sleep 2; echo 0 > {HANDOVER}"
    )
    unit = f"foobar-lb-handover-{run_id}"
    return cmd("systemd-run", "--quiet", "--collect", f"--unit={unit}", "sh", "-c", body)


def handover(
    pair: PairRemotes,
    target: str,
    *,
    test: bool = False,
    wait: float = 30.0,
    run_id: str = "manual",
    emit: Emit | None = None,
) -> Handover:
    """Move the floating address to `target` for maintenance of its holder: wait (up to `wait`
    seconds) until the target serves, then have the holder step out of the election so the target
    takes over at once, and the holder step back in as its standby. Safe at every step: the holder's
    side runs on the holder by itself and always steps back in.

    pair: connections to the load balancers.
    target: the load balancer to take the address.
    test: say what would happen (the target must serve now); change nothing.
    wait: seconds to wait for the target to serve (the move itself is given 12 s).
    run_id: names the holder's step (a unit of its own).
    emit: where the move's result goes (the journal).
    """
    inventory = pair.inventory
    if target not in pair.hosts:
        raise LBError(
            f"no load balancer named {target!r} in {inventory.path} (load balancers: {', '.join(pair.hosts)})"
        )
    address = vip(inventory)
    if not address:
        raise LBError(f"{inventory.path}: stack.vip is not set: there is no floating address to hand over")
    status = pair.status()
    if len(status.holders) > 1:
        raise LBError(f"refusing to hand over: {status.line()}")
    source = status.holder
    if source == target:
        return Handover(True, address, source, target, test, False, 0.0, f"{target} already holds {address}", status)
    status = _until(pair, lambda st: st.lb(target).serves, 0.0 if test else wait)
    mine = status.lb(target)
    if not mine.serves:
        raise LBError(
            f"{target} does not serve ({mine.why_not()}) after {0 if test else wait:g} s: "
            f"the address stays on {source or 'nobody'}"
        )
    if test:
        line = f"would move {address} from {source or 'nobody'} to {target} ({target} serves, {mine.vrrp_state})"
        return Handover(True, address, source, target, True, False, 0.0, line, status)
    if source is None:
        raise LBError(f"nobody holds {address}: nothing to hand over (see `foobar-ops lb status`)")
    holder = pair.hosts[source]
    moved_at = time.monotonic()
    out = pair.remotes[source].run(_step_back_script(address, run_id), sudo=holder.user != "root")
    if not out.ok:
        raise LBError(f"{source}: could not step out of the election: {out.error}: {(out.stderr or '').strip()}")
    status = _until(pair, lambda st: st.holders == [target], 12.0)
    took = time.monotonic() - moved_at
    ok = status.holders == [target]
    status = _until(pair, lambda st: st.ok, 10.0) if ok else status
    if not ok:
        line = f"{target} did not take {address} within 12 s ({status.line()}); {source} steps back in by itself"
    else:
        after = f"; {source} is its standby again" if status.ok else f", but {status.line()}"
        line = f"{address} moved from {source} to {target} in {took:.2f} s{after}"
    if emit is not None:
        emit(
            Result(
                target,
                "vrrp:handover",
                address,
                "vrrp.handover",
                Status.CHANGED if ok else Status.FAILED,
                changes={"old": source, "new": target} if ok else {},
                comment=line,
                duration_ms=round(took * 1000, 1),
            )
        )
    return Handover(ok and status.ok, address, source, target, False, ok, round(took, 2), line, status)


def _until(pair: PairRemotes, done: Callable[[PairStatus], bool], timeout: float) -> PairStatus:
    """Ask the pair every 0.2 s until done(status) or timeout seconds (0: once); return the last status."""
    deadline = time.monotonic() + timeout
    while True:
        status = pair.status()
        if done(status) or time.monotonic() >= deadline:
            return status
        time.sleep(0.2)
