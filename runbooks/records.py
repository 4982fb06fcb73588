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
# # Records: what was changed, by whom, when (read-only)
#
# **What it does:** changes nothing. Shows the journal's recent runs, the changes per host over
# time (a plot), and one run's results with their diffs.
#
# **When to use it:** an audit, a post-mortem, "what changed on web-01 yesterday?".
#
# **Parameters:** `since` (an age such as 7d, or a date), `host` (only this host), `run` (a run id
# whose results to show; empty: the newest run that changed something).

# %% tags=["parameters"]
from typing import Optional

since: str = "7d"  # how far back: an age (7d, 12h) or a date
host: Optional[str] = None  # only this host (None: all)
run: str = ""  # a run id to show in full (empty: the newest run that changed something)
run_id: Optional[str] = None  # set by the runner
output_notebook: Optional[str] = None  # set by the runner

# %%
import matplotlib.pyplot as plt
import pandas as pd

import foobar_ops as fo

rb = fo.runbook(globals(), "records")
journal = fo.Journal()
runs = journal.runs(50)
runs[["run_id", "started", "user", "command", "runbook", "status", "results", "changed", "failed"]]

# %% [markdown]
# ## Changes per host over time

# %%
changes = journal.changes(host=host, since=since)
if not changes.empty:
    changes["day"] = pd.to_datetime(changes["at"], format="ISO8601").dt.floor("h")
    per = changes.groupby(["day", "host"]).size().unstack(fill_value=0)
    per.plot(kind="bar", stacked=True, figsize=(9, 3.5), title="changes per host, per hour")
    plt.show()
changes[["at", "host", "state", "name", "comment"]].head(30) if not changes.empty else "no changes"

# %% [markdown]
# ## One run in full

# %%
chosen = run or (changes["run_id"].iloc[0] if not changes.empty else runs["run_id"].iloc[0])
results = journal.results(chosen)
print(journal.run(chosen))
results[["host", "state", "name", "status", "comment", "diff"]]

# %% [markdown]
# ## Verify: the journal answered

# %%
assert len(runs) > 0 and len(results) >= 0, "the journal holds no run"
