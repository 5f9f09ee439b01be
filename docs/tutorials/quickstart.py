# %% [markdown]
# # Quickstart: train, inspect the run folder, evaluate, predict
#
# This tutorial trains the seed document's CNN on scikit-learn's bundled digits (no download),
# reads what the run wrote, re-evaluates the checkpoint chosen on validation and predicts on
# new images. It runs in about a minute on 2 CPU cores; the site executes it on every build.
#
# The command line does the same: `jaxdl train experiments/seed_cnn_digits.py --workdir runs/a`,
# then `jaxdl eval --workdir runs/a`.

# %%
import json
import pathlib
import tempfile

import matplotlib.pyplot as plt
import numpy as np

import jaxdl

# The repository's experiments/ folder, from wherever the notebook runs.
ROOT = next(p for p in [pathlib.Path.cwd(), *pathlib.Path.cwd().parents]
            if (p / "experiments" / "seed_cnn_digits.py").exists())
EXPERIMENT = str(ROOT / "experiments" / "seed_cnn_digits.py")
workdir = pathlib.Path(tempfile.mkdtemp()) / "seed_cnn_digits"

# %% [markdown]
# ## Train
#
# An experiment is a config file; any key can be overridden, as `--config.KEY=VALUE` does on the
# command line. Three epochs keep the tutorial short (the experiment's own setting is 15).

# %%
results = jaxdl.train(EXPERIMENT, workdir, ["num_epochs=3"])
print(f"selected epoch {results['selected_epoch']} on {results['selection_metric']}; "
      f"test accuracy {results['test_accuracy']:.4f} on {results['num_test']} examples")

# %% [markdown]
# ## The run folder
#
# Everything a paper needs to cite the run: the resolved config, how the data were split, a
# row per epoch, the results of the checkpoint validation chose, the library versions and the
# researcher's own code, and the checkpoints.

# %%
for path in sorted(workdir.iterdir()):
  print(path.name + ("/" if path.is_dir() else ""))

# %%
rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
for row in rows:
  print(f"epoch {row['epoch']}: train loss {row['train_loss']:.4f}, "
        f"val accuracy {row['val_accuracy']:.4f}")

fig, ax = plt.subplots(figsize=(5, 3))
ax.plot([r["epoch"] for r in rows], [r["train_loss"] for r in rows], "o-", label="train loss")
ax.plot([r["epoch"] for r in rows], [r["val_loss"] for r in rows], "s-", label="val loss")
ax.set_xlabel("epoch")
ax.set_xticks([r["epoch"] for r in rows])
ax.legend()
plt.show()

# %% [markdown]
# `data_spec.json` says how the test and validation sets were held out (by class, from
# `data.split_seed`, so runs over several model seeds share one test set):

# %%
spec = json.loads((workdir / "data_spec.json").read_text())
print({k: spec[k] for k in ("num_classes", "input_shape", "num_train", "num_val", "num_test")})

# %% [markdown]
# ## Evaluate again
#
# `jaxdl.evaluate` rebuilds the data from `config.json`, restores the selected checkpoint and
# evaluates it; the numbers are those of `results.json`.

# %%
again = jaxdl.evaluate(workdir)
print(again["test_accuracy"], results["test_accuracy"])
assert again["test_accuracy"] == results["test_accuracy"]

# %% [markdown]
# ## Predict
#
# `jaxdl.load_run` gives the trained model with its own preprocessing. Here it predicts the
# first test images; `predict` gives logits, `predict_proba` probabilities and
# `predict_classes` the classes (their names, where the data has them).

# %%
run = jaxdl.load_run(workdir)
datasets = jaxdl.build_data(run.config.data)
batch, _ = datasets.test.rows(np.arange(8))
classes = run.predict_classes(batch["inputs"])
print("predicted:", classes.tolist())
print("true:     ", batch["label"].tolist())
print("probabilities of the first:", np.round(run.predict_proba(batch["inputs"][:1]), 3))
