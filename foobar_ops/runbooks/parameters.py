"""Runbook parameters: check the parameters a run was given, by name and type."""

from __future__ import annotations

import types
from typing import Any

from ..core.errors import FoobarOpsError

#: Names an IPython kernel puts in a notebook's namespace before any cell runs.
_KERNEL_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open", "display"}


class RunbookParameterError(FoobarOpsError):
    """A runbook was given an unknown parameter or a value of the wrong type."""


def check_parameters(namespace: dict[str, Any], spec: dict[str, tuple[type, ...]]) -> dict[str, Any]:
    """Check a runbook's parameters by name and type; return them as a dict.

    namespace: the notebook's globals() right after the parameters cells.
    spec: parameter name -> allowed types (e.g. {"test": (bool,), "hosts": (str, type(None))}).
    Raises RunbookParameterError naming an unknown parameter (a typo such as `tset`) or a value of
    the wrong type (such as the string "false" for a bool).
    """
    unknown = sorted(
        n
        for n in namespace
        if not n.startswith("_")
        and n not in spec
        and n not in _KERNEL_NAMES
        and not callable(namespace[n])
        and not isinstance(namespace[n], types.ModuleType)
    )
    if unknown:
        raise RunbookParameterError(
            f"unknown parameter(s): {', '.join(unknown)} (this runbook takes: {', '.join(spec)})"
        )
    missing = [name for name in spec if name not in namespace]
    if missing:
        raise RunbookParameterError(f"parameter(s) {', '.join(missing)} missing from the runbook's parameters cell")
    for name, allowed in spec.items():
        value = namespace[name]
        if not isinstance(value, allowed) or (bool not in allowed and isinstance(value, bool)):
            wanted = " or ".join("None" if t is type(None) else t.__name__ for t in allowed)
            raise RunbookParameterError(f"parameter {name!r} must be {wanted}, not {type(value).__name__} {value!r}")
    return {name: namespace[name] for name in spec}
