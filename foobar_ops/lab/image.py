"""The lab's base image: a Debian 12 tree built once with debootstrap and cached by its recipe.

The image carries the .deb files the stack needs in its apt cache, so that `apt-get install`
works inside a lab host although lab hosts have no route to the outside.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ..core.errors import LabError

#: Everything that goes into the image; its hash is the cache key.
RECIPE = {
    "version": 6,
    "suite": "bookworm",
    "mirror": "http://deb.debian.org/debian",
    "variant": "minbase",
    "include": [
        "systemd",
        "systemd-sysv",
        "dbus",
        "openssh-server",
        "iproute2",
        "python3",
        "sudo",
        "procps",
        "curl",
        "ca-certificates",
        "less",
    ],
    # Downloaded into the apt cache, not installed: the roles install them.
    "cached_debs": [
        "haproxy",
        "keepalived",
        "nftables",
        "nginx",
        "mariadb-server",
        "mariadb-client",
        "python3-venv",
        "python3-pip",
        "socat",
        "rsync",
        # monitoring: Prometheus, Alertmanager and the blackbox exporter on the monitoring host,
        # the node exporter everywhere, the MySQL exporter on the database nodes
        "prometheus",
        "prometheus-alertmanager",
        "prometheus-blackbox-exporter",
        "prometheus-node-exporter",
        "prometheus-mysqld-exporter",
    ],
    "admin_user": "ops",
}


def recipe_key(recipe: dict = RECIPE) -> str:
    """Return the cache key of an image recipe (first 12 hex digits of its hash).

    recipe: the image recipe.
    """
    blob = json.dumps(recipe, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def _say(message: str) -> None:
    print(f"[image] {message}", file=sys.stderr, flush=True)


def ensure_image(images_dir: Path, recipe: dict = RECIPE) -> Path:
    """Return the root of the cached image for a recipe, building it first when missing.

    images_dir: folder that holds one subfolder per image key.
    recipe: the image recipe.
    """
    key = recipe_key(recipe)
    final = images_dir / key
    if (final / "manifest.json").is_file():
        return final / "rootfs"
    images_dir.mkdir(parents=True, exist_ok=True)
    build = images_dir / f".build-{key}"
    if build.exists():
        _say(f"removing an unfinished build at {build}")
        shutil.rmtree(build)
    build.mkdir()
    started = time.monotonic()
    _say(f"building image {key} (Debian {recipe['suite']}); this happens once")
    rootfs = build / "rootfs"
    _debootstrap(rootfs, recipe, build / "debootstrap.log")
    _cache_debs(rootfs, recipe)
    _configure(rootfs, recipe)
    manifest = {
        "key": key,
        "recipe": recipe,
        "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(time.monotonic() - started, 1),
    }
    (build / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    if final.exists():
        shutil.rmtree(final)
    build.rename(final)
    _say(f"image {key} ready in {manifest['seconds']} s")
    return final / "rootfs"


def _debootstrap(rootfs: Path, recipe: dict, log_path: Path) -> None:
    """Run debootstrap, printing its progress one phase at a time."""
    if not shutil.which("debootstrap"):
        raise LabError("debootstrap is not installed: run `make setup` (or apt-get install debootstrap)")
    cmd = [
        "debootstrap",
        f"--variant={recipe['variant']}",
        "--include=" + ",".join(recipe["include"]),
        recipe["suite"],
        str(rootfs),
        recipe["mirror"],
    ]
    fetched = 0
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            words = line.split()
            if words[:2] == ["I:", "Retrieving"]:
                fetched += 1
                if fetched % 25 == 0:
                    _say(f"debootstrap: {fetched} packages retrieved")
            elif words[:1] == ["I:"] and words[1:2] != ["Validating"]:
                _say(f"debootstrap: {line.strip()[3:][:90]}")
        code = proc.wait()
    if code != 0:
        tail = "".join(log_path.read_text().splitlines(keepends=True)[-15:])
        raise LabError(f"debootstrap failed (exit {code}); log at {log_path}:\n{tail}")


def _chroot(rootfs: Path, script: str, stdin: str | None = None) -> None:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
    done = subprocess.run(
        ["chroot", str(rootfs), "/bin/sh", "-ec", script], input=stdin, text=True, capture_output=True, env=env
    )
    if done.returncode != 0:
        raise LabError(
            f"image step failed in {rootfs}: {script.splitlines()[0]}\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )


def _cache_debs(rootfs: Path, recipe: dict) -> None:
    """Download (not install) the stack's packages into the image's apt cache."""
    _say("downloading the stack's packages into the image's apt cache")
    shutil.copy("/etc/resolv.conf", rootfs / "etc/resolv.conf")
    (rootfs / "etc/apt/apt.conf.d/90foobar-keep-debs").write_text(
        'Binary::apt::APT::Keep-Downloaded-Packages "true";\nAPT::Keep-Downloaded-Packages "true";\n'
        'Acquire::Retries "0";\n'
    )
    pkgs = " ".join(recipe["cached_debs"])
    _chroot(rootfs, f"apt-get update -q\napt-get install -y -q --download-only {pkgs}")
    (rootfs / "etc/resolv.conf").unlink()
    count = len(list((rootfs / "var/cache/apt/archives").glob("*.deb")))
    _say(f"{count} .deb files cached")


def _configure(rootfs: Path, recipe: dict) -> None:
    """Make the tree bootable as a lab host: networkd, sshd, an admin user, no shared identity."""
    _say("configuring systemd-networkd, sshd and the admin user")
    user = recipe["admin_user"]
    _chroot(
        rootfs,
        "\n".join(
            [
                "systemctl enable systemd-networkd.service >/dev/null 2>&1",
                "systemctl mask apt-daily.timer apt-daily-upgrade.timer >/dev/null 2>&1",
                f"id {user} >/dev/null 2>&1 || useradd --create-home --shell /bin/bash --groups sudo {user}",
                "rm -f /etc/ssh/ssh_host_*",
            ]
        ),
    )
    (rootfs / "etc/ssh/sshd_config.d/foobar-lab.conf").write_text(
        "# foobar_ops lab: keys only, no DNS look-ups\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\nUseDNS no\n"
    )
    (rootfs / "etc/machine-id").write_text("")
    (rootfs / "etc/hostname").write_text("lab\n")
    os.makedirs(rootfs / "etc/systemd/network", exist_ok=True)
