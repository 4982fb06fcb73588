"""Run a runbook: check its parameters before any cell runs, execute it with papermill on the
project's kernel with start and cell timeouts, stream each finished cell, always keep the output
notebook and an HTML rendering of it under the records folder (also when it fails), scrub secret
values from both, and journal the run with its outcome.

Outcomes and exit codes: ok 0, failed 1 (a cell raised, e.g. its verification), refused 2 (a
parameter error: no cell ran), timeout 3 (a cell ran past its time), kernel-died 4; a run stopped
by Ctrl-C or SIGTERM is recorded as interrupted or terminated (its notebook and HTML kept, scrubbed)
and the interrupt goes on (exit 130 or 143 on the command line).

Secret values never leave the runner: every secret the run may see (the inventory's and the secret
parameters') is revealed before any cell runs, only to be masked in what is streamed, in the
error, in the notebook and its HTML (every string of the parsed notebook, so escaping cannot hide
one) and in the journal; a literal given for a secret parameter is refused and masked in the
recorded command; a secret too short to be masked safely refuses the run.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ..core import interrupts, paths, privacy
from ..core.errors import FoobarOpsError, SecretError
from ..core.journal import Journal
from ..core.run import check_lock_wait
from ..core.secrets import MASK, MIN_LENGTH, Secret, SecretTooShort, is_secret_ref, mask_known, remember
from . import outputs
from .catalog import Runbook, find
from .context import RUNNER_RUN
from .parameters import RunbookParameterError, resolve

KERNEL = "foobar-ops"
EXIT_CODES = {"ok": 0, "failed": 1, "refused": 2, "timeout": 3, "kernel-died": 4, "interrupted": 130, "terminated": 143}


@dataclass
class RunbookRun:
    """What one run of a runbook did.

    run_id: its journal id.
    runbook: the runbook's name.
    outcome: ok, failed, refused, timeout or kernel-died.
    output_notebook, html: where the executed notebook and its HTML rendering are.
    error: why it did not end ok (names the cell); every known secret masked.
    cell: the index of the cell that failed or timed out.
    seconds: how long it took.
    """

    run_id: str
    runbook: str
    outcome: str
    output_notebook: Path | None = None
    html: Path | None = None
    error: str | None = None
    cell: int | None = None
    seconds: float = 0.0

    def __post_init__(self) -> None:
        self.error = mask_known(self.error) if self.error else self.error

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]

    def as_json(self) -> dict[str, Any]:
        """`foobar-ops runbook NAME --json`."""
        return {
            "run_id": self.run_id,
            "runbook": self.runbook,
            "outcome": self.outcome,
            "output_notebook": str(self.output_notebook) if self.output_notebook else None,
            "html": str(self.html) if self.html else None,
            "error": self.error,
            "cell": self.cell,
            "seconds": round(self.seconds, 2),
        }


def ensure_kernel() -> str:
    """Return the project's kernel name, installing its spec (this Python) when it is missing."""
    from jupyter_client.kernelspec import KernelSpecManager

    if KERNEL not in KernelSpecManager().find_kernel_specs():
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "ipykernel",
                "install",
                "--sys-prefix",
                "--name",
                KERNEL,
                "--display-name",
                "foobar-ops",
            ],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise FoobarOpsError(f"cannot install the {KERNEL} kernel: {done.stderr.strip()[-300:]}")
    return KERNEL


