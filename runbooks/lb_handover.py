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
# # Load balancer handover: move the floating address before working on its holder
#
# **What it does:** shows the pair (who holds the floating address, each load balancer's VRRP and
# HAProxy state), waits until the load balancer `to` serves, and moves the address to it; the old
# holder stays as its standby (it does not take the address back: nopreempt). With `test`, it only
# says what it would do. The move is journaled.
#
# **When to use it:** before maintenance of the load balancer that holds the address (a reboot, a
# package upgrade).
#
# **Parameters:** `inventory`, `to` (the load balancer to take the address), `test`, `wait`
# (seconds to wait for `to` to serve).

# %% tags=["parameters"]
from typing import Optional

inventory: str = "inventories/lab.yml"  # the inventory file
to: str = ...  # the load balancer to take the floating address (its inventory host name); required
test: bool = False  # say what would happen; change nothing
wait: float = 30  # seconds to wait for `to` to serve
run_id: Optional[str] = None  # set by the runner
output_notebook: Optional[str] = None  # set by the runner

# %%
import foobar_ops as fo

rb = fo.runbook(globals(), "lb_handover")
inv = fo.load_inventory(inventory)
before = fo.lb_status(inv)
print(before.line())
before.as_json()["lbs"]

# %%
moved = fo.lb_handover(inv, to, test=test, wait=wait, **rb.recorded("handover"))
print(moved)

# %% [markdown]
# ## Verify: `to` holds the address, both serve, and the site answers through it

# %%
after = fo.lb_status(inv)
check = fo.verify(inv, 10, wait=0)
print(f"{after.line()}; {check.line}")
assert after.ok, after.line()
assert after.holder == (before.holder if test else to), after.line()
assert (check.requests["status"] == 200).all(), check.line
