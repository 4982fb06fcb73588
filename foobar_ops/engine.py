"""The engine: per host, gather facts in one batch, plan (pure), apply in order, honour
requisites; hosts in parallel. Every result goes to a callback (the journal) as it comes."""
from __future__ import annotations

import json
import re
import time
import uuid
from typing import Callable, Iterable

from .errors import ConnectionFailed, FoobarOpsError, HostUnreachable
from .result import Result
from .secrets import mask_deep, mask_known
from .shell import STAGE_VAR, cmd
from .ssh import Remote
from .states.base import State, StateError

_SECTION = re.compile(r"@@FBO (\S+) BEGIN\n(.*?)\n@@FBO \1 END (\d+)\n", re.S)
VALIDATION_FAILED = 97


def section(tag: str, body: str) -> str:
    """Return a script part whose output and exit code can be told apart from the others."""
    return f"printf '\\n@@FBO %s BEGIN\\n' {tag}\n( {body}\n) 2>&1 </dev/null\nprintf '\\n@@FBO %s END %d\\n' {tag} $?\n"


def sections(output: str) -> dict[str, tuple[str, int]]:
    """Parse script output into tag -> (output, exit code)."""
    return {m.group(1): (m.group(2), int(m.group(3))) for m in _SECTION.finditer(output)}


def check_states(host: str, states: list[State]) -> None:
    """Refuse duplicate ids and requisites that name no earlier state, naming host and state."""
    seen: set[str] = set()
    for st in states:
        if st.id in seen:
            raise StateError(f"host {host}: state id {st.id!r} is declared twice")
        for kind in ("require", "watch", "onchanges"):
            for ref in getattr(st, kind):
                if ref not in seen:
                    raise StateError(f"host {host}: state {st.id!r}: {kind} names {ref!r}, which is "
                                     "not a state declared before it")
        seen.add(st.id)


def _masked(value):
    """Return value (JSON-able) with every known secret masked."""
    return mask_deep(json.loads(json.dumps(value, default=str)))


