"""foobar_ops: build, change and verify the foobar.com web stack.

HAProxy in front of two web servers (Nginx, the app under gunicorn, the code base), backed by a
MariaDB primary-replica pair; idempotent states over SSH, runbooks with papermill, a change journal.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
