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
# # Health report (read-only)
#
# **What it does:** changes nothing. Shows what Prometheus on the monitoring host sees now: every
# scrape target up or down and the alerts firing; the alerts the journal recorded; and the last
# `minutes` plotted from Prometheus: requests per web server, their response time, replication lag,
# CPU and disk per host. It fails when a critical alert fires.
#
# **When to use it:** a daily look at the stack, before a change, after a page.
#
# **Parameters:** `inventory`, `minutes` (how far back the plots go).

# %% tags=["parameters"]
from typing import Optional

inventory: str = "inventories/lab.yml"  # the inventory file (with stack.monitoring)
minutes: int = 60  # how far back the plots go
run_id: Optional[str] = None  # set by the runner
output_notebook: Optional[str] = None  # set by the runner

# %%
import matplotlib.pyplot as plt

import foobar_ops as fo

rb = fo.runbook(globals(), "health_report")
inv = fo.load_inventory(inventory)
state = fo.health(inv)
print(f"{len(state.targets) - len(state.down)} of {len(state.targets)} targets up, {len(state.alerts)} alert(s) firing")
state.targets_frame()

# %% [markdown]
# ## Alerts firing now

# %%
state.alerts_frame()

# %% [markdown]
# ## Alerts recorded (each firing and resolution the webhook received)

# %%
fo.records_alerts(since=f"{minutes}m")

# %% [markdown]
# ## The last `minutes`, from Prometheus

# %%
BACKEND = 'proxy="bk_web"'
ROOT = 'mountpoint="/"'
PANELS = [
    (
        "requests per web server (per s)",
        f"sum by (server) (rate(haproxy_server_http_responses_total{{{BACKEND}}}[1m]))",
    ),
    (
        "response time per web server (s)",
        f"avg by (server) (haproxy_server_response_time_average_seconds{{{BACKEND}}})",
    ),
    ("replication lag (s)", "max by (instance) (mysql_slave_status_seconds_behind_master)"),
    ("CPU busy per host", '1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[1m]))'),
    (
        "disk used per host (/)",
        f"max by (instance) (1 - node_filesystem_avail_bytes{{{ROOT}}} / node_filesystem_size_bytes{{{ROOT}}})",
    ),
]
fig, axes = plt.subplots(len(PANELS), 1, figsize=(9, 2.6 * len(PANELS)), sharex=True)
series = {}
for ax, (title, promql) in zip(axes, PANELS, strict=True):
    frame = fo.metrics(inv, promql, minutes=minutes)
    series[title] = frame
    if len(frame.columns):
        frame.plot(ax=ax, legend=True)
    ax.set_title(title)
fig.tight_layout()
plt.show()
{title: frame.tail(1).T for title, frame in series.items()}

# %% [markdown]
# ## Verify: no critical alert fires

# %%
assert state.ok, [a for a in state.alerts if a["severity"] == "critical"]