class HostRun:
    """Apply an ordered list of states to one host.

    host: the inventory Host.
    states: its states, in order.
    remote: an open-able Remote for the host.
    test: plan only; change nothing.
    emit: called with every Result as soon as it is known.
    """

    def __init__(self, host, states: list[State], remote: Remote, test: bool, emit: Callable):
        self.host, self.states, self.remote, self.test, self.emit = host, states, remote, test, emit
        self.facts: dict[str, str] = {}
        self.results: dict[str, Result] = {}
        self.become = host.user != "root"

    def _script(self, script: str):
        """Run a script as root over the connection; one round trip."""
        return self.remote.run(cmd("sh", "-c", script), sudo=self.become)

    def _gather(self, states: Iterable[State], prefix: str = "") -> dict[str, tuple[str, int]]:
        todo = list(states)
        script = prefix + "".join(section(f"f{i}", st.probe()) for i, st in enumerate(todo))
        out = self._script(script)
        parts = sections(out.stdout)
        missing = [st.id for i, st in enumerate(todo) if f"f{i}" not in parts]
        if missing and (out.exit_code != 0 or out.error):
            raise ConnectionFailed(self.host.name, f"fact gathering failed: {out.error or ''} "
                                   f"{(out.stderr or out.stdout)[-500:]}")
        for i, st in enumerate(todo):
            if f"f{i}" in parts:
                self.facts[st.id] = parts[f"f{i}"][0]
        return parts

    def execute(self) -> list[Result]:
        """Run every state; return the results in order."""
        try:
            check_states(self.host.name, self.states)
            if self.states:
                self._gather(self.states)
        except FoobarOpsError as err:
            return [self._finish(Result(self.host.name, "__host__", self.host.address, "host.connect",
                                        False, comment=str(err)), 0.0)]
        for index, st in enumerate(self.states):
            started = time.perf_counter()
            try:
                result = self._one(index, st)
            except FoobarOpsError as err:
                result = Result(self.host.name, st.id, st.name, st.kind, False, comment=str(err))
                if isinstance(err, HostUnreachable):
                    self.remote.close()
            self._finish(result, started)
        return list(self.results.values())

    def _finish(self, result: Result, started: float) -> Result:
        result.duration_ms = round((time.perf_counter() - started) * 1000, 2) if started else 0.0
        result.comment = mask_known(result.comment)
        result.diff = mask_known(result.diff) if result.diff else result.diff
        result.changes = _masked(result.changes)
        self.results[result.id] = result  # requisites look results up by the real id
        result.name, result.id = mask_known(result.name), mask_known(result.id)
        self.emit(result)
        return result

    def _changed(self, ids) -> list[str]:
        return [i for i in ids if self.results.get(i) and (self.results[i].changed or self.results[i].pending)]

    def _pending_ids(self) -> list[str]:
        """Ids of the states so far that would change (test mode)."""
        return [r.id for r in self.results.values() if r.pending]

    def _one(self, index: int, st: State) -> Result:
        base = dict(host=self.host.name, id=st.id, name=st.name, state=st.kind, idempotent=st.idempotent)
        blocked = [i for i in st.require + st.watch + st.onchanges
                   if not self.results[i].run or self.results[i].result is False]
        if blocked:
            return Result(**base, result=False, run=False,
                          comment=f"not run: requisite {', '.join(blocked)} failed or did not run")
        if st.onchanges and not self._changed(st.onchanges):
            return Result(**base, result=True, comment="not run: nothing in onchanges changed")
        plan = st.plan(self.facts.get(st.id, ""))
        if plan.error and self.test and self._pending_ids():
            return Result(**base, result=None, changes=plan.changes or {"pending": "after earlier changes"},
                          diff=plan.diff,
                          comment="cannot be checked before earlier pending "
                          f"changes ({', '.join(self._pending_ids())}) are applied: {plan.error}")
        if plan.error:
            return Result(**base, result=False, comment=plan.error)
        if not plan.needed:
            result = Result(**base, result=True, comment=plan.comment)
        elif self.test:
            result = Result(**base, result=None, changes=plan.changes, diff=plan.diff,
                            comment=f"would change: {plan.comment}")
        else:
            result = self._apply(index, st, plan, base)
        return self._react(st, result)

    def _apply(self, index: int, st: State, plan, base: dict) -> Result:
        stage = ""
        if plan.uploads:
            stage = self._upload(plan.uploads)
        body = (f"set -e; {STAGE_VAR}={cmd(stage)}; trap 'rm -rf \"${STAGE_VAR}\"' EXIT; "
                if stage else "set -e; ") + "\n".join(plan.commands)
        later = self.states[index + 1:]
        parts = self._gather(later + [st], prefix=section("apply", body))
        output, code = parts.get("apply", ("", -1))
        if code == VALIDATION_FAILED:
            msg = output.strip().splitlines()
            return Result(**base, result=False, comment="\n".join(msg[-20:]) or "validation failed",
                          changes=plan.changes, diff=plan.diff)
        if code != 0:
            tail = "\n".join(output.strip().splitlines()[-10:])
            return Result(**base, result=False, changes=plan.changes, diff=plan.diff,
                          comment=f"failed (exit {code}): {tail}")
        return Result(**base, result=True, changed=True, changes=plan.changes, diff=plan.diff,
                      comment=plan.comment)

    def _upload(self, uploads: dict[str, bytes]) -> str:
        """Copy staged files over SFTP into a private folder of the login user; return it."""
        conn = self.remote.open()
        sftp = conn.sftp()
        folder = f"/tmp/.foobar-stage-{uuid.uuid4().hex[:12]}"
        sftp.mkdir(folder, 0o700)
        self.remote.round_trips += 1
        for name, data in uploads.items():
            with sftp.open(f"{folder}/{name}", "wb") as out:
                out.chmod(0o600)
                out.write(data)
            self.remote.round_trips += 1
        return folder

    def _react(self, st: State, result: Result) -> Result:
        """Reload (or restart) a watching state once when something it watches changed."""
        changed = self._changed(st.watch)
        if not changed or result.result is False:
            return result
        if result.changed and "active" in result.changes.get("new", {}):
            return result  # it was just started: the new content is already live
        reaction = st.react(self.facts.get(st.id, ""))
        if not reaction:
            return result
        what, commands = reaction
        if self.test or result.result is None:  # the reaction follows a pending change: say so
            result.comment = f"{result.comment}; would {what}: {', '.join(changed)} would change"
            return result
        out = self._script(section("react", "set -e; " + "\n".join(commands)))
        output, code = sections(out.stdout).get("react", (out.stderr, out.exit_code or -1))
        result.changes = dict(result.changes or {}, watch={"done": what, "because": changed})
        if code != 0:
            result.result, result.comment = False, f"{what} failed (exit {code}): {output.strip()[-500:]}"
        else:
            result.changed = True
            result.comment = f"{result.comment}; {what}ed: {', '.join(changed)} changed".lstrip("; ")
        return result
