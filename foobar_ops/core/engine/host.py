"""One host's apply: gather every state's fact in one command, plan each state (pure), apply the
ones that must change in order, honour requisites and react to watched changes. Every result goes
to a callback (the journal) as soon as it is known."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConnectionFailed, FactError, FoobarOpsError, StateError
from ..onhost import OWED
from ..result import Result, Status
from ..secrets import mask_deep, mask_known
from ..shell import STAGE_VAR, cmd
from ..ssh import Remote, stage
from ..states.base import Plan, State
from .wire import (
    VALIDATION_FAILED,
    apply_section,
    decode,
    fact_tag,
    gather_script,
    is_packed,
    owed_marker,
    packed,
    read_back_script,
    script_head,
    section,
    sections,
)

Emit = Callable[[Result], None]

__all__ = ["HostApply", "Emit", "Gathered", "NOT_PLANNED", "VALIDATION_FAILED", "check_states", "digest", "drift"]


#: where a shell names the line of its script in an error ("sh: 23: mysql: not found"): the same
#: error at another line of another run's script is the same thing seen
_SHELL_LINE = re.compile(r"\b(sh|dash|bash): (?:line )?\d+: ")


def _canonical(value: Any) -> Any:
    """Return a JSON-able form of a fact value or plan, with bytes as their hash."""
    if isinstance(value, bytes):
        return {"sha256": hashlib.sha256(value).hexdigest()}
    if isinstance(value, FactError):
        return {"error": _SHELL_LINE.sub(r"\1: ", str(value))}
    if callable(value):
        return {"deferred": True}  # produced when applied (e.g. a copy of another host's data)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def digest(state: State[Any], fact: Any) -> str:
    """Return a digest of what a state saw (the steady part of its fact, see State.steady) and
    would do (its plan, less the comment that only describes it): equal digests mean the host is
    as it was when planned, and the same changes would be made."""
    seen: Any = fact
    try:
        plan: Any = None
        if not isinstance(fact, FactError):
            made = state.plan(fact)
            plan = {"changes": made.changes, "commands": made.commands, "diff": made.diff, "error": made.error}
            plan["uploads"] = sorted(made.uploads)
            seen = state.steady(fact)
    except Exception as err:  # noqa: BLE001 - a plan that cannot be made is part of what was seen
        plan = {"error": f"{type(err).__name__}: {err}"}
    blob = json.dumps([state.kind, state.id, _canonical(seen), _canonical(plan)], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


NOT_PLANNED = "(not in the plan)"


def drift(expected: dict[str, str], found: dict[str, str]) -> str | None:
    """Return how a host's states differ from a saved plan (None when they match)."""
    for state_id, seen in found.items():
        if expected.get(state_id, NOT_PLANNED) == NOT_PLANNED:
            return f"state {state_id} was not in the plan"
        if expected[state_id] != seen:
            return f"{state_id} drifted since the plan was made (the host or the declared state changed)"
    missing = [i for i in expected if i not in found]
    return f"state {missing[0]} of the plan is no longer declared" if missing else None


def check_states(host: str, states: Sequence[State[Any]]) -> None:
    """Refuse duplicate ids and requisites that name no earlier state, naming host and state."""
    seen: set[str] = set()
    for st in states:
        if st.id in seen:
            raise StateError(f"host {host}: state id {st.id!r} is declared twice")
        for kind in ("require", "watch", "onchanges"):
            for ref in getattr(st, kind):
                if ref not in seen:
                    raise StateError(
                        f"host {host}: state {st.id!r}: {kind} names {ref!r}, which is not a state declared before it"
                    )
        seen.add(st.id)


def _masked(value: Any) -> Any:
    """Return value (JSON-able) with every known secret masked."""
    return mask_deep(json.loads(json.dumps(value, default=str)))


