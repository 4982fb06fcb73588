"""The engine: apply declared states to hosts (facts, plan, apply, react), phase by phase."""

from __future__ import annotations

from .host import HostApply, check_states
from .phases import Phase, apply, load_state_file

__all__ = ["HostApply", "Phase", "apply", "check_states", "load_state_file"]
