# %% [markdown]
# # From a search to a paper's table
#
# A search chooses a learning rate on validation; the chosen and the default rates are then
# trained over several seeds; the report ranks them on validation, gives the test numbers with
# the interval the design calls for and a paired test, and writes the LaTeX; `jaxdl.cite`
# gives the BibTeX. The test set never chooses anything. Tiny sizes (two epochs on the
# bundled digits) keep it to a few minutes on 2 CPU cores.

# %%
import json
import pathlib
import tempfile

import matplotlib.pyplot as plt
from IPython.display import Markdown, display

import jaxdl

ROOT = next(p for p in [pathlib.Path.cwd(), *pathlib.Path.cwd().parents]
            if (p / "experiments" / "seed_cnn_digits.py").exists())
EXPERIMENT = str(ROOT / "experiments" / "seed_cnn_digits.py")
work = pathlib.Path(tempfile.mkdtemp())
short = ["num_epochs=2"]

# %% [markdown]
# ## Search
#
# `jaxdl.tune` runs an Optuna study (TPE; `sampler="random"` here, for four trials). Each
# trial is a run folder; its objective is the validation accuracy of the epoch validation
# selected. The study lives in `study.db` beside the trials, so a second worker, or a rerun,
# joins it.

# %%
trials = jaxdl.tune(EXPERIMENT, work / "search", ["optim.learning_rate=loguniform(3e-4,3e-2)"],
                    short, trials=4, sampler="random")
for trial in trials:
  print(trial["name"], trial["params"], trial["state"], trial["value"])
display(Markdown(jaxdl.report(work / "search")))

# %% [markdown]
# ## The chosen rate against the default, over seeds
#
# The best trial by validation gives the rate; both rates are then trained with three seeds
# each on the same test split (`data.split_seed` is not the model seed).

# %%
best = max((t for t in trials if t["value"] is not None), key=lambda t: t["value"])
chosen = best["params"]["optim.learning_rate"]
default = jaxdl.get_config(EXPERIMENT).optim.learning_rate
print(f"chosen on validation: {chosen:.5f}; the experiment's default: {default}")
table = work / "table"
jaxdl.sweep(EXPERIMENT, table, {"optim.learning_rate": [chosen, default], "seed": [0, 1, 2]},
            short)

# %% [markdown]
# ## The table
#
# Groups are ranked on validation; test accuracy has a Wilson interval of the test set's own
# sampling error (one split), and the best group is bold only if a paired test (McNemar's, per
# test example, Holm-corrected) finds it better.

# %%
display(Markdown(jaxdl.report(table)))

# %%
print(jaxdl.report(table, fmt="latex"))

# %% [markdown]
# The spread over seeds, per group, from each member's `results.json`:

# %%
runs = sorted(p for p in table.iterdir() if (p / "results.json").exists())
by_rate: dict[float, list[float]] = {}
for run in runs:
  rate = json.loads((run / "config.json").read_text())["optim"]["learning_rate"]
  by_rate.setdefault(rate, []).append(json.loads((run / "results.json").read_text())["test_accuracy"])
fig, ax = plt.subplots(figsize=(5, 3))
for i, (rate, accuracies) in enumerate(sorted(by_rate.items())):
  ax.plot([i] * len(accuracies), accuracies, "o", label=f"lr {rate:.4g}")
ax.set_xticks(range(len(by_rate)), [f"{r:.4g}" for r in sorted(by_rate)])
ax.set_xlabel("learning rate")
ax.set_ylabel("test accuracy (one point per seed)")
plt.show()

# %% [markdown]
# ## Citing
#
# BibTeX for jaxdl, JAX, Flax, Optax, the model's, the data's and the optimizer's papers.

# %%
print(jaxdl.cite(table))
