"""nft.table's scripts as a host runs them: the plan's commands, the fact, the confirm and the
rollback run by a real /bin/sh, with `nft`, `systemctl` and `systemd-run` stand-ins on PATH that
keep the host's state in files (the live table's text, whether the rollback timer is armed), and
the state folder moved under the test's own folder. The firewall's behaviour on real nftables is
proved on the lab (tests/lab/test_firewall.py); this proves the scripts' own logic at every step."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from foobar_ops.core.shell import STAGE_VAR, cmd
from foobar_ops.core.states.nft import STATE_DIR, NftInfo, Table, confirm_script, rollback_script

#: nft: `-c -f F` checks F (refuses a file holding "acept"); `-f F` makes the live table F's last
#: `table` block (or none when F ends with the delete); `-s list table` / `list table` print it
NFT = r"""#!/bin/sh
live="$HOST/live"
case "$*" in
  "-c -f "*) ! grep -q acept "$3" || { echo "Error: syntax error near acept" >&2; exit 1; }; exit 0 ;;
  "-f "*) grep -q acept "$2" && exit 1
          awk '/^table .* \{/{keep=1; out=""} keep{out=out $0 "\n"} END{printf "%s", out}' "$2" > "$live.new"
          mv "$live.new" "$live"; exit 0 ;;
  *"list table"*) [ -s "$live" ] || exit 1; cat "$live" ;;
esac
"""
#: systemctl and systemd-run: the timer is armed while $HOST/armed exists
SYSTEMCTL = r"""#!/bin/sh
echo "$*" >> "$HOST/systemctl.log"
case "$1" in
  is-active) [ -f "$HOST/armed" ] ;;
  stop) rm -f "$HOST/armed" ;;
  is-enabled) [ -f "$HOST/enabled" ] && echo enabled || echo disabled ;;
  enable) [ ! -f "$HOST/refuse-enable" ] && touch "$HOST/enabled" ;;
  *) true ;;
esac
"""
SYSTEMD_RUN = r"""#!/bin/sh
for last; do :; done
printf '%s\n' "$last" > "$HOST/timer-command"; touch "$HOST/armed"
"""


@pytest.fixture
def host(tmp_path, monkeypatch):
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for name, text in (("nft", NFT), ("systemctl", SYSTEMCTL), ("systemd-run", SYSTEMD_RUN)):
        (bin_ / name).write_text(text)
        (bin_ / name).chmod(0o755)
    state = tmp_path / "host"
    state.mkdir()
    return state


def sh(host: Path, script: str) -> subprocess.CompletedProcess:
    script = script.replace(STATE_DIR, str(host / "nft")).replace("/etc/foobar-ops", str(host / "etc"))
    env = {**os.environ, "HOST": str(host), "PATH": f"{host.parent / 'bin'}:{os.environ['PATH']}"}
    return subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, env=env)


def table(rules: str = "tcp dport 22 accept") -> Table:
    body = f"table inet foobar {{\n\tchain input {{\n\t\t{rules}\n\t}}\n}}\n"
    return Table("inet foobar", body, persist="/etc/foobar-ops/firewall.nft", boot_unit="fw.service", timer="t")


def load(host: Path, st: Table) -> subprocess.CompletedProcess:
    """Run the plan's commands as the engine does (set -e, the uploads staged)."""
    stage = host / "stage"
    stage.mkdir(exist_ok=True)
    plan = st.plan(NftInfo(None, None, None, "disabled", False))
    for name, data in plan.uploads.items():
        (stage / name).write_bytes(data if isinstance(data, bytes) else data())
    return sh(host, f"set -e; {STAGE_VAR}={cmd(str(stage))}\n" + "\n".join(plan.commands))


def fact(host: Path, st: Table) -> NftInfo:
    return st.fact().parse(sh(host, st.fact().command()).stdout)


