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
# # Load balancer maintenance: drain, take out or put back a web server
#
# **What it does:** `drain` stops new sessions to a server and waits until its sessions end;
# `maint` takes it out at once; `ready` puts it back; each on every load balancer (the standby too,
# so a move of the floating address changes nothing). Taking out the last server that is UP on any
# of them is refused. Every change is journaled. (To move the floating address itself, see the
# `lb_handover` runbook.)
#
# **When to use it:** before working on a web server by hand, and after.
#
# **Parameters:** `inventory`, `server`, `action` (drain, maint or ready), `timeout` (seconds a
# drain waits).

# %% tags=["parameters"]
from typing import Optional

inventory: str = "inventories/lab.yml"  # the inventory file
server: str = ...  # the web server (its inventory host name); required
action = "drain"  # type: Literal["drain","maint","ready"] what to do with it
timeout: float = 60  # seconds a drain waits for sessions to end
run_id: Optional[str] = None  # set by the runner
output_notebook: Optional[str] = None  # set by the runner

# %%
import foobar_ops as fo

rb = fo.runbook(globals(), "lb_maintenance")
inv = fo.load_inventory(inventory)
keep = ["lb", "svname", "status", "weight", "scur", "lbtot", "check_status"]
fo.lb_stat(inv).query("pxname == 'bk_web' and svname not in ('FRONTEND', 'BACKEND')")[keep]

# %%
if action == "drain":
    waited = fo.lb_drain(inv, server, timeout=timeout, **rb.recorded("drain"))
    print(f"{server} drained in {waited:.1f} s")
elif action == "maint":
    print(server, fo.lb_maint(inv, server, **rb.recorded("maint")))
else:
    print(server, fo.lb_ready(inv, server, **rb.recorded("ready")))

# %% [markdown]
# ## Verify: the server is as asked and the site still answers

# %%
wanted = {"drain": "DRAIN", "maint": "MAINT", "ready": "UP"}[action]
check = fo.verify(inv, 10, wait=30 if action == "ready" else 0)  # a server put back: until it is UP
rows = fo.lb_stat(inv).query("pxname == 'bk_web' and svname == @server")
statuses = dict(zip(rows["lb"], rows["status"].astype(str), strict=True))
print(f"{server}: {statuses}; {check.line}")
assert statuses and all(s.startswith(wanted) for s in statuses.values()), f"{server} is {statuses}, not {wanted}"
assert (check.requests["status"] == 200).all(), check.line
