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
# # Rolling deploy: a new app release, one server at a time, under traffic
#
# **What it does:** builds the app's code base into a release (a new one for every code change, or
# forced with `build`), plans the app role, then applies that plan one web server at a time: each
# is drained in HAProxy (its requests finish), switched to the new release, health-checked, put back
# and waited for until UP before the next. A release that fails its health check stops after the
# first server, which is rolled back to its previous release.
#
# **When to use it:** to ship a new version of the application.
#
# **Parameters:** `inventory`, `build` (a label that forces a new release, e.g. a ticket number;
# empty: the code's own release), `verify_requests`.

# %% tags=["parameters"]
from typing import Optional

inventory: str = "inventories/lab.yml"  # the inventory file
build: str = ""  # a label forcing a new release (letters, digits, dots, underscores); empty: none
verify_requests: int = 20  # requests sent through the load balancer at the end
run_id: Optional[str] = None  # set by the runner
output_notebook: Optional[str] = None  # set by the runner
lock_wait: float = 0.0  # set by the runner: seconds to wait for another run's host lock (--wait)

# %%
import foobar_ops as fo

rb = fo.runbook(globals(), "rolling_deploy")
inv = fo.load_inventory(inventory)
if build:
    inv = inv.with_vars("role:app", app_build=build)  # this run only; the inventory file is unchanged
before = fo.verify(inv, 6, wait=10)
print("before:", before.line, "| releases:", sorted(set(before.requests["release"].dropna())))

# %% [markdown]
# ## Plan the app role (test mode)

# %%
plan = fo.plan(inv, ["app"], save_plan=rb.path("plan.json"), **rb.recorded("plan"))
plan

# %% [markdown]
# ## Apply it one server at a time

# %%
report = rb.apply_plan(inv, plan, "rolling deploy")
print(report.summary(diffs=False))
switched = sorted({r.host for r in report.results if r.id == "app:current" and r.changed})
if not report.ok and switched:  # the servers that took the new release before it failed go back
    print(f"the rolling deploy failed; rolling back {', '.join(switched)} (the others never changed)")
    back = fo.rollback(
        inv, hosts=",".join(switched), lock_wait=rb.lock_wait, **rb.recorded("roll back the failed server")
    )
    print(back.summary(diffs=False))
assert report.ok, f"the rolling deploy stopped at {', '.join(report.failed_hosts)} (run {report.run_id})"

# %% [markdown]
# ## Verify: every server on the new release, the site answering

# %%
check = fo.verify(inv, verify_requests)
releases = sorted(set(check.requests["release"].dropna()))
print(check.line, "| releases:", releases)
check

# %%
assert check.ok and len(releases) == 1, f"{check.line}; releases served: {releases}"