class _CellLog(logging.Handler):
    """Streams what papermill logs while it runs: each cell's output, and each finished cell. Output
    goes out by whole lines, each masked as a whole (a secret written in two pieces is still found)."""

    def __init__(self, name: str, total: int, stream: Any) -> None:
        super().__init__(logging.INFO)
        self.name, self.total, self.stream, self.started = name, total, stream, time.monotonic()
        self.pending = ""

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if text.startswith("Ending Cell"):
            self.flush_lines(final=True)
            number = text.split()[2].rstrip("-")
            self._print(f"[{self.name}] cell {number}/{self.total} done ({time.monotonic() - self.started:.1f} s)")
        elif text.startswith(("Executing Cell", "Executing notebook", "Input Notebook", "Output Notebook")):
            return
        elif record.funcName == "log_output_message":  # a piece of a cell's output: by whole lines
            self.pending += text
            self.flush_lines()
        else:  # papermill's own message: a line of its own
            self.flush_lines(final=True)
            self._print_lines(text)

    def flush_lines(self, final: bool = False) -> None:
        """Print the whole lines received so far (all of it when final)."""
        cut = len(self.pending) if final else self.pending.rfind("\n") + 1
        done, self.pending = self.pending[:cut], self.pending[cut:]
        self._print_lines(done)

    def _print_lines(self, text: str) -> None:
        """Print text's lines, masked as a whole (the one way out to the terminal)."""
        for line in mask_known(text).splitlines():
            if line:
                self._print(line)

    def _print(self, line: str) -> None:
        print(line, file=self.stream, flush=True)


def _reveal(runbook: Runbook, values: dict[str, Any], inventory: Any) -> None:
    """Reveal every secret this run may see (the secret parameters' and the inventory's), only so
    that all that leaves the runner (streamed output, errors, the notebook) can be masked; a value
    too short to be masked safely refuses the run (a SecretError naming its parameter or secret).
    One that cannot be read is left to the cell that needs it (it fails there, saying why)."""
    named: list[tuple[str, Any]] = [
        (f"parameter {p.name!r}", Secret(str(v)))
        for p in runbook.parameters()
        if p.kind == "secret" and is_secret_ref(v := values.get(p.name))
    ]
    if inventory is not None:
        named += [(f"inventory secret {k!r}", v) for k, v in inventory.secrets.items()]
        named += [(f"host {h.name}'s sudo_password", h.sudo_password) for h in inventory.hosts.values()]
    for what, secret in named:
        if not isinstance(secret, Secret):
            continue
        try:
            secret.reveal()
        except SecretTooShort as err:
            raise SecretTooShort(f"{what}: {err}") from None
        except SecretError:
            pass


