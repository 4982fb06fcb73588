"""Runbooks, an entry point beside the CLI: parameterized notebooks run with papermill by the runner,
their parameters declared once in their `parameters` cell."""

from __future__ import annotations

from .context import RunbookContext, runbook
from .parameters import RunbookParameterError, SecretRef, check_parameters

__all__ = ["RunbookContext", "RunbookParameterError", "SecretRef", "check_parameters", "runbook"]
