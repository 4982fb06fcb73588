"""file.managed and file.symlink as a host runs them: the planned commands run by a real /bin/sh
against a temporary folder (no host, no root).

Each script is built as the engine builds an apply section's body (HostApply._apply, checked
below against the engine itself): `set -e`, FOOBAR_STAGE set to a folder holding the plan's
uploads and a trap that removes it, then the plan's commands, one a line. The fact each plan
starts from is probed by running the state's own fact command in the same shell. Owner and group
are the current user's, backups go to a folder of the test's (files.BACKUP_DIR).

validate_in_context is not run here: it needs root and a private mount namespace.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shlex
import subprocess
import tempfile
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from foobar_ops import states as s
from foobar_ops.core.engine.host import VALIDATION_FAILED, HostApply
from foobar_ops.core.shell import STAGE_VAR, cmd
from foobar_ops.core.states import files
from foobar_ops.core.states.base import Plan, State
from tests.unit.fakes import FakeRemote, a_file

SH = "/bin/sh"
ME = pwd.getpwuid(os.getuid()).pw_name
MY_GROUP = grp.getgrgid(os.getgid()).gr_name
OLD = b"frontend www\n    bind :80\n"
NEW = b"frontend www\n    bind :8080\n"
CANDIDATE_NAME = r"\.app\.cfg\.foobar-new\.[A-Za-z0-9]{6}"  # what mktemp makes of the template


def engine_script(plan: Plan, stage: Path | None = None) -> str:
    """The body of the engine's apply section for a plan (see HostApply._apply)."""
    head = f"set -e; {STAGE_VAR}={cmd(str(stage))}; trap 'rm -rf \"${STAGE_VAR}\"' EXIT; " if stage else "set -e; "
    return head + "\n".join(plan.commands)


def staged(tmp_path: Path, plan: Plan) -> Path:
    """A private folder of its own (0700) holding the plan's uploads (0600), as the engine uploads them."""
    folder = Path(tempfile.mkdtemp(prefix="stage-", dir=tmp_path))
    for name, data in plan.uploads.items():
        (folder / name).write_bytes(data if isinstance(data, bytes) else data())
        (folder / name).chmod(0o600)
    return folder


def probe(st: State) -> object:
    """The state's fact, as its own fact command prints it here."""
    fact = st.fact()
    out = subprocess.run([SH, "-c", fact.command()], capture_output=True, text=True, check=True)
    return fact.parse(out.stdout)


def planned(st: State) -> Plan:
    plan = st.plan(probe(st))
    assert plan.error is None and plan.needed, plan
    return plan


def run(script: str) -> subprocess.CompletedProcess:
    return subprocess.run([SH, "-c", script], capture_output=True, text=True, timeout=30)


def leftovers(folder: Path) -> list[str]:
    """Temporary names a file state left in folder."""
    return sorted(p.name for p in folder.iterdir() if ".foobar-new." in p.name or ".foobar-link." in p.name)


@pytest.fixture
def backups(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "backups"
    monkeypatch.setattr(files, "BACKUP_DIR", str(folder))
    return folder


@pytest.fixture
def conf_dir(tmp_path) -> Path:
    """The live file's folder, its name needing quotes: every path goes through the shell whole."""
    folder = tmp_path / 'conf dir\'s "x"'
    folder.mkdir()
    return folder


def managed(path: Path, content: bytes, **kw) -> State:
    return s.file.managed(str(path), content, owner=ME, group=MY_GROUP, **kw)


def test_the_script_run_here_is_the_engines(conf_dir, backups):
    st = managed(conf_dir / "app.cfg", NEW, validate="true {}")
    remote = FakeRemote({st: a_file(OLD)})
    HostApply(SimpleNamespace(name="web-01", user="root"), [st], remote, False, lambda _: None).execute()
    ((upload, _),) = remote.uploads.items()
    (body,) = remote.bodies("apply")
    plan = st.plan(st.fact().parse(a_file(OLD)(st.fact())))
    assert body == engine_script(plan, Path(upload).parent)


# --- file.managed -------------------------------------------------------------------------------


@pytest.mark.parametrize("live", [OLD, None], ids=["updated", "created"])
def test_managed_script_installs_the_content_and_leaves_no_candidate(tmp_path, conf_dir, backups, live):
    path = conf_dir / "app.cfg"
    if live is not None:
        path.write_bytes(live)
    seen = tmp_path / "validated"  # the validator writes down the path it was given
    st = managed(
        path, NEW, mode="0640", validate=f"printf %s {{}} > {shlex.quote(str(seen))}; grep -qxF '    bind :8080' {{}}"
    )
    plan = planned(st)
    stage = staged(tmp_path, plan)

    done = run(engine_script(plan, stage))

    assert done.returncode == 0, done.stderr
    assert path.read_bytes() == NEW
    assert path.stat().st_mode & 0o7777 == 0o640 and path.stat().st_uid == os.getuid()
    assert leftovers(conf_dir) == [] and sorted(p.name for p in conf_dir.iterdir()) == ["app.cfg"]
    # the validator checked a candidate of its own, next to the live file (a rename is atomic there)
    assert re.fullmatch(re.escape(f"{conf_dir}/") + CANDIDATE_NAME, seen.read_text())
    assert not stage.exists()  # the engine's trap removed the uploads
    if live is None:
        assert not backups.exists()
    else:
        (backup,) = backups.iterdir()
        assert backup.read_bytes() == OLD


def test_managed_script_rejected_by_its_validator_leaves_the_live_file_alone(tmp_path, conf_dir, backups):
    path = conf_dir / "app.cfg"
    path.write_bytes(OLD)
    before = path.stat()
    validator = "echo \"[ALERT] parsing [$1:2] : unknown keyword 'bind2'\" >&2; exit 3"
    plan = planned(managed(path, NEW, validate=f"sh -c {shlex.quote(validator)} haproxy {{}}"))
    stage = staged(tmp_path, plan)

    done = run(engine_script(plan, stage))

    assert done.returncode == VALIDATION_FAILED == 97
    assert re.fullmatch(
        re.escape(f"validation failed (exit 3): [ALERT] parsing [{conf_dir}/")
        + CANDIDATE_NAME
        + re.escape(":2] : unknown keyword 'bind2'\n"),
        done.stderr,
    ), done.stderr
    assert path.read_bytes() == OLD
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_mode) == (before.st_ino, before.st_mtime_ns, before.st_mode)
    assert leftovers(conf_dir) == []
    assert not backups.exists()  # validation comes before the backup
    assert not stage.exists()


