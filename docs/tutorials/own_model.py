# %% [markdown]
# # Your own model and data: 10-fold cross-validation, a sweep, a report, a comparison
#
# A researcher's model is a plain Flax module; jaxdl gives it every part of its machinery
# (selection on validation, cross-validation folds, sweeps, reports, paired tests) exactly as
# it gives the built-in models. This tutorial writes a small text classifier, trains it with
# 10-fold cross-validation on the customer-review sentences of Hu & Liu (2004) (CR, from
# `../shared/data/cr`), and compares it with the built-in Kim (2014) CNN on the same folds.
#
# Sizes are tiny so that the site can execute it on every build (two epochs, narrow models);
# the recipe of the paper is `experiments/kim2014.py`.

# %%
import os
import pathlib
import tempfile

import flax.linen as nn
import jax
import jax.numpy as jnp
from IPython.display import Markdown, display

import jaxdl

ROOT = next(p for p in [pathlib.Path.cwd(), *pathlib.Path.cwd().parents]
            if (p / "experiments" / "kim2014.py").exists())
DATA = pathlib.Path(os.environ.get("JAXDL_DATA_DIR", ROOT.parent / "shared" / "data"))
assert (DATA / "cr").is_dir(), f"the CR sentences are not in {DATA}: set JAXDL_DATA_DIR"
work = pathlib.Path(tempfile.mkdtemp())

# %% [markdown]
# ## The model
#
# A bag of embeddings: each sentence is the mean of its words' vectors, real tokens only, then
# a dense layer. jaxdl's contract is small: `__call__(x, *, train)` returns `[batch, classes]`
# logits, and the data's per-example arrays (`lengths` for text) arrive by keyword when the
# method takes them. Fields with defaults become `config.model` keys; `vocab_size` and
# `num_classes` are filled in from the data.

# %%
class MeanEmbedding(nn.Module):
  """``<int32>[batch, time]`` token ids and their lengths -> ``[batch, num_classes]`` logits."""

  embed_dim: int = 32
  dropout_rate: float = 0.5
  vocab_size: int = 10_000
  num_classes: int = 2

  @nn.compact
  def __call__(self, tokens: jax.Array, lengths: jax.Array, *, train: bool) -> jax.Array:
    vectors = nn.Embed(self.vocab_size, self.embed_dim)(tokens)
    real = (jnp.arange(tokens.shape[1])[None, :] < lengths[:, None])[..., None]
    mean = (vectors * real).sum(1) / jnp.maximum(lengths[:, None], 1)
    mean = nn.Dropout(self.dropout_rate, deterministic=not train)(mean)
    return nn.Dense(self.num_classes)(mean)

# %% [markdown]
# ## The data and the protocol
#
# `experiments/kim2014.py:cr` reads CR as Kim (2014) did: one file per class, 10-fold
# cross-validation (`data.folds=10`; the test set is fold `data.fold`), a development set of 10%
# of each training part, from which validation chooses the epoch. We keep its data settings and
# change the training: Adam for two epochs. Fields the two models share (`embed_dim`,
# `dropout_rate`) keep the experiment's values unless set, so we set the width.

# %%
overrides = ["num_epochs=2", "optim.name=adam", "optim.learning_rate=0.005",
             "data.max_len=40", "model.embed_dim=32"]
config = jaxdl.get_config(str(ROOT / "experiments" / "kim2014.py:cr"), overrides,
                          model=MeanEmbedding)
print(config.data.name, "| folds:", config.data.folds, "| model fields:", dict(config.model))

# %% [markdown]
# ## Every fold, as one sweep
#
# A sweep over `data.fold` trains one run folder per fold (`m000` ... `m009`); rerunning the
# same call skips finished folds, so an interrupted sweep resumes.

# %%
ours = work / "mean_embedding"
jaxdl.sweep(config, ours, ["data.fold=0:10"], model=MeanEmbedding)
display(Markdown(jaxdl.report(ours)))

# %% [markdown]
# The interval is the corrected resampled t of Nadeau & Bengio (2003) over the 10 fold means:
# folds share most of their training data, so a plain t interval would be too narrow.
#
# ## A baseline on the same folds
#
# The built-in `kim_cnn`, narrowed to the same tutorial scale, on exactly the same folds
# (the same `data.split_seed`) so that the comparison is paired fold by fold.

# %%
kim = work / "kim_cnn"
jaxdl.sweep(str(ROOT / "experiments" / "kim2014.py:cr"), kim, ["data.fold=0:10"],
            overrides + ["model.features=16"])
display(Markdown(jaxdl.report(kim)))

# %% [markdown]
# ## Is one better?
#
# `jaxdl.compare` pairs the two sweeps by fold and seed: the corrected paired t over the folds
# (and Wilcoxon's signed-rank test, from 6 folds), with the effect size and Holm's correction
# over the metrics. Two epochs decide nothing about the models; the point is the machinery.

# %%
display(Markdown(jaxdl.compare(ours, kim)))
