# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: foobar-ops
#     language: python
#     name: foobar-ops
# ---

# %% [markdown]
# # Roll back the app to its previous release, one server at a time
#
# **What it does:** on each app server in turn: drain it in HAProxy, switch `current` to the
# newest other release, restart, health-check, put it back. The next deploy converges to the
# inventory's release again.
#
# **When to use it:** a release misbehaves in production and the previous one did not.
#
# **Parameters:** `inventory`, `hosts` (default: every app server), `verify_requests`.

# %% tags=["parameters"]
from typing import Optional

inventory: str = "inventories/lab.yml"  # the inventory file
hosts: str = "role:app"  # the app servers to roll back
verify_requests: int = 20  # requests sent through the load balancer at the end
run_id: Optional[str] = None  # set by the runner
output_notebook: Optional[str] = None  # set by the runner
lock_wait: float = 0.0  # set by the runner: seconds to wait for another run's host lock (--wait)

# %%
import foobar_ops as fo

rb = fo.runbook(globals(), "rollback")
inv = fo.load_inventory(inventory)
before = fo.verify(inv, 6, wait=10)
old = sorted(set(before.requests["release"].dropna()))
print("serving now:", old)

# %%
report = fo.rollback(inv, hosts=hosts, on_result=rb.progress, lock_wait=rb.lock_wait, **rb.recorded("rollback"))
print(report.summary(diffs=False))
assert report.ok, f"rollback failed on {', '.join(report.failed_hosts)}"

# %% [markdown]
# ## Verify: the site answers, on another release than before

# %%
check = fo.verify(inv, verify_requests)
new = sorted(set(check.requests["release"].dropna()))
print(check.line, "| releases now:", new)
check

# %%
assert check.ok and new != old, f"{check.line}; releases before {old}, after {new}"
