"""HTTPS at the load balancer pair, on the lab: Mozilla's intermediate profile as a scanner checks
it, http redirected, HSTS, the lab CA verified by every client; a certificate rotated under load
without a reload or a failed request; `tls status` warning and failing as expiry nears; the key
never in a record."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import shlex
import shutil
import socket
import ssl
import subprocess
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from foobar_ops.lab import tls as lab_tls
from foobar_ops.stack.verify import connection
from tests.conftest import LAB_INVENTORY, PROJECT, run_cli, stored_bytes
from tests.lab.helpers import HTTPS, LAB_CA, LB, SITE, Traffic, apply, get, site_tls

SSLYZE = PROJECT / ".venv-tools" / "bin" / "sslyze"
LAB_TLS = LAB_CA.parent
LBS = {"lb-01": "10.77.0.10", "lb-02": "10.77.0.13"}
CERT_FILE = "/etc/haproxy/certs/foobar.com.pem"


@pytest.fixture(scope="module")
def site(lab):
    done, doc = apply()
    assert done.code == 0, json.dumps([r for r in doc["results"] if r["result"] is False], indent=1)
    yield lab
    # whatever a test left served, the lab's own certificate again (renewed in place if needed)
    assert run_cli("tls", "rotate", "-i", LAB_INVENTORY).code == 0


def served_serial(address: str, timeout: float = 2.0) -> str:
    """The serial of the certificate `address` serves for the site (verified against the lab CA)."""
    with socket.create_connection((address, HTTPS), timeout=timeout) as raw:
        with site_tls().wrap_socket(raw, server_hostname=SITE) as tls:
            der = tls.getpeercert(binary_form=True)
    from cryptography import x509

    return f"{x509.load_der_x509_certificate(der).serial_number:X}"


def haproxy_pids(lab, host: str) -> str:
    return lab.run(host, ["pidof", "haproxy"]).stdout.strip()


def status_doc(inv=LAB_INVENTORY) -> tuple[int, dict]:
    done = run_cli("tls", "status", "-i", inv, "--json")
    return done.code, json.loads(done.out)


def test_http_is_redirected_with_308_and_https_carries_hsts_verified_against_the_lab_ca(site):
    for name in (SITE, f"www.{SITE}"):
        conn = http.client.HTTPConnection(LB, 80, timeout=5)
        conn.request("POST", "/api/items?x=1", body=b"{}", headers={"Host": name})
        answer = conn.getresponse()
        assert answer.status == 308 and answer.getheader("Location") == f"https://{name}/api/items?x=1"
        conn.close()
    answer = get("/")
    assert answer["status"] == 200 and answer["error"] is None
    conn = connection(LB, HTTPS, SITE, site_tls())
    conn.request("GET", "/", headers={"Host": SITE})
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Strict-Transport-Security") == "max-age=63072000"
    conn.close()
    # the certificate verifies against the lab CA only: the system's trust store refuses it
    with pytest.raises(ssl.SSLCertVerificationError):
        with socket.create_connection((LB, HTTPS), timeout=5) as raw:
            ssl.create_default_context().wrap_socket(raw, server_hostname=SITE)
    # and only for the site's names
    with pytest.raises(ssl.SSLCertVerificationError, match="match|mismatch"):
        with socket.create_connection((LB, HTTPS), timeout=5) as raw:
            site_tls().wrap_socket(raw, server_hostname="other.example")


def test_the_app_sees_https_and_its_cookie_is_secure(site):
    conn = connection(LB, HTTPS, SITE, site_tls())  # a write: the app sets its read-your-writes cookie
    conn.request(
        "POST",
        "/api/items",
        body=b'{"name": "https-cookie"}',
        headers={"Host": SITE, "Content-Type": "application/json"},
    )
    answer = conn.getresponse()
    cookies = answer.getheader("Set-Cookie") or ""
    conn.close()
    assert answer.status == 201 and "foobar_gtid=" in cookies and "; Secure" in cookies, cookies


def test_the_mozilla_intermediate_check_passes_old_protocols_are_refused_and_alpn_gives_h2(site, tmp_path):
    out = tmp_path / "sslyze.json"
    done = subprocess.run(
        [
            str(SSLYZE),
            "--mozilla_config=intermediate",
            f"--certinfo_ca_file={LAB_CA}",
            f"--json_out={out}",
            f"{SITE}:{HTTPS}{{{LB}}}",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0 and "OK - Compliant" in done.stdout, done.stdout[-3000:]
    scan = json.loads(out.read_text())["server_scan_results"][0]["scan_result"]
    accepted = {
        proto: bool(scan[f"{proto}_cipher_suites"]["result"]["accepted_cipher_suites"])
        for proto in ("ssl_3_0", "tls_1_0", "tls_1_1", "tls_1_2", "tls_1_3")
    }
    assert accepted == {"ssl_3_0": False, "tls_1_0": False, "tls_1_1": False, "tls_1_2": True, "tls_1_3": True}
    # TLS 1.0 and 1.1 handshakes of our own (allowed on this side) are refused by the server, and ALPN picks h2
    for version in ("TLSv1", "TLSv1_1"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            old.minimum_version = old.maximum_version = getattr(ssl.TLSVersion, version)
        old.load_verify_locations(LAB_CA)
        old.set_ciphers("ALL:@SECLEVEL=0")
        with pytest.raises(ssl.SSLError, match="ALERT_PROTOCOL_VERSION"):  # the server's alert, not ours
            with socket.create_connection((LB, HTTPS), timeout=5) as raw:
                old.wrap_socket(raw, server_hostname=SITE)
    h2 = ssl.create_default_context(cafile=str(LAB_CA))
    h2.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection((LB, HTTPS), timeout=5) as raw:
        with h2.wrap_socket(raw, server_hostname=SITE) as conn:
            assert conn.selected_alpn_protocol() == "h2"
            assert conn.version() == "TLSv1.3"


def test_a_certificate_rotated_under_load_is_served_at_once_on_both_without_a_reload_or_a_failed_request(
    site, tmp_path
):
    old_serial = served_serial(LB)
    pids = {host: haproxy_pids(site, host) for host in LBS}
    # renewed in place, as a CA's client would: the files the inventory names get the new pair
    issued = lab_tls.issue(LAB_TLS, [SITE, f"www.{SITE}"], LAB_TLS)
    new_serial = f"{issued.serial:X}"
    assert new_serial != old_serial
    seen: dict[str, float] = {}
    stop = threading.Event()

    def watch(host: str, address: str) -> None:  # a fresh handshake to each load balancer every 20 ms
        while not stop.is_set():
            try:
                if served_serial(address) == new_serial and host not in seen:
                    seen[host] = time.monotonic()
            except OSError:
                pass
            time.sleep(0.02)

    watchers = [threading.Thread(target=watch, args=item, daemon=True) for item in LBS.items()]
    for thread in watchers:
        thread.start()
    with Traffic(path="/static/app.css", max_seconds=60) as traffic, ThreadPoolExecutor(4) as pool:
        load = [pool.submit(lambda: [get("/static/app.css") for _ in range(150)]) for _ in range(4)]
        time.sleep(1)
        started = time.monotonic()
        done = run_cli("tls", "rotate", "-i", LAB_INVENTORY, "--json")
        ended = time.monotonic()
        answers = [a for f in load for a in f.result()]
    time.sleep(0.5)
    stop.set()
    for thread in watchers:
        thread.join(5)
    assert done.code == 0, done
    doc = done.json()
    assert doc["certificate"]["serial"] == new_serial and doc["warnings"] == []
    assert {r["id"] for r in doc["results"] if r["changed"]} == {"haproxy:cert", "haproxy:cert-live"}
    failed = [a for a in answers + traffic.results if a["status"] != 200]
    assert failed == [] and len(answers) == 600, failed[:3]
    assert set(seen) == set(LBS), seen  # both serve the new one
    spread = max(seen.values()) - min(seen.values())
    print(
        f"\nrotation: {len(answers) + len(traffic.results)} requests, 0 failed; rotate took {ended - started:.2f} s; "
        f"new serial on both within {spread * 1000:.0f} ms of each other, "
        f"{max(seen.values()) - ended:+.2f} s from the command's end"
    )
    assert spread <= 1.0 and max(seen.values()) <= ended + 1.0
    assert {host: haproxy_pids(site, host) for host in LBS} == pids  # no reload, no restart
    code, status = status_doc()
    assert code == 0 and {c["serial"] for c in status["certs"]} == {new_serial}
    # the file was written too: a restart serves the new certificate (the standby, not the holder)
    standby = next(h for h in LBS if LB not in site.run(h, ["ip", "-o", "-4", "addr"]).stdout)
    assert site.run(standby, ["systemctl", "restart", "haproxy"]).returncode == 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            assert served_serial(LBS[standby]) == new_serial
            break
        except OSError:
            time.sleep(0.3)
    else:
        pytest.fail(f"{standby} does not serve https after a restart")
    assert haproxy_pids(site, standby) != pids[standby]
    again = run_cli("tls", "rotate", "-i", LAB_INVENTORY, "--json")
    assert again.code == 0 and [r["id"] for r in again.json()["results"] if r["changed"]] == []


def test_a_push_that_did_not_happen_is_made_by_the_next_run(site, tmp_path):
    """lb-02's HAProxy is made to serve another certificate than its file holds (as after a push cut
    off between the file and the runtime API): the next rotate pushes there only, and says so."""
    serial = served_serial(LBS["lb-02"])
    other = lab_tls.issue(LAB_TLS, [SITE, f"www.{SITE}"], tmp_path / "other")
    pem = other.cert.read_text().rstrip("\n") + "\n" + other.key.read_text()
    script = (
        f"printf '%s' {shlex.quote(pem)} > /root/other.pem; "
        "api='socat -t 5 stdio unix-connect:/run/haproxy/admin.sock'; "
        f"{{ printf 'set ssl cert {CERT_FILE} <<\\n'; cat /root/other.pem; printf '\\n'; }} | $api; "
        f"echo 'commit ssl cert {CERT_FILE}' | $api; rm -f /root/other.pem"
    )
    done = site.run("lb-02", ["sh", "-c", script])
    assert "Success" in done.stdout, done
    assert served_serial(LBS["lb-02"]) == f"{other.serial:X}" != serial
    fixed = run_cli("tls", "rotate", "-i", LAB_INVENTORY, "--json")
    assert fixed.code == 0, fixed
    changed = [(r["host"], r["id"]) for r in fixed.json()["results"] if r["changed"]]
    assert changed == [("lb-02", "haproxy:cert-live")]
    assert served_serial(LBS["lb-02"]) == serial and fixed.json()["served"] == {"lb-01": serial, "lb-02": serial}


def test_tls_status_warns_under_20_days_and_fails_under_3(site, tmp_path):
    inv = tmp_path / "lab.yml"
    shutil.copy(LAB_INVENTORY, inv)
    now = dt.datetime.now(dt.UTC)
    try:
        for left, code, level in ((10, 0, "warn"), (1, 1, "fail")):
            folder = tmp_path / f"left-{left}"
            start = now - dt.timedelta(days=90 - left)
            lab_tls.issue(LAB_TLS, [SITE, f"www.{SITE}"], folder, days=90, valid_from=start)
            done = run_cli(
                "tls", "rotate", "-i", inv, "--cert", f"file:{folder}/site.crt", "--key", f"file:{folder}/site.key",
                "--json",
            )  # fmt: skip
            assert done.code == 0, done
            assert len(done.json()["warnings"]) == 1 and "days left" in done.json()["warnings"][0]
            assert f"file:{folder}/site.crt" in inv.read_text()  # the inventory now names the new pair
            got, doc = status_doc(inv)
            assert got == code and doc["ok"] is (code == 0)
            assert {c["level"] for c in doc["certs"]} == {level} and len(doc["certs"]) == 2
            assert all(left - 1 < c["days_left"] <= left for c in doc["certs"]), doc["certs"]
            assert len(doc["warnings"]) == 2 and all("days left" in w for w in doc["warnings"])
            human = run_cli("tls", "status", "-i", inv)
            assert human.code == code and "WARNING: lb-01" in human.err
    finally:
        assert run_cli("tls", "rotate", "-i", LAB_INVENTORY).code == 0
    code, doc = status_doc()
    assert code == 0 and {c["level"] for c in doc["certs"]} == {"ok"} and doc["warnings"] == []


def test_a_bad_certificate_is_refused_by_name_before_any_host_and_changes_nothing(site, tmp_path):
    other = tmp_path / "other"
    lab_tls.issue(LAB_TLS, ["example.org"], other)
    mine = tmp_path / "mine"
    lab_tls.issue(LAB_TLS, [SITE], mine)
    serial = served_serial(LB)
    inv = tmp_path / "lab.yml"
    shutil.copy(LAB_INVENTORY, inv)
    cases = [
        ((f"file:{other}/site.crt", f"file:{other}/site.key"), "does not name foobar.com"),
        ((f"file:{mine}/site.crt", f"file:{other}/site.key"), "is not the key of certificate"),
        ((f"file:{mine}/site.crt", f"file:{tmp_path}/missing.key"), "cannot read file"),
        ((f"file:{mine}/site.crt",), "--cert and --key go together"),
    ]
    for refs, said in cases:
        args = ["--cert", refs[0]] + (["--key", refs[1]] if len(refs) > 1 else [])
        done = run_cli("tls", "rotate", "-i", inv, *args)
        assert done.code != 0 and said in done.err, (said, done)
        assert "PRIVATE KEY" not in done.err + done.out
    assert inv.read_text() == LAB_INVENTORY.read_text()  # the inventory untouched
    assert served_serial(LB) == serial


def test_key_files_are_0600_root_and_the_key_is_in_no_record(site, tmp_path):
    for host in LBS:
        assert site.run(host, ["stat", "-c", "%a %U %G", CERT_FILE]).stdout.split() == ["600", "root", "root"]
        assert site.run(host, ["stat", "-c", "%a", "/etc/haproxy/certs"]).stdout.strip() == "700"
    key_lines = [
        line for line in (LAB_TLS / "site.key").read_text().splitlines() if line and not line.startswith("-----")
    ]
    assert key_lines
    dry = run_cli("apply", "-i", LAB_INVENTORY, "--roles", "haproxy", "--test", "--json")
    rotated = run_cli("tls", "rotate", "-i", LAB_INVENTORY, "--json")
    journal = Path(run_cli("paths", "--json").json()["journal"])
    records = [stored_bytes(p) for p in journal.parent.rglob("*") if p.is_file()]  # the journal among them
    assert journal in list(journal.parent.rglob("*"))
    outputs = dry.out + dry.err + rotated.out + rotated.err
    for line in key_lines:
        assert line not in outputs
        assert not any(line.encode() in blob for blob in records)


def test_paths_names_the_lab_ca(site):
    doc = run_cli("paths", "--json").json()
    assert doc["lab_ca"] == str(LAB_CA) and Path(doc["lab_ca"]).is_file()
    assert b"PRIVATE" not in Path(doc["lab_ca"]).read_bytes()
