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
# (a table and a plot); with monitoring, the alerts firing and the last hour from Prometheus (answers
# per status class and server state as each load balancer saw them); then checks the site through
# the load balancer.
#
# **When to use it:** the site is slow, errors, or a server left the pool.
#
# **Parameters:** `inventory`, `since` (how far back to read the logs), `log_lines`.

# %% tags=["parameters"]
from typing import Optional

inventory: str = "inventories/lab.yml"  # the inventory file
since: str = "1 hour ago"  # how far back to read the services' logs
log_lines: int = 2000  # access log lines read per web server
run_id: Optional[str] = None  # set by the runner
output_notebook: Optional[str] = None  # set by the runner

# %%
import matplotlib.pyplot as plt

import foobar_ops as fo

rb = fo.runbook(globals(), "troubleshoot_web")
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
# ## Metrics (with monitoring): alerts firing, answers per class, servers up, the last hour


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
        web = 'proxy="bk_web"'
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True)
        answers = f"sum by (code) (rate(haproxy_backend_http_responses_total{{{web}}}[1m]))"
        plot(top, answers, "answers per second, per status class")
        plot(bottom, f'haproxy_server_status{{{web},state="UP"}}', "server UP in HAProxy (1) per load balancer")
        fig.tight_layout()
        plt.show()
    except fo.HealthError as err:  # Prometheus down: the logs above still tell
        print(f"no metrics: {err}")

# %% [markdown]
# ## Verify: the site answers through the load balancer

# %%
check = fo.verify(inv, 10, wait=5)
print(check.line)
assert check.ok, check.line