def run(
    name: str,
    inventory: str | Path | None = None,
    parameters: dict[str, Any] | None = None,
    *,
    texts: dict[str, str] | None = None,
    test: bool | None = None,
    journal: Journal | str | Path | None = None,
    stream: Any = None,
    start_timeout: float = 60,
    cell_timeout: float = 1800,
    command: str | None = None,
    lock_wait: float | None = None,
) -> RunbookRun:
    """Run a runbook and return what it did (never raises for a failing run: see the outcome).

    name: the runbook's name (runbooks/NAME.py).
    inventory: the inventory, for a runbook that declares an `inventory` parameter.
    parameters: typed values (e.g. from YAML).
    texts: command-line values (-p NAME VALUE), parsed to each parameter's declared type.
    test: set the runbook's `test` parameter (its plan-only mode).
    journal: the journal (default: the records folder's).
    stream: where progress goes (default: stderr); False for none.
    start_timeout: seconds the kernel gets to start.
    cell_timeout: seconds each cell gets.
    command: what is recorded as having started the run.
    lock_wait: seconds the runbook's operations wait for another run holding a host's lock
        (given to a runbook that declares a `lock_wait` parameter; default 0: refuse at once).
    """
    import papermill

    runbook = find(name)
    journal = journal if isinstance(journal, Journal) else Journal(journal)
    run_id = datetime.now().strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    out = paths.runbook_dir() / f"{name}-{run_id}.ipynb"
    started = time.monotonic()
    given = dict(parameters or {})
    literals = _literal_secrets(runbook, {**(texts or {}), **given})  # refused below, never recorded
    recorded = {k: MASK if k in literals else v for k, v in {**(texts or {}), **given}.items()}
    command = _masked_command(command or f"runbook {name}", list(literals.values()))
    inv = _inventory(runbook, inventory, given)
    if test is not None:
        given["test"] = test
    try:
        values = resolve(runbook.parameters(), given, texts)
        _reveal(runbook, values, inv)
    except (RunbookParameterError, SecretError) as err:
        journal.start_run(command=command, inventory=inv, parameters=recorded, runbook=name, run_id=run_id)
        journal.finish_run(run_id, "refused", str(err))
        return RunbookRun(run_id, name, "refused", error=str(err), seconds=time.monotonic() - started)
    declared = {p.name for p in runbook.parameters()}
    injected = {k: v for k, v in values.items() if k in declared}
    runner_set = (("run_id", run_id), ("output_notebook", str(out)), ("lock_wait", check_lock_wait(lock_wait)))
    injected.update({k: v for k, v in runner_set if k in declared})
    nb = runbook.notebook()
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": "foobar-ops", "language": "python"}
    privacy.make_dir(paths.records_dir())
    privacy.make_dir(out.parent)
    outputs.private_file(out)  # papermill writes into it as cells end: never readable by others, even then
    journal.start_run(
        command=command,
        inventory=inv,
        test=bool(values.get("test", False)),
        parameters=values,
        runbook=name,
        output_notebook=str(out),
        run_id=run_id,
    )
    stopped: KeyboardInterrupt | None = None
    try:
        with _sigterm_interrupts():
            outcome, error, cell = _execute(papermill, nb, out, injected, name, stream, start_timeout, cell_timeout)
    except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM: keep the records, then stop
        stopped, cell = err, outputs.last_started(out)
        outcome = "terminated" if isinstance(err, interrupts.Terminated) else "interrupted"
        error = f"{outcome} during {outputs.cell_line(out, cell)}"
    except Exception as err:  # noqa: BLE001 - e.g. the kernel never started: the run failed, and says why
        outcome, cell = "failed", outputs.last_started(out)
        why = (str(err).strip().splitlines() or [""])[0]
        error = f"the runbook could not run: {type(err).__name__}: {why}"
    done = _finish(journal, run_id, name, out, outcome, error, cell, started)
    if stopped is not None:
        raise stopped
    return done