def test_two_managed_scripts_at_once_each_validate_their_own_candidate(tmp_path, conf_dir, backups):
    path = conf_dir / "app.cfg"
    path.write_bytes(OLD)
    meet = tmp_path / "meet"  # each validator marks that it started; after its sleep the other must have too
    meet.mkdir()
    contents = {tag: b"".join(b"%s %05d %s\n" % (tag.encode(), i, b"x" * 200) for i in range(2000)) for tag in "AB"}
    scripts = {}
    for tag, other in (("A", "B"), ("B", "A")):
        expected = tmp_path / f"expected-{tag}"
        expected.write_bytes(contents[tag])
        validate = (
            f"touch {shlex.quote(str(meet / tag))}; sleep 0.5; "
            f"test -e {shlex.quote(str(meet / other))} && cmp -- {{}} {shlex.quote(str(expected))}"
        )
        plan = planned(managed(path, contents[tag], validate=validate))
        scripts[tag] = engine_script(plan, staged(tmp_path, plan))

    procs = {
        tag: subprocess.Popen([SH, "-c", body], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for tag, body in scripts.items()
    }
    outcomes = {tag: (p.communicate(timeout=30), p.returncode) for tag, p in procs.items()}

    for tag, ((_, err), code) in outcomes.items():
        assert code == 0, f"run {tag}: exit {code}: {err}"
    assert path.read_bytes() in (contents["A"], contents["B"])  # one of them, whole
    assert leftovers(conf_dir) == []
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("stage-")) == []
    kept = [b.read_bytes() for b in backups.iterdir()]
    assert len(kept) == 2 and all(k in (OLD, contents["A"], contents["B"]) for k in kept)


def test_managed_script_failing_after_mktemp_leaves_no_candidate(tmp_path, conf_dir, backups):
    path = conf_dir / "app.cfg"
    path.write_bytes(OLD)
    st = s.file.managed(str(path), NEW, owner="foobar-no-such-user", group=MY_GROUP)
    plan = planned(st)

    done = run(engine_script(plan, staged(tmp_path, plan)))

    assert done.returncode != 0 and "foobar-no-such-user" in done.stderr
    assert path.read_bytes() == OLD
    assert leftovers(conf_dir) == []


# --- file.symlink -------------------------------------------------------------------------------


@pytest.fixture
def releases(tmp_path) -> tuple[Path, Path]:
    """Two release folders a link can point at (empty: a link made inside one would show)."""
    v1, v2 = tmp_path / "release 1", tmp_path / "release 2's"
    v1.mkdir()
    v2.mkdir()
    return v1, v2


def test_symlink_script_replaces_an_existing_link_and_leaves_no_temporary_link(conf_dir, releases):
    v1, v2 = releases
    link = conf_dir / "current"
    link.symlink_to(v1)
    before = os.lstat(link).st_ino
    plan = planned(s.file.symlink(str(link), str(v2)))

    done = run(engine_script(plan))

    assert done.returncode == 0, done.stderr
    assert os.readlink(link) == str(v2)
    assert os.lstat(link).st_ino != before  # a new link renamed over the old one, not edited in place
    assert leftovers(conf_dir) == [] and sorted(p.name for p in conf_dir.iterdir()) == ["current"]
    assert list(v1.iterdir()) == [] and list(v2.iterdir()) == []  # nothing made inside a target folder


def test_symlink_script_never_leaves_the_path_missing_while_it_replaces_the_link(conf_dir, releases):
    link = conf_dir / "current"
    link.symlink_to(releases[0])
    seen: list[str] = []
    missing: list[OSError] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            try:
                seen.append(os.readlink(link))
            except OSError as err:
                missing.append(err)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for n in range(20):
            target = releases[(n + 1) % 2]
            result = run(engine_script(planned(s.file.symlink(str(link), str(target)))))
            assert result.returncode == 0, result.stderr
            assert os.readlink(link) == str(target)
    finally:
        done.set()
        watcher.join()

    assert missing == []  # rename(2): the path always names a link
    assert seen and set(seen) <= {str(releases[0]), str(releases[1])}
    assert leftovers(conf_dir) == []
