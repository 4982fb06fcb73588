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
# # Troubleshoot replication (read-only)
#
# **What it does:** changes nothing. Shows each database node's role, threads, lag, GTID position
# and errors, samples the replicas' lag for a while (a plot), and shows MariaDB's last warnings
# and errors; then checks replication strictly.
#
# **When to use it:** reads look stale, a replica left the read pool, `db status` is not ok.
#
# **Parameters:** `inventory`, `samples`, `interval` (seconds between lag samples), `since`.

# %% tags=["parameters"]
from typing import Optional

inventory: str = "inventories/lab.yml"  # the inventory file
samples: int = 5  # lag samples to take
interval: float = 1.0  # seconds between samples
since: str = "1 hour ago"  # how far back to read MariaDB's log
run_id: Optional[str] = None  # set by the runner
output_notebook: Optional[str] = None  # set by the runner

# %%
import time

import matplotlib.pyplot as plt
import pandas as pd

import foobar_ops as fo

rb = fo.runbook(globals(), "troubleshoot_replication")
inv = fo.load_inventory(inventory)
status = fo.db_status(inv)
status

# %% [markdown]
# ## Replication lag over time

# %%
rows = []
for i in range(samples):
    for node in fo.db_status(inv).nodes:
        rows.append({"t": i * interval, "host": node.host, "role": node.role, "lag_s": node.lag_s})
    time.sleep(interval)
lag = pd.DataFrame(rows)
replicas = lag[lag["role"] == "replica"]
fig, ax = plt.subplots(figsize=(8, 3))
for host, points in replicas.groupby("host"):
    ax.plot(points["t"], points["lag_s"], marker="o", label=host)
ax.set_xlabel("seconds")
ax.set_ylabel("lag (s)")
ax.set_title("replication lag")
if len(replicas):
    ax.legend()
plt.show()
lag.pivot_table(index="t", columns="host", values="lag_s")

# %% [markdown]
# ## MariaDB's last warnings and errors

# %%
fo.observe.errors(inv, hosts="role:mysql", since=since)

# %% [markdown]
# ## Metrics (with monitoring): the last hour of lag and of the replicas' threads


# %%
def plot(ax, promql: str, title: str) -> None:
    """A PromQL query over the last hour on ax (a note there when it has no data)."""
    frame = fo.metrics(inv, promql, minutes=60)
    if len(frame.columns):
        frame.plot(ax=ax)
    else:
        ax.text(0.5, 0.5, "no data", ha="center", transform=ax.transAxes)
    ax.set_title(title)


if inv.stack.get("monitoring") is None:
    print("the inventory has no monitoring (stack.monitoring): no metrics to show")
else:
    try:
        display(fo.health(inv).alerts_frame())  # display: IPython's
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True)
        plot(top, "max by (instance) (mysql_slave_status_seconds_behind_master)", "replication lag (s), per replica")
        threads = "min by (instance) (mysql_slave_status_slave_io_running * mysql_slave_status_slave_sql_running)"
        plot(bottom, threads, "both threads running (1), per replica")
        fig.tight_layout()
        plt.show()
    except fo.HealthError as err:  # Prometheus down: the logs above still tell
        print(f"no metrics: {err}")

# %% [markdown]
# ## Verify: replication is healthy

# %%
final = fo.db_status(inv)
assert final.ok, final.as_json()
