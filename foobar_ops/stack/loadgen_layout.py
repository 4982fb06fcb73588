"""Where a load generator (role loadgen) keeps Locust, the locustfiles and its runs: shared by the
role that installs them, the scheduled runs and the remote workers of a distributed load test."""

from __future__ import annotations

ROOT = "/opt/foobar-loadgen"
WHEELS = f"{ROOT}/wheels"
RUNS = "/var/lib/foobar-loadgen/runs"
RUNNER = f"{ROOT}/run-loadtest"
#: the stack's locustfiles on the load generator
FILES = f"{ROOT}/loadtests"
#: the CA the load generator's runs verify the site's certificate against (stack.tls.ca; absent:
#: the system's)
SITE_CA = f"{ROOT}/site-ca.pem"


def venv(build_release: str) -> str:
    """Return the folder of the load generator's venv for a Locust build."""
    return f"{ROOT}/{build_release}"
