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
# # MariaDB failover: the primary is gone, promote the most advanced replica
#
# **What it does:** checks that the primary answers neither SSH nor its database port (otherwise it
# refuses: use the switchover), picks the reachable replica that received the most, lets it apply
# what it received, promotes it, updates the inventory and checks the app writes to it. The old
# primary starts read-only (fenced) when it comes back; the next apply (or the mysql_replication
# runbook) checks its GTID position and makes it a replica, or refuses it.
#
# **When to use it:** the primary's host is down and will not be back soon.
#
# **Parameters:** `inventory`, `test`.

# %% tags=["parameters"]
from typing import Optional

inventory: str = "inventories/lab.yml"  # the inventory file (it is updated to the new roles)
test: bool = False  # True: check and show the steps, change nothing
run_id: Optional[str] = None  # set by the runner
output_notebook: Optional[str] = None  # set by the runner
lock_wait: float = 0.0  # set by the runner: seconds to wait for another run's host lock (--wait)

# %%
import foobar_ops as fo

rb = fo.runbook(globals(), "mysql_failover")
inv = fo.load_inventory(inventory)
fo.db_status(inv)

# %%
change = fo.db_failover(inv, test=test, on_result=rb.progress, lock_wait=rb.lock_wait, **rb.recorded("failover"))
print(f"{change.kind} {change.old} -> {change.new or '?'}: {'ok' if change.ok else 'FAILED: ' + str(change.error)}")

# %% [markdown]
# ## Verify: writes go to the new primary

# %%
status = fo.db_status(inventory)
status

# %%
assert change.ok, change.error
if not test:
    primary = status.node(change.new)
    assert primary.role == "primary" and primary.error is None, status.as_json()
