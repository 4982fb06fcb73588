"""Build the app's code base on the control machine: its wheel and its dependencies' wheels,
cached (in the cache folder, never the source tree) by a hash of the sources, to be copied to hosts
that have no route to the outside."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core import paths
from ..core.errors import BuildError

#: The app's sources in a checkout of foobar_ops (the default when the inventory names none).
CHECKOUT_APP = Path(__file__).resolve().parents[2] / "app"


@dataclass(frozen=True)
class AppBuild:
    """A built code base: its version, release id and wheel files.

    version: the app's version (pyproject).
    release: version plus source hash: a new id for every code change.
    wheels: the wheel files (the app's and its dependencies').
    """

    version: str
    release: str
    wheels: tuple[Path, ...]


def app_source(inventory: Any = None) -> Path:
    """Return the folder of the app's sources: stack.app_source in the inventory (relative to the
    inventory file), else `app/` beside the inventory's folder, else the checkout's `app/`.

    inventory: the Inventory (None: the checkout's app).
    """
    if inventory is not None:
        named = inventory.stack.get("app_source")
        base = Path(inventory.path).resolve().parent
        if named:
            folder = (base / str(named)).resolve()
            if not (folder / "pyproject.toml").is_file():
                raise BuildError(f"{inventory.path}: key 'stack.app_source': {folder} holds no pyproject.toml")
            return folder
        beside = base.parent / "app"
        if (beside / "pyproject.toml").is_file():
            return beside
    if not (CHECKOUT_APP / "pyproject.toml").is_file():
        raise BuildError("the app's sources are not found: set stack.app_source in the inventory")
    return CHECKOUT_APP


def source_hash(app_dir: Path) -> str:
    """Return a hash of every source file of the app (paths and contents)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in app_dir.rglob("*") if p.is_file() and _is_source(p, app_dir)):
        digest.update(str(path.relative_to(app_dir)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _is_source(path: Path, root: Path) -> bool:
    parts = path.relative_to(root).parts
    return not any(p in ("build", "dist", "__pycache__") or p.endswith(".egg-info") for p in parts)


def build_app(inventory: Any = None, app_dir: Path | None = None, out_dir: Path | None = None) -> AppBuild:
    """Build (once per source hash) the app's wheel and its dependencies' wheels.

    inventory: the Inventory (it may name the app's sources).
    app_dir: the app's source folder (with pyproject.toml); default: app_source(inventory).
    out_dir: where builds are cached, one folder per release; default: CACHE/wheels.
    """
    app_dir = app_dir or app_source(inventory)
    out_dir = out_dir or paths.cache_dir() / "wheels"
    meta = tomllib.loads((app_dir / "pyproject.toml").read_text())["project"]
    version = meta["version"]
    release = f"{version}-{source_hash(app_dir)[:10]}"
    target = out_dir / release
    if not (target / ".complete").exists():
        _pip_wheel(app_dir, target)
    wheels = tuple(sorted(target.glob("*.whl")))
    return AppBuild(version, release, wheels)


def _pip_wheel(app_dir: Path, target: Path) -> None:
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    scratch = tmp / ".src"
    shutil.copytree(app_dir, scratch, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(tmp), "--only-binary=:all:", str(scratch)],
        capture_output=True,
        text=True,
    )
    shutil.rmtree(scratch, ignore_errors=True)
    if done.returncode != 0:
        raise BuildError(f"pip wheel {app_dir} failed:\n{done.stdout[-1500:]}{done.stderr[-1500:]}")
    bad = [w.name for w in tmp.glob("*.whl") if not w.name.endswith("-none-any.whl")]
    if bad:
        raise BuildError(f"wheels that are not pure Python cannot go to the hosts as built: {', '.join(bad)}")
    (tmp / ".complete").write_text("ok\n")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


LOADGEN_PLATFORMS = (
    "manylinux2014_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux_2_28_x86_64",
    "manylinux_2_5_x86_64",
    "linux_x86_64",
)


def build_loadgen(version: str | None = None, out_dir: Path | None = None) -> AppBuild:
    """Fetch (once per version) the wheels of Locust and its dependencies for the lab hosts' Python
    (CPython 3.11 on x86_64), to install a load generator on a host that has no route out.

    version: Locust's version (default: the one installed here, so both ends speak alike).
    out_dir: where they are cached (default: CACHE/loadgen-wheels).
    """
    from importlib.metadata import version as installed

    version = version or installed("locust")
    target = (out_dir or paths.cache_dir() / "loadgen-wheels") / version
    if not (target / ".complete").exists():
        _download([f"locust=={version}"], target)
    return AppBuild(version, f"locust-{version}", tuple(sorted(target.glob("*.whl"))))


#: foobar_ops's own checkout (its sources, its pyproject), built for a host that runs scheduled runbooks.
CHECKOUT = Path(__file__).resolve().parents[2]


def build_runner(out_dir: Path | None = None) -> AppBuild:
    """Build foobar_ops itself for a host that runs scheduled runbooks (CPython 3.11 on x86_64, no
    route out): its wheel (once per source hash) and its dependencies' wheels (once per dependency
    list), from the checkout this foobar_ops runs from.

    out_dir: where they are cached (default: CACHE/runner-wheels).
    """
    from ..core.version import __version__

    project = CHECKOUT / "pyproject.toml"
    if not project.is_file() or not (CHECKOUT / "foobar_ops").is_dir():
        raise BuildError(f"scheduling runbooks on a host needs foobar_ops's source checkout; {CHECKOUT} is not one")
    out_dir = out_dir or paths.cache_dir() / "runner-wheels"
    digest = hashlib.sha256(project.read_bytes())
    for path in sorted(p for p in (CHECKOUT / "foobar_ops").rglob("*") if p.is_file() and _is_source(p, CHECKOUT)):
        if path.suffix not in (".pyc",):
            digest.update(str(path.relative_to(CHECKOUT)).encode() + b"\0" + path.read_bytes() + b"\0")
    release = f"foobar_ops-{__version__}-{digest.hexdigest()[:10]}"
    own = out_dir / "self" / release
    if not (own / ".complete").exists():
        tmp = own.with_name(own.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        scratch = tmp / ".src"
        scratch.mkdir(parents=True)
        shutil.copytree(CHECKOUT / "foobar_ops", scratch / "foobar_ops", ignore=shutil.ignore_patterns("__pycache__"))
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(CHECKOUT / name, scratch / name)
        done = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(tmp), str(scratch)],
            capture_output=True,
            text=True,
        )
        shutil.rmtree(scratch, ignore_errors=True)
        if done.returncode != 0:
            raise BuildError(f"pip wheel foobar_ops failed:\n{done.stdout[-1500:]}{done.stderr[-1500:]}")
        (tmp / ".complete").write_text("ok\n")
        shutil.rmtree(own, ignore_errors=True)
        tmp.rename(own)
    requirements = list(tomllib.loads(project.read_text())["project"]["dependencies"])
    deps = out_dir / "deps" / hashlib.sha256("\n".join(requirements).encode()).hexdigest()[:16]
    if not (deps / ".complete").exists():
        _download(requirements, deps)
    return AppBuild(__version__, release, tuple(sorted(own.glob("*.whl"))) + tuple(sorted(deps.glob("*.whl"))))


def _download(requirements: list[str], target: Path) -> None:
    """Fetch the wheels of requirements (and theirs) for the hosts' Python (CPython 3.11 on
    x86_64) into target, whole or not at all (a `.complete` marker says it is whole)."""
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    platforms = [arg for p in LOADGEN_PLATFORMS for arg in ("--platform", p)]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--only-binary=:all:",
            *platforms,
            "--python-version",
            "311",
            "--implementation",
            "cp",
            "--abi",
            "cp311",
            "--abi",
            "abi3",
            "--abi",
            "none",
            "-d",
            str(tmp),
            *requirements,
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise BuildError(
            f"pip download {' '.join(requirements)[:200]} failed:\n{done.stdout[-1500:]}{done.stderr[-1500:]}"
        )
    (tmp / ".complete").write_text("ok\n")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