def run_script(remote: Any, host: Any, script: str, timeout: float | None = None) -> Any:
    """Run a script (starting with wire.script_head) as root on a host: one round trip; return
    the command's outcome with its output decoded and secrets masked. A lost connection raises
    ConnectionFailed, a refused sudo SudoError.

    remote: the host's Remote.
    host: the inventory Host (a user other than root goes through sudo).
    script: the script.
    timeout: seconds before it is abandoned (default: the host's command timeout).
    """
    line = packed(script)
    compressed = is_packed(line)
    out = remote.run(line, sudo=host.user != "root", mask=not compressed, timeout=timeout)  # masked once readable
    if compressed:
        text, code, _ = decode(out.stdout, True)
        out.stdout = mask_known(text)
        if out.ok and code is None:
            out.outcome, out.exit_code, out.error = "failed", None, "its output came back incomplete"
        elif out.ok and code != 0:
            out.outcome, out.exit_code, out.error = "failed", code, f"exit code {code}"
    return out


@dataclass
class Gathered:
    """Facts already gathered for a host (by the command that took its run lock, or the run's
    opening command in a dry-run): the sections of one gather of every phase's states.

    parts: tag -> (output, exit code), as sections() decodes them.
    offset: the index, in that gather, of the first state of the phase at hand.
    why: what to add to a fact's error when its section is missing (the command's own error).
    """

    parts: dict[str, tuple[str, int]]
    offset: int = 0
    why: str = ""


