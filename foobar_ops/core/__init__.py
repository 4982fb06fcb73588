"""The core of foobar_ops: inventory, SSH transport, facts, states, the engine, results and
reports, the journal, secrets and templating. It knows no role and imports nothing of the stack."""

from __future__ import annotations

from .version import __version__

__all__ = ["__version__"]
