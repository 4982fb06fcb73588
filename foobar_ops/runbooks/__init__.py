"""Support for runbooks (parameterized notebooks run with papermill): an entry point beside the CLI."""

from __future__ import annotations

from .parameters import RunbookParameterError, check_parameters

__all__ = ["RunbookParameterError", "check_parameters"]