def _finish(
    journal: Journal,
    run_id: str,
    name: str,
    out: Path,
    outcome: str,
    error: str | None,
    cell: int | None,
    started: float,
) -> RunbookRun:
    """Keep what a run leaves (also when it was stopped): its notebook with a note on what went
    wrong, scrubbed, its HTML, and how it ended in the journal (each masks the error itself)."""
    html = None
    try:
        html = outputs.keep(out, cell, f"foobar-ops: {outcome}: {error}" if outcome != "ok" else None)
    except Exception as err:  # noqa: BLE001 - a notebook that cannot be rendered must not lose the record
        error = (error + "; " if error else "") + f"the output could not be rendered: {type(err).__name__}: {err}"
    journal.set_outputs(run_id, str(out) if out.exists() else None, str(html) if html else None)
    journal.finish_run(run_id, outcome, error)
    return RunbookRun(
        run_id, name, outcome, out if out.exists() else None, html, error, cell, time.monotonic() - started
    )


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM stops a run as Ctrl-C does (raises interrupts.Terminated), so that its records are
    kept, where nobody (the command line does) has said what SIGTERM does yet."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) not in (
        signal.SIG_DFL,
        None,
    ):
        yield
        return

    previous = signal.signal(signal.SIGTERM, interrupts.on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _literal_secrets(runbook: Runbook, values: dict[str, Any]) -> dict[str, Any]:
    """The values given for secret parameters that are not references (every value, when the
    runbook's parameters cannot be read): each is refused, never recorded, and remembered so that
    it is masked from now on wherever it would show."""
    try:
        secret = {p.name for p in runbook.parameters() if p.kind == "secret"}
    except RunbookParameterError:
        secret = set(values)
    literals = {k: v for k, v in values.items() if k in secret and not is_secret_ref(v)}
    for value in literals.values():
        if isinstance(value, str):
            remember(value)
    return literals


def _masked_command(command: str, literals: list[Any]) -> str:
    """The command as the journal records it (which masks every known secret): a literal given for
    a secret parameter is masked word by word, so shell quoting cannot split it (a value too short
    to be masked as text masks its whole word)."""
    texts = [v for v in literals if isinstance(v, str) and v]
    if not texts:
        return command
    try:
        words = shlex.split(command)
    except ValueError:
        return MASK  # cannot be told apart: record nothing of it
    for value in texts:
        if len(value) >= MIN_LENGTH:
            words = [w.replace(value, MASK) for w in words]
        else:
            words = [MASK if value in w else w for w in words]
    return shlex.join(words)


def _inventory(runbook: Runbook, inventory: str | Path | None, given: dict[str, Any]) -> Any:
    """Pass the inventory to a runbook that takes one (as an absolute path); return it loaded."""
    from ..stack import load_inventory

    takes = any(p.name == "inventory" for p in runbook.parameters())
    if inventory is None:
        path = given.get("inventory")
        return load_inventory(path) if takes and isinstance(path, str) else None
    if not takes:
        raise RunbookParameterError(f"runbook {runbook.name} takes no inventory")
    given["inventory"] = str(Path(inventory).resolve())
    return load_inventory(given["inventory"])


def _execute(
    papermill: Any,
    nb: Any,
    out: Path,
    params: dict[str, Any],
    name: str,
    stream: Any,
    start_timeout: float,
    cell_timeout: float,
) -> tuple[str, str | None, int | None]:
    """Run the notebook; return (outcome, error naming the cell, cell index)."""
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    log = logging.getLogger("papermill")
    # papermill adds a cell of its own (the injected parameters: the runner always passes some)
    injected = any("injected-parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells)
    total = len(nb.cells) + (0 if injected else 1)
    handler = _CellLog(name, total, sys.stderr if stream is None else stream) if stream is not False else None
    if handler:
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    before = os.environ.get(RUNNER_RUN)
    os.environ[RUNNER_RUN] = str(params.get("run_id"))  # the kernel (a child) knows the runner runs it
    try:
        papermill.execute_notebook(
            nb,
            str(out),
            parameters=params,
            kernel_name=ensure_kernel(),
            start_timeout=int(start_timeout),
            execution_timeout=int(cell_timeout),
            log_output=handler is not None,
            progress_bar=False,
            cwd=str(Path.cwd()),
            # the kernel's own log (not the cells' output) is noise on the terminal: its transport
            # warning, and the tracebacks of a kernel shut down mid-cell (Ctrl-C, SIGTERM)
            extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
        )
        return "ok", None, None
    except papermill.PapermillExecutionError as err:
        return (
            "failed",
            f"{outputs.cell_line(out, err.cell_index)} raised {err.ename}: {err.evalue}",
            err.cell_index,
        )
    except CellTimeoutError:
        index = outputs.last_started(out)
        return "timeout", f"{outputs.cell_line(out, index)} ran past its {cell_timeout:g} s", index
    except DeadKernelError as err:
        index = outputs.last_started(out)
        return "kernel-died", f"the kernel died during {outputs.cell_line(out, index)}: {err}", index
    finally:
        if before is None:
            os.environ.pop(RUNNER_RUN, None)
        else:
            os.environ[RUNNER_RUN] = before
        if handler:
            handler.flush_lines(final=True)
            log.removeHandler(handler)


def catalog_json() -> list[dict[str, Any]]:
    """`foobar-ops runbook list --json`."""
    from .catalog import all_runbooks

    return [r.as_dict() for r in all_runbooks()]


__all__ = ["KERNEL", "RunbookRun", "catalog_json", "ensure_kernel", "run"]
