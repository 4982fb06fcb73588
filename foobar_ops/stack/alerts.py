"""foobar_ops's own Alertmanager receiver: a webhook that records every firing and every resolution
of an alert in the journal (`foobar-ops alerts receive`; `records alerts` shows them).

Alertmanager posts its webhook payload (version 4) to http://ADDRESS:PORT/alerts, as the inventory's
stack.monitoring.webhook names it. The receiver takes connections from the monitoring host (and
loopback) only (others are closed unread), lets go of a client silent for READ_TIMEOUT_S, reads at
most MAX_BODY bytes, refuses a payload that is not Alertmanager's shape (400, nothing recorded), and
answers 500 when the journal cannot be written, so Alertmanager sends it again.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..core.errors import AlertPayloadError as PayloadError
from ..core.errors import FoobarOpsError, JournalError
from ..core.journal import Journal
from .monitoring import DEFAULT_WEBHOOK_PORT, settings

MAX_BODY = 1 << 20
READ_TIMEOUT_S = 10
PATH = "/alerts"
#: Alertmanager's time for "no end yet".
_NO_END = "0001-01-01T00:00:00Z"


def _text(value: Any, limit: int) -> str:
    return str(value)[:limit] if value is not None else ""


def _time(value: Any, what: str) -> str | None:
    """Alertmanager's RFC 3339 time as an ISO UTC time (None for its zero time)."""
    if value in (None, "", _NO_END):
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        if moment.year < 2000:
            return None
        return moment.astimezone(UTC).isoformat(timespec="milliseconds")
    except (ValueError, OverflowError):
        raise PayloadError(f"{what}: {str(value)[:40]!r} is not a time") from None


def rows(payload: Any) -> list[dict[str, Any]]:
    """Return the journal rows of an Alertmanager webhook payload: one per alert, with its name,
    severity, instance, state (firing or resolved), since, ended, fingerprint, summary and labels.
    A payload of another shape is a PayloadError saying what is wrong.

    payload: the decoded JSON body.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("alerts"), list):
        raise PayloadError("not an Alertmanager webhook payload: no list of alerts")
    out = []
    for n, alert in enumerate(payload["alerts"]):
        where = f"alerts[{n}]"
        if not isinstance(alert, dict) or not isinstance(alert.get("labels"), dict):
            raise PayloadError(f"{where}: not an alert with labels")
        if not all(isinstance(v, str | int | float | bool) for v in alert["labels"].values()):
            raise PayloadError(f"{where}.labels: a label value that is not text")
        labels = {str(k)[:100]: _text(v, 500) for k, v in alert["labels"].items()}
        state = alert.get("status")
        if state not in ("firing", "resolved"):
            raise PayloadError(f"{where}.status: {str(state)[:20]!r} is neither firing nor resolved")
        if not labels.get("alertname"):
            raise PayloadError(f"{where}.labels: no alertname")
        notes: dict[str, Any] = alert["annotations"] if isinstance(alert.get("annotations"), dict) else {}
        since = _time(alert.get("startsAt"), f"{where}.startsAt")
        out.append(
            {
                "name": labels["alertname"][:255],
                "severity": labels.get("severity", "")[:32] or None,
                "instance": labels.get("instance", "")[:255] or None,
                "state": state,
                "since": since,
                "ended": _time(alert.get("endsAt"), f"{where}.endsAt") if state == "resolved" else None,
                # Alertmanager's own fingerprint of the labels, else a digest of them
                "fingerprint": _text(alert.get("fingerprint"), 64)
                or hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest(),
                "summary": _text(notes.get("summary") or notes.get("description"), 1000),
                "labels": json.dumps(labels, sort_keys=True),
            }
        )
    return out


class Receiver:
    """The webhook, served in a thread (start/stop) or in the foreground (serve_forever).

    journal: where alerts are recorded.
    address, port: where it listens.
    allowed: the client addresses it takes connections from (others are closed unread).
    """

    def __init__(self, journal: Journal, address: str, port: int, allowed: tuple[str, ...]) -> None:
        self.journal, self.allowed = journal, allowed
        self.received = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "foobar-ops-alerts"
            timeout = READ_TIMEOUT_S  # a client that sends nothing is let go

            def log_message(self, format: str, *args: Any) -> None:  # quiet: the journal is the record
                pass

            def _answer(self, code: int, text: str) -> None:
                body = (text + "\n").encode()
                self.send_response(code)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._answer(200 if self.path == "/health" else 404, "ok" if self.path == "/health" else "not found")

            def do_POST(self) -> None:
                if self.client_address[0] not in receiver.allowed:
                    self._answer(403, "not from the monitoring host")
                    return
                if self.path != PATH:
                    self._answer(404, f"post alerts to {PATH}")
                    return
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    length = -1
                if not 0 < length <= MAX_BODY:
                    self._answer(413 if length > MAX_BODY else 400, f"a body of 1 to {MAX_BODY} bytes, please")
                    return
                try:
                    found = rows(json.loads(self.rfile.read(length)))
                except (ValueError, RecursionError, PayloadError) as err:
                    self._answer(400, f"refused: {err}")
                    return
                try:
                    fresh = receiver.journal.add_alerts(found)
                except JournalError as err:
                    print(f"alerts: {err}", file=sys.stderr, flush=True)
                    self._answer(500, "the journal cannot be written; send it again")
                    return
                receiver.received += fresh
                self._answer(200, f"recorded {fresh} of {len(found)}")

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def verify_request(self, request: Any, client_address: Any) -> bool:
                # a connection from anywhere else is closed before a byte of it is read
                return bool(client_address[0] in receiver.allowed)

        self.server = Server((address, port), Handler)
        self.address, self.port = self.server.server_address[0], self.server.server_address[1]
        self._thread: threading.Thread | None = None

    def start(self) -> Receiver:
        """Serve in a background thread; return self."""
        self._thread = threading.Thread(target=self.server.serve_forever, name="alert-receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and let go of the port."""
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def receiver(inventory: Any, journal: Journal, address: str | None = None, port: int | None = None) -> Receiver:
    """Return the webhook for an inventory's monitoring (not started): it listens where
    stack.monitoring.webhook says (address and port may say otherwise) and takes posts from the
    monitoring host and loopback only.

    inventory: the Inventory (with stack.monitoring).
    journal: where alerts are recorded.
    address, port: where to listen instead.
    """
    found = settings(inventory)
    if found is None:
        raise FoobarOpsError(f"{inventory.path}: the inventory has no monitoring (stack.monitoring)")
    hook = found.webhook
    if address is None and hook is None:
        raise FoobarOpsError(
            f"{inventory.path}: stack.monitoring.webhook is not set: say where the receiver listens "
            "(address and port), which is where Alertmanager sends alerts"
        )
    where = address or (hook[0] if hook else "127.0.0.1")
    number = port or (hook[1] if hook else DEFAULT_WEBHOOK_PORT)
    try:
        return Receiver(journal, where, number, (found.host.address, "127.0.0.1"))
    except OSError as err:
        raise FoobarOpsError(f"alert receiver: cannot listen on {where}:{number}: {err.strerror}") from None
