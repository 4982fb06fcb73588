"""One lab host: its disk (an overlay over the shared image), its first-boot identity, and its
systemd-nspawn process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import LabError
from . import net

#: Environment variable set on every lab host's init, to find it again after a crash.
MARKER = "FOOBAR_LAB_HOST"


@dataclass
class Machine:
    """A lab host on this control machine.

    name: host name (also the nspawn machine name).
    address: its static IPv4 address on the lab bridge.
    prefix: the lab network's prefix length.
    home: the host's own folder (disk layers, pid file, console log).
    """

    name: str
    address: str
    prefix: int
    home: Path

    @property
    def root(self) -> Path:
        return self.home / "root"

    @property
    def veth(self) -> str:
        return ("vb-" + self.name)[:15]

    @property
    def meta_path(self) -> Path:
        return self.home / "meta.json"

    def meta(self) -> dict:
        """Return what was recorded when the disk was made ({} when there is no disk)."""
        try:
            return json.loads(self.meta_path.read_text())
        except (OSError, ValueError):
            return {}

    # ---- disk -------------------------------------------------------------------------------
    def is_mounted(self) -> bool:
        """Return True when the host's overlay root is mounted."""
        target = str(self.root)
        with open("/proc/self/mountinfo") as info:
            return any(line.split()[4] == target for line in info)

    def mount(self, image_root: Path) -> None:
        """Mount the host's overlay root (lower: the image; upper: the host's own changes).

        image_root: the shared image tree.
        """
        if self.is_mounted():
            return
        for part in ("upper", "work", "root"):
            (self.home / part).mkdir(parents=True, exist_ok=True)
        opts = f"lowerdir={image_root},upperdir={self.home / 'upper'},workdir={self.home / 'work'}"
        done = subprocess.run(
            ["mount", "-t", "overlay", "overlay", "-o", opts, str(self.root)], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise LabError(f"{self.name}: cannot mount its overlay root: {done.stderr.strip()}")

    def unmount(self) -> None:
        """Unmount the host's root (lazily if something still holds it)."""
        if self.is_mounted():
            done = subprocess.run(["umount", str(self.root)], capture_output=True)
            if done.returncode != 0:
                subprocess.run(["umount", "-l", str(self.root)], capture_output=True)

    # ---- processes --------------------------------------------------------------------------
    def nspawn_pid(self) -> int | None:
        """Return the pid of this host's live systemd-nspawn process, or None."""
        try:
            pid = int((self.home / "nspawn.pid").read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        if b"systemd-nspawn" in cmdline[0] and str(self.root).encode() in cmdline:
            return pid
        return None

    def init_pids(self) -> list[int]:
        """Return pids of this host's init processes (also ones whose nspawn was killed)."""
        wanted = f"{MARKER}={self.name}@{self.home}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if wanted in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
        return found

    def state(self) -> str:
        """Return running, stale (leftovers of a killed lab), stopped, or absent."""
        if self.nspawn_pid():
            return "running"
        if self.init_pids() or self.is_mounted() or net.link_exists(self.veth):
            return "stale"
        return "stopped" if self.meta_path.exists() else "absent"

    def uptime(self) -> float | None:
        """Return seconds since the host's nspawn process started, or None when not running."""
        pid = self.nspawn_pid()
        if not pid:
            return None
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = float(Path("/proc/uptime").read_text().split()[0])
        return boot - ticks / os.sysconf("SC_CLK_TCK")

    def clear_stale(self) -> None:
        """Kill an orphaned init, delete its veth and unmount its root, as a killed lab left them."""
        for pid in self.init_pids():
            _kill_and_wait(pid, signal.SIGKILL, 10)
        net.remove_link(self.veth)
        self.unmount()
        (self.home / "nspawn.pid").unlink(missing_ok=True)

    def start(self, image_root: Path, bridge: str) -> None:
        """Boot the host with systemd-nspawn in the background.

        image_root: the shared image tree.
        bridge: the lab bridge the host's veth joins.
        """
        self.mount(image_root)
        cmd = [
            "systemd-nspawn",
            "-D",
            str(self.root),
            "--register=no",
            "--keep-unit",
            "--boot",
            "-M",
            self.name,
            f"--network-bridge={bridge}",
            "--console=passive",
            f"--uuid={self.meta().get('machine_id', uuid.uuid4().hex)}",
            f"--setenv={MARKER}={self.name}@{self.home}",
        ]
        log = open(self.home / "console.log", "ab")
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        log.close()
        (self.home / "nspawn.pid").write_text(f"{proc.pid}\n")
        time.sleep(0.3)
        if proc.poll() is not None:
            tail = (self.home / "console.log").read_text(errors="replace")[-1500:]
            raise LabError(f"{self.name}: systemd-nspawn exited at once ({proc.returncode}):\n{tail}")

    def stop(self, timeout: float = 20) -> str | None:
        """Power the host off cleanly (SIGTERM to nspawn), then release its disk.

        timeout: seconds to wait for a clean power-off before killing it.
        Returns a note when the host had to be killed, else None.
        """
        pid, note = self.nspawn_pid(), None
        if pid and not _kill_and_wait(pid, signal.SIGTERM, timeout):
            tail = (self.home / "console.log").read_text(errors="replace").splitlines()[-8:]
            note = (
                f"{self.name} did not power off within {timeout:.0f} s and was killed; "
                "last console lines:\n  " + "\n  ".join(tail)
            )
            _kill_and_wait(pid, signal.SIGKILL, 10)
        self.clear_stale()
        return note


def _kill_and_wait(pid: int, sig: int, timeout: float) -> bool:
    """Send a signal and wait for the process to go; True when it went in time."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        if not Path(f"/proc/{pid}").exists() or _is_zombie(pid):
            return True
        time.sleep(0.1)
    return False


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
