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
# # Load test: round-robin balancing through the load balancer
#
# **What it does:** sends the home page and the items API through the load balancer with Locust (in
# processes of its own), checks each response's content, and computes the verdict: each web server's
# share of requests against its HAProxy weight (within 0.05), HAProxy's `lbtot` against the responses'
# own tally, the failure ratio, p50/p95/p99; a run whose load generator ran out of CPU is invalid,
# never a pass. Every run is kept (verdict, parameters, Locust's CSVs and HTML report) and
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

rb = fo.runbook(globals(), "loadtest_round_robin")
inv = fo.load_inventory(inventory)
test = fo.loadtest(
    inv,
    "round-robin",
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