def confirm(host: Path) -> subprocess.CompletedProcess:
    return sh(host, confirm_script("inet foobar", "/etc/foobar-ops/firewall.nft", "fw.service", "t"))


def test_a_load_then_its_confirm_leave_the_table_kept_for_boot_and_the_next_plan_empty(host):
    st = table()
    assert load(host, st).returncode == 0 and (host / "armed").exists()
    done = confirm(host)
    assert done.stdout.strip() == "confirmed" and not (host / "armed").exists()
    assert (host / "etc" / "firewall.nft").read_text() == st.content and (host / "enabled").exists()
    seen = fact(host, st)
    assert not st.plan(seen).needed, seen  # a second apply: nothing to do


def test_a_syntax_error_is_refused_before_anything_is_armed_or_loaded(host):
    assert load(host, table()).returncode == 0 and confirm(host).stdout.strip() == "confirmed"
    before = (host / "live").read_text()
    done = load(host, table("tcp dport 22 acept"))
    assert done.returncode == 97 and "nft refused the rules" in done.stderr and "acept" in done.stderr
    assert (host / "live").read_text() == before and not (host / "armed").exists()


def test_the_rollback_puts_the_table_back_as_it_was_or_removes_a_new_one(host):
    first, second = table(), table("tcp dport 2222 accept")
    assert load(host, first).returncode == 0 and confirm(host).stdout.strip() == "confirmed"
    before = (host / "live").read_text()
    assert load(host, second).returncode == 0 and (host / "live").read_text() != before
    assert sh(host, rollback_script("inet foobar", "t")).stdout.strip() == "rolled back"
    assert (host / "live").read_text() == before and not (host / "armed").exists()
    assert confirm(host).stdout.strip() == "nothing"  # nothing pending after a rollback


def test_the_hosts_timer_undoes_a_load_and_its_record_with_it(host):
    st = table()
    assert load(host, st).returncode == 0
    timer = (host / "timer-command").read_text().strip()  # what the host runs when nobody confirms
    assert sh(host, timer).returncode == 0
    (host / "armed").unlink()  # the timer has fired
    assert not (host / "live").read_text().strip() and not list((host / "nft").glob("*.pending"))
    assert confirm(host).stdout.strip() == "nothing"  # a later run is not told it came late


def test_a_confirm_after_the_rollback_fired_says_late_and_keeps_nothing(host):
    st = table()
    assert load(host, st).returncode == 0
    (host / "armed").unlink()  # fired (its service still to remove the record)
    assert confirm(host).stdout.strip() == "late" and not (host / "etc" / "firewall.nft").exists()
    assert load(host, st).returncode == 0
    (host / "live").write_text("table inet foobar {\n}\n")  # the rollback loaded just as the confirm began
    assert confirm(host).stdout.strip() == "late" and not (host / "etc" / "firewall.nft").exists()


def test_a_confirm_whose_step_fails_puts_the_old_table_back_and_says_so(host):
    assert load(host, table()).returncode == 0 and confirm(host).stdout.strip() == "confirmed"
    before = (host / "live").read_text()
    assert load(host, table("tcp dport 2222 accept")).returncode == 0
    (host / "refuse-enable").touch()
    done = confirm(host)
    assert done.returncode == 1 and "the old table is back" in done.stderr
    assert (host / "live").read_text() == before


def test_a_load_a_cut_off_run_left_armed_is_undone_before_the_next_is_saved(host):
    first, second, third = table(), table("tcp dport 2222 accept"), table("tcp dport 2022 accept")
    assert load(host, first).returncode == 0 and confirm(host).stdout.strip() == "confirmed"
    confirmed = (host / "live").read_text()
    assert load(host, second).returncode == 0  # never confirmed: the run was cut off
    assert load(host, third).returncode == 0
    assert sh(host, rollback_script("inet foobar", "t")).returncode == 0
    assert (host / "live").read_text() == confirmed  # back to what was confirmed, not to the cut-off load
