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
# # Troubleshoot the web tier (read-only)
#
# **What it does:** changes nothing. Shows what HAProxy sees of each server, the stack's services on
# every host, the last warnings and errors they logged, and request latency from Nginx's access log
# (a table and a plot), then checks the site through the load balancer.
#
# **When to use it:** the site is slow, errors, or a server left the pool.
#
# **Parameters:** `inventory`, `since` (how far back to read the logs), `log_lines`.

# %% tags=["parameters"]
inventory: str = "inventories/lab.yml"  # the inventory file
since: str = "1 hour ago"  # how far back to read the services' logs
log_lines: int = 2000  # access log lines read per web server
run_id: str | None = None  # set by the runner
output_notebook: str | None = None  # set by the runner

# %%
import matplotlib.pyplot as plt

import foobar_ops as fo

rb = fo.runbook(globals())
inv = fo.load_inventory(inventory)

# %% [markdown]
# ## The load balancer

# %%
stat = fo.lb_stat(inv)
stat[stat["pxname"] == "bk_web"][["svname", "status", "weight", "scur", "stot", "lbtot", "hrsp_5xx", "check_status"]]

# %% [markdown]
# ## Services and their last errors

# %%
fo.observe.services(inv)

# %%
fo.observe.errors(inv, since=since)

# %% [markdown]
# ## Request latency (Nginx access log)

# %%
log = fo.observe.access_log(inv, lines=log_lines)
fo.observe.latency(log)

# %%
if not log.empty:
    fig, ax = plt.subplots(figsize=(9, 3.5))
    for host, rows in log.groupby("host"):
        ax.plot(rows["time"], rows["request_ms"], ".", alpha=0.5, label=host)
    ax.set_ylabel("request ms")
    ax.set_title("requests by time, per web server")
    ax.legend()
    plt.show()

# %% [markdown]
# ## Verify: the site answers through the load balancer

# %%
check = fo.verify(inv, 10, wait=5)
print(check.line)
assert check.ok, check.line