class HostApply:
    """Apply an ordered list of states to one host (or, in test mode, plan them).

    host: the inventory Host.
    states: its states, in order (checked with check_states beforehand).
    remote: the host's Remote.
    test: plan only; change nothing.
    emit: called with every Result as soon as it is known.
    expected: a saved plan's digests (state id -> digest): the host is applied only when all match.
    gathered: the facts of these states already gathered in this run (nothing changed since): the
        host is not asked again for them.
    opening: the run's opening gather of these states (before anything changed), when they are
        gathered afresh: a saved plan (expected) is held to it, not to what earlier phases of the
        run made.
    After execute(), `lost` holds the connection error when the host stopped answering mid-run.
    """

    def __init__(
        self,
        host: Any,
        states: Sequence[State[Any]],
        remote: Remote,
        test: bool,
        emit: Emit,
        expected: dict[str, str] | None = None,
        gathered: Gathered | None = None,
        opening: Gathered | None = None,
    ) -> None:
        self.gathered = gathered
        self.opening = opening
        self.host, self.states, self.remote, self.test, self.emit = host, list(states), remote, test, emit
        self.facts: dict[str, Any] = {}  # state id -> parsed fact value, or the FactError
        self.results: dict[str, Result] = {}
        self.become = host.user != "root"
        self.lost: ConnectionFailed | None = None
        #: a change of this run still running on the host after a cut and the wait for it: nothing
        #: more is done there beside it
        self.busy: str | None = None
        self.expected = expected  # state id -> digest from a saved plan: apply only when all match
        self.digests: dict[str, str] = {}  # state id -> digest of (fact, plan) as first seen
        self.drifted: str | None = None  # why the host was refused: it no longer matches the plan
        self.owed: set[str] = set()  # markers of reloads owed by a change of an earlier, cut-off run
        self.watches = any(st.watch for st in self.states)
        self._read: list[str] = []  # apply outcomes read back: removed from the host next time

    def _script(self, script: str, timeout: float | None = None) -> Any:
        """Run a script as root over the connection; one round trip. The script does not die with
        the connection (SIGHUP, SIGPIPE ignored) and first removes the outcomes already read.
        timeout: seconds before it is abandoned (default: the host's command timeout)."""
        out = run_script(self.remote, self.host, script_head(self._read) + script, timeout)
        self._read = []
        return out

    def _gather(self, states: Sequence[State[Any]], prefix: str = "") -> dict[str, tuple[str, int]]:
        """Run (prefix and) every state's fact command in one script; keep each parsed value."""
        facts = [st.fact() for st in states]
        out = self._script(prefix + gather_script([f.command() for f in facts], self.watches))
        parts = sections(out.stdout)  # a lost connection raised ConnectionFailed above
        why = "" if out.ok else f" ({out.error}: {mask_known((out.stderr or out.stdout).strip()[-300:])})"
        self._take(states, facts, Gathered(parts, 0, why))
        if prefix and "apply" not in parts:  # e.g. the command timed out: the state fails, the host stays
            parts["apply"] = (f"no result came back{why}", -1)
        return parts

    def _digests_at_start(self, opening: Gathered) -> dict[str, str]:
        """The digests of these states from the run's opening gather, taken before the run changed
        anything: what a saved plan is held to. (An earlier phase of the same run may have changed
        what these states see since, as the plan said it would: that is not drift.)"""
        facts, owed = self.facts, self.owed
        self.facts = {}
        try:
            self._take(self.states, [st.fact() for st in self.states], opening)
            return {st.id: digest(st, self.facts.get(st.id)) for st in self.states}
        finally:
            self.facts, self.owed = facts, owed

    def _take(self, states: Sequence[State[Any]], facts: Sequence[Any], got: Gathered) -> None:
        """Keep the parsed fact of every state (and the owed markers) from a gather's sections."""
        if "owed" in got.parts:
            self.owed = {f"{OWED}/{name}" for name in got.parts["owed"][0].split()}
        for i, (st, fact) in enumerate(zip(states, facts, strict=True)):
            self.facts[st.id] = self._parse(fact, got.parts.get(fact_tag(got.offset + i)), got.why)

    @staticmethod
    def _parse(fact: Any, part: tuple[str, int] | None, why: str = "") -> Any:
        if part is None:
            return FactError(f"{fact!r}: no output came back for it{why}")
        output, code = part
        if code != 0:
            return FactError(f"{fact!r}: its command failed (exit {code}): {mask_known(output.strip()[-300:])}")
        try:
            return fact.parse(output)
        except FactError as err:
            return err

    def execute(self) -> list[Result]:
        """Apply every state; return the results in order. Raises ConnectionFailed when the host
        cannot be reached at all (nothing was done); a host lost mid-run sets `lost` and its
        remaining states are reported as not run."""
        if self.states:
            at_start = None
            if self.expected is not None and self.gathered is None and self.opening is not None:
                at_start = self._digests_at_start(self.opening)
            if self.gathered is not None:  # asked already in this run, nothing changed since
                self._take(self.states, [st.fact() for st in self.states], self.gathered)
            else:
                self._gather(self.states)
            self.digests = {st.id: digest(st, self.facts.get(st.id)) for st in self.states}
            if self.expected is not None:
                self.drifted = drift(self.expected, at_start if at_start is not None else self.digests)
        for index, st in enumerate(self.states):
            started = time.perf_counter()
            if self.drifted is not None:
                first = index == 0
                result = self._result(
                    st,
                    Status.FAILED if first else Status.NOT_RUN,
                    f"refused: {self.drifted}" if first else "not run: the host was refused",
                )
            elif self.lost is not None:
                result = self._result(st, Status.NOT_RUN, f"not run: the host stopped answering ({self.lost.reason})")
            elif self.busy is not None:
                result = self._result(st, Status.NOT_RUN, f"not run: {self.busy}")
            else:
                result = self._guarded(index, st)
            self._finish(result, started)
        return list(self.results.values())

    def _guarded(self, index: int, st: State[Any]) -> Result:
        """Plan and apply one state; turn any error into its failed result."""
        try:
            return self._one(index, st)
        except ConnectionFailed as err:
            self.lost = err
            self.remote.close()
            return self._result(st, Status.FAILED, f"the host stopped answering: {err.reason}")
        except FoobarOpsError as err:
            return self._result(st, Status.FAILED, str(err))
        except Exception as err:  # noqa: BLE001 - one state's surprise must not end the run
            return self._result(st, Status.FAILED, f"{type(err).__name__}: {err}")

    def _result(self, st: State[Any], status: Status, comment: str = "", **kw: Any) -> Result:
        return Result(
            self.host.name,
            st.id,
            st.name,
            st.kind,
            status,
            comment=comment,
            idempotent=st.idempotent,
            digest=self.digests.get(st.id),
            **kw,
        )

    def _finish(self, result: Result, started: float) -> Result:
        result.duration_ms = round((time.perf_counter() - started) * 1000, 2)
        result.comment = mask_known(result.comment)
        result.diff = mask_known(result.diff) if result.diff else result.diff
        result.changes = _masked(result.changes)
        self.results[result.id] = result  # requisites look results up by the real id
        result.name, result.id = mask_known(result.name), mask_known(result.id)
        self.emit(result)
        return result

    def _changed(self, ids: Sequence[str]) -> list[str]:
        return [i for i in ids if i in self.results and self.results[i].status in (Status.CHANGED, Status.PENDING)]

    def _pending_ids(self) -> list[str]:
        return [r.id for r in self.results.values() if r.pending]

    def _one(self, index: int, st: State[Any]) -> Result:
        blocked = [i for i in st.require + st.watch + st.onchanges if self.results[i].failed]
        if blocked:
            return self._result(st, Status.NOT_RUN, f"not run: requisite {', '.join(blocked)} failed or did not run")
        if st.onchanges and not self._changed(st.onchanges):
            return self._result(st, Status.OK, "nothing to do: nothing in onchanges changed")
        fact = self.facts.get(st.id)
        plan = Plan(error=str(fact)) if isinstance(fact, FactError) else st.plan(fact)
        if plan.error and self.test and self._pending_ids():
            return self._result(
                st,
                Status.PENDING,
                "cannot be checked before earlier pending changes "
                f"({', '.join(self._pending_ids())}) are applied: {plan.error}",
                changes=plan.changes or {"pending": "after earlier changes"},
                diff=plan.diff,
            )
        if plan.error:
            return self._result(st, Status.FAILED, plan.error)
        if not plan.needed:
            result = self._result(st, Status.OK, plan.comment)
        elif self.test:
            result = self._result(
                st, Status.PENDING, f"would change: {plan.comment}", changes=plan.changes, diff=plan.diff
            )
        else:
            result = self._apply(index, st, plan)
        return self._react(st, result)

    def _apply(self, index: int, st: State[Any], plan: Plan) -> Result:
        folder = stage(self.remote, plan.uploads) if plan.uploads else ""
        commands = list(plan.commands)
        later = self.states[index + 1 :]
        watchers = [w.id for w in later if st.id in w.watch]
        if watchers:  # until they have reloaded, the reloads this change calls for are owed
            commands.append(f"mkdir -p {OWED}; touch " + " ".join(cmd(owed_marker(w)) for w in watchers))
        if st.watch and "active" in (plan.changes.get("new") or {}):  # started: new content is live
            commands.append(cmd("rm", "-f", owed_marker(st.id)))
        body = (
            f"set -e; {STAGE_VAR}={cmd(folder)}; trap 'rm -rf \"${STAGE_VAR}\"' EXIT; " if folder else "set -e; "
        ) + "\n".join(commands)
        token = uuid.uuid4().hex[:16]
        note = ""
        try:
            parts = self._gather(later + [st], prefix=apply_section(token, body))
        except ConnectionFailed as err:
            back = self._read_back(token, err, later + [st])
            if back is None:  # cut before the change began: nothing was done; do it now, once
                self._read.append(token)
                token = uuid.uuid4().hex[:16]
                back = self._gather(later + [st], prefix=apply_section(token, body))
                note = f" (made again after the connection was cut before it began: {err.reason})"
            else:
                note = f" (outcome read back after the connection was cut: {err.reason})"
            parts = back
        output, code = parts.get("apply", ("", -1))
        if "apply" in parts and code != -1:
            self._read.append(token)
        keep = {"changes": plan.changes, "diff": plan.diff}
        if code == VALIDATION_FAILED:
            lines = output.strip().splitlines()
            return self._result(st, Status.FAILED, "\n".join(lines[-20:]) or "validation failed", **keep)
        if code != 0:
            tail = "\n".join(output.strip().splitlines()[-10:])
            return self._result(st, Status.FAILED, f"failed (exit {code}): {tail}", **keep)
        return self._result(st, Status.CHANGED, plan.comment + note, **keep)

    def _read_back(
        self, token: str, cut: ConnectionFailed, states: Sequence[State[Any]]
    ) -> dict[str, tuple[str, int]] | None:
        """The connection was cut while a change ran: connect again, wait for the change to end,
        read its output and exit code, and gather the later states' facts afresh; None when the
        change never began (the cut came first). Raises the ConnectionFailed when the host cannot
        be reached again (its outcome then stays unknown here; the host keeps it, and any reload
        it calls for stays owed to the next run)."""
        self.remote.close()
        wait = int(self.host.ssh.command_timeout)
        script = read_back_script(token, wait)
        try:
            answer = self._script(script, timeout=wait + 30).stdout  # outlasts the wait in the script
            got = sections(answer)
            if not got and "NOT-STARTED" in answer:
                return None
        except ConnectionFailed:
            raise ConnectionFailed(
                cut.host, f"{cut.reason}; the change's outcome could not be read back (it is kept on the host)"
            ) from None
        rc, out_part = got.get("rc"), got.get("out")
        running = re.search(r"^STILL-RUNNING (\d+) (\d+)$", answer, re.M)
        if running and (rc is None or rc[1] != 0):  # outlasted the wait: it goes on there, unknown here
            pid, waited = running.groups()
            self.busy = f"a change cut off earlier in this run is still running on the host (pid {pid})"
            return {
                "apply": (
                    f"the connection was cut mid-change, and the change is still running on the host after "
                    f"{waited} s more (pid {pid}): its outcome is unknown here; the next run waits for it to "
                    f"end before changing this host ({cut.reason})",
                    -1,
                )
            }
        if rc is None or rc[1] != 0 or not rc[0].strip().isdigit():
            return {
                "apply": (
                    f"the connection was cut mid-change and it ended without an outcome (interrupted, e.g. by a "
                    f"reboot): check the host ({cut.reason})",
                    -1,
                )
            }
        parts = self._gather(states)
        parts["apply"] = (
            (out_part[0] if out_part else "") + f"\n(read back after the connection was cut: {cut.reason})",
            int(rc[0].strip()),
        )
        return parts

    def _react(self, st: State[Any], result: Result) -> Result:
        """Reload (or restart) a watching state once when something it watches changed, or when
        an earlier run changed it and ended before the reload (an owed reload)."""
        changed = self._changed(st.watch)
        marker = owed_marker(st.id)
        owed = bool(st.watch) and marker in self.owed
        if not changed and not owed or result.failed:
            return result
        if result.changed and "active" in result.changes.get("new", {}):
            self.owed.discard(marker)
            return result  # it was just started: the new content is already live
        fact = self.facts.get(st.id)
        reaction = None if isinstance(fact, FactError) else st.react(fact)
        if not reaction:
            return result
        what, commands = reaction
        because = ", ".join(changed) if changed else "a change of an earlier run that ended before it"
        if self.test or result.pending:  # the reaction follows a pending change: say so
            why = f"{because} would change" if changed else f"owed by {because}"
            result.comment = f"{result.comment}; would {what}: {why}"
            if result.status is Status.OK and not changed:  # owed: nothing else in the plan shows it
                result.status = Status.PENDING
                result.changes = dict(result.changes or {}, watch={"would": what, "because": changed or ["owed"]})
            return result
        # the reaction in a subshell of its own: a script that ends early with `exit 0` still pays its debt
        body = "set -e; (\n" + "\n".join(commands) + "\n)\n" + cmd("rm", "-f", marker)
        out = self._script(section("react", body))
        output, code = sections(out.stdout).get("react", (out.stderr, out.exit_code or -1))
        result.changes = dict(result.changes or {}, watch={"done": what, "because": changed or ["owed"]})
        if code != 0:
            result.status, result.comment = Status.FAILED, f"{what} failed (exit {code}): {output.strip()[-500:]}"
        else:
            self.owed.discard(marker)
            result.status = Status.CHANGED
            why = f"{because} changed" if changed else f"owed by {because}"
            result.comment = f"{result.comment}; {what}ed: {why}".lstrip("; ")
        return result
