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
# # Load test: read scaling over the database pair
#
# **What it does:** sends a read-heavy load (nine reads to one write) through the load balancer with
# Locust and computes the verdict: each database node's share of reads against its read weight (within
# 0.1), writes on the primary only, the nodes' read counters, failures; then runs again with the
# replicas out of the read pool and reports the throughput ratio. Every run is kept (verdict,
# parameters, Locust's CSVs and HTML report) and
# journaled.
#
# **When to use it:** after a change to the load balancer, the app or the database pair, and on a schedule.
#
# **Parameters:** `inventory`, `users`, `spawn_rate`, `run_time`, `workers` (Locust workers; 0: one process).

# %% tags=["parameters"]
from typing import Optional

inventory: str = "inventories/lab.yml"  # the inventory file
users: int = 16  # concurrent Locust users
spawn_rate: float = 16  # users started per second
run_time: str = "20s"  # how long the load runs
workers: int = 0  # Locust worker processes (0: one process)
run_id: Optional[str] = None  # set by the runner
output_notebook: Optional[str] = None  # set by the runner

# %%
import foobar_ops as fo

rb = fo.runbook(globals(), "loadtest_read_scaling")
inv = fo.load_inventory(inventory)
test = fo.loadtest(
    inv,
    "read-scaling",
    users=users,
    spawn_rate=spawn_rate,
    run_time=run_time,
    workers=workers,
    **rb.recorded("loadtest"),
)
test

# %% [markdown]
# ## Requests per server, reads per database node

# %%
test.plot_shares()

# %% [markdown]
# ## Latency percentiles over time

# %%
test.plot_latency()
test.extra

# %% [markdown]
# ## Verify: the verdict passed

# %%
assert test.passed, f"{test.verdict}: " + "; ".join(f"{c.name}: {c.measured}" for c in test.failed_checks())
