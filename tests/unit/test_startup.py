"""Start-up: `import foobar_ops` and the command line import what a command needs when it needs it
(SQLAlchemy, pandas, paramiko and the like wait for the command that uses them), and every public
name still resolves."""

from __future__ import annotations

import subprocess
import sys

import foobar_ops

HEAVY = ("pandas", "sqlalchemy", "papermill", "matplotlib", "jinja2")
#: what only a command that reaches a host (or reads the journal) needs
HOST_BOUND = (*HEAVY, "nbformat", "locust", "numpy", "paramiko", "fabric", "invoke")


def loaded_after(code: str, watched: tuple[str, ...]) -> str:
    """What `python -c CODE` then prints of the watched modules it has imported, in a fresh process."""
    probe = f"{code}\nimport sys; print(sorted(m for m in {watched!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_importing_foobar_ops_imports_no_heavy_dependency():
    code = (
        "import foobar_ops, sys; "
        "print(sorted(m for m in ('pandas','sqlalchemy','papermill','matplotlib','jinja2') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[]\n"


def test_every_public_name_resolves():
    for name in foobar_ops.__all__:
        assert getattr(foobar_ops, name) is not None, name
    assert set(foobar_ops.__all__) <= set(dir(foobar_ops))
    assert foobar_ops.Journal is foobar_ops.journal.Journal and foobar_ops.apply.__module__.startswith(
        "foobar_ops.core"
    )
    assert callable(foobar_ops.load_inventory) and foobar_ops.observe.__name__ == "foobar_ops.stack.observe"


def test_an_unknown_name_is_an_attribute_error():
    try:
        foobar_ops.no_such_name  # noqa: B018 - the lookup is the test
    except AttributeError as err:
        assert "no_such_name" in str(err)
    else:
        raise AssertionError("foobar_ops.no_such_name resolved")


def test_the_command_line_imports_nothing_heavy_to_parse_print_its_version_or_help():
    assert loaded_after("import foobar_ops.cli.main", HOST_BOUND) == "[]"
    for flag in ("--version", "--help"):
        code = (
            "import contextlib, io\n"
            "from foobar_ops.cli.main import main\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            f"    main([{flag!r}])"
        )
        assert loaded_after(code, HOST_BOUND) == "[]", flag


def test_apply_reaches_its_hosts_before_it_loads_the_journal(tmp_path):
    # a run starts connecting as soon as its inventory is read: the engine, the roles' templates
    # (Jinja2) and the journal (SQLAlchemy, opened last, beside the hosts' opening commands) load
    # while the connections are being made, not before
    import socket

    import yaml

    from .inventories import lab_doc, write_doc

    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # closed again below: every connection is refused at once
    doc = lab_doc()
    for entry in doc["hosts"].values():
        entry["address"], entry["port"] = "127.0.0.1", port
    inventory = write_doc(tmp_path, yaml.safe_dump(doc, sort_keys=False))
    code = (
        "import sys\n"
        "seen = []\n"
        "def hook(event, args):\n"
        f"    if event == 'socket.connect' and tuple(args[1])[:2] == ('127.0.0.1', {port}):\n"
        "        seen.append('connect')\n"
        "    elif event == 'import' and args[0] in ('sqlalchemy', 'jinja2', 'foobar_ops.core.engine'):\n"
        "        seen.append(args[0])\n"
        "sys.addaudithook(hook)\n"
        "from foobar_ops.cli.main import main\n"
        f"main(['apply', '-i', {str(inventory)!r}, '--json'])\n"
        "print('SEEN', seen)\n"
    )
    env = {
        **__import__("os").environ,
        "FOOBAR_OPS_HOME": str(tmp_path / "records"),
        "TEST_DB_PW": "db-pw-0123456789",
        "TEST_REPL_PW": "repl-pw-0123456789",
        "TEST_SUDO": "sudo-pw",
    }
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("SEEN ")]
    assert line, done.stdout + done.stderr
    seen = eval(line[0][5:])
    assert "connect" in seen and {"sqlalchemy", "jinja2", "foobar_ops.core.engine"} <= set(seen), seen
    assert seen.index("connect") < seen.index("sqlalchemy"), seen


def test_every_error_a_caller_can_catch_lives_in_core_errors_and_is_exported():
    import importlib
    import pkgutil

    import foobar_ops.core.errors as errors

    for info in pkgutil.walk_packages(foobar_ops.__path__, "foobar_ops."):
        importlib.import_module(info.name)  # every module, so that every error class is defined

    def every(cls: type) -> list[type]:
        return [cls, *(sub for direct in cls.__subclasses__() for sub in every(direct))]

    found = {cls for cls in every(foobar_ops.FoobarOpsError) if cls.__module__.startswith("foobar_ops")}
    assert {cls.__module__ for cls in found} == {"foobar_ops.core.errors"}, sorted(
        f"{c.__module__}.{c.__name__}" for c in found if c.__module__ != "foobar_ops.core.errors"
    )
    for cls in found:
        assert getattr(foobar_ops, cls.__name__) is cls and cls.__name__ in foobar_ops.__all__, cls
    assert foobar_ops.RunLocked is errors.RunLocked and issubclass(foobar_ops.Terminated, KeyboardInterrupt)
    # the two "still running" errors say whose change it is
    assert issubclass(errors.EarlierChangeRunning, errors.RunLocked)
    assert not issubclass(errors.CutOffChangeRunning, errors.RunLocked)
