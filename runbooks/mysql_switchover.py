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
# # MariaDB switchover: make a replica the primary, losing no committed write
#
# **What it does:** checks the pair, turns the primary read-only (writes wait), waits until the
# replica has applied everything it wrote, checks the replica holds nothing the primary lacks,
# promotes it, makes the old primary replicate from it, updates the inventory's `mysql_role` (its
# comments kept) and checks that the app writes to the new primary. A failed check before the
# promotion makes the old primary writable again and changes nothing else.
#
# **When to use it:** planned maintenance on the primary's host, or to move writes.
#
# **Parameters:** `inventory`, `to` (the replica to promote; default: the only one), `test`.

# %% tags=["parameters"]
from typing import Optional

inventory: str = "inventories/lab.yml"  # the inventory file (it is updated to the new roles)
to: Optional[str] = None  # the replica to promote (None: the only one)
test: bool = False  # True: check and show the steps, change nothing
run_id: Optional[str] = None  # set by the runner
output_notebook: Optional[str] = None  # set by the runner
lock_wait: float = 0.0  # set by the runner: seconds to wait for another run's host lock (--wait)

# %%
import foobar_ops as fo

rb = fo.runbook(globals(), "mysql_switchover")
inv = fo.load_inventory(inventory)
fo.db_status(inv)

# %%
change = fo.db_switchover(
    inv, to, test=test, on_result=rb.progress, lock_wait=rb.lock_wait, **rb.recorded("switchover")
)
print(f"{change.kind} {change.old} -> {change.new}: {'ok' if change.ok else 'FAILED: ' + str(change.error)}")

# %% [markdown]
# ## Verify: the new topology, from the updated inventory

# %%
status = fo.db_status(inventory)
status

# %%
assert change.ok, change.error
assert test or (status.ok and status.node(change.new).role == "primary"), status.as_json()
