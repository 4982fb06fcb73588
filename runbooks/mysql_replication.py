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
# # MariaDB replication: set up (or repair) the primary-replica pair
#
# **What it does:** plans the mysql role (test mode: what would happen to replication: seed a new
# replica, restart stopped threads, re-point, or refuse a node that holds transactions the primary
# lacks), applies that plan, then checks replication strictly and that a row written through the
# site reaches every replica.
#
# **When to use it:** a new replica, a replica rebuilt from nothing, replication that stopped.
#
# **Parameters:** `inventory`, `test` (plan only), `max_wait` (seconds a new row gets to reach the
# replicas).

# %% tags=["parameters"]
from typing import Optional

inventory: str = "inventories/lab.yml"  # the inventory file
test: bool = False  # True: plan only, change nothing
max_wait: float = 5  # seconds a row written through the site gets to reach every replica
run_id: Optional[str] = None  # set by the runner
output_notebook: Optional[str] = None  # set by the runner
lock_wait: float = 0.0  # set by the runner: seconds to wait for another run's host lock (--wait)

# %%
import foobar_ops as fo

rb = fo.runbook(globals(), "mysql_replication")
inv = fo.load_inventory(inventory)
fo.db_status(inv)

# %% [markdown]
# ## Plan the mysql role

# %%
plan = fo.plan(inv, ["mysql"], save_plan=rb.path("plan.json"), **rb.recorded("plan"))
plan

# %%
report = plan if test else rb.apply_plan(inv, plan)
assert report.ok, f"failed on {', '.join(report.failed_hosts)} (run {report.run_id})"

# %% [markdown]
# ## Verify: replication healthy, a new row on every replica

# %%
status = fo.db_status(inv)
status

# %%
if not test:
    assert status.ok, status.as_json()
    seen = fo.replication_probe(inv, timeout=max_wait)
    print(seen)
    assert all(seen.values()), f"the probe row did not reach: {[h for h, ok in seen.items() if not ok]}"
