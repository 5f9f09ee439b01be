"""A researcher's own models and data, as they would write them outside jaxdl (test helpers)."""

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
from flax import nnx


class TinyCNN(nn.Module):
  """Conv -> batch norm -> relu -> pool -> dropout -> dense: batch_stats and dropout both."""

  features: int = 8
  dropout_rate: float = 0.1
  batch_norm: bool = True
  num_classes: int = 10

  @nn.compact
  def __call__(self, x, *, train: bool):
    x = nn.Conv(self.features, (3, 3))(x)
    if self.batch_norm:
      x = nn.BatchNorm(use_running_average=not train)(x)
    x = nn.max_pool(nn.relu(x), (2, 2), (2, 2))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x.reshape(x.shape[0], -1))
    return nn.Dense(self.num_classes)(x)


def small_cnn(model_config, spec):
  """A factory: the model from its config fields and the data's spec."""
  return TinyCNN(features=model_config.features, batch_norm=False, dropout_rate=0.0,
                 num_classes=spec.num_classes)


class BagOfWords(nn.Module):
  """Mean of the real tokens' embeddings -> dense; takes ``lengths`` by keyword."""

  dim: int = 16
  vocab_size: int = 100
  num_classes: int = 2

  @nn.compact
  def __call__(self, tokens, lengths=None, *, train: bool = False):
    del train
    x = nn.Embed(self.vocab_size, self.dim)(tokens)
    steps = jnp.arange(tokens.shape[1])[None, :]
    real = (steps < (lengths if lengths is not None else tokens.shape[1])[:, None])
    real = real.astype(x.dtype)
    x = (x * real[..., None]).sum(1) / jnp.maximum(real.sum(1, keepdims=True), 1.0)
    return nn.Dense(self.num_classes)(x)


class MLP(nn.Module):
  hidden: int = 16
  num_classes: int = 3

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    del train
    return nn.Dense(self.num_classes)(nn.relu(nn.Dense(self.hidden)(x.reshape(x.shape[0], -1))))


class NNXMLP(nnx.Module):
  """A Flax NNX model (what Flax recommends to new users), with batch norm and dropout."""

  def __init__(self, in_features: int = 784, hidden: int = 32, num_classes: int = 10,
               dropout_rate: float = 0.1, *, rngs: nnx.Rngs):
    self.hidden = nnx.Linear(in_features, hidden, rngs=rngs)
    self.norm = nnx.BatchNorm(hidden, rngs=rngs)
    self.dropout = nnx.Dropout(dropout_rate, rngs=rngs)
    self.out = nnx.Linear(hidden, num_classes, rngs=rngs)

  def __call__(self, x, *, train: bool = False):
    x = nnx.relu(self.norm(self.hidden(x.reshape(x.shape[0], -1)),
                           use_running_average=not train))
    return self.out(self.dropout(x, deterministic=not train))


def blobs(data_config):
  """Three Gaussian blobs in 8 dimensions: a user's own classification data."""
  rng = np.random.default_rng(data_config.split_seed)
  centers = rng.normal(0, 3, (3, 8))
  labels = rng.integers(0, 3, 600)
  return {"train": (centers[labels] + rng.normal(0, 1, (600, 8)), labels),
          "meta": {"class_names": ["a", "b", "c"]}}


def line(data_config):
  """y = 2x + 1 with noise: regression, with its own test split."""
  rng = np.random.default_rng(0)
  x = rng.uniform(-1, 1, (300, 1)).astype(np.float32)
  y = (2 * x[:, 0] + 1 + rng.normal(0, 0.05, 300)).astype(np.float32)
  return {"train": {"inputs": x[:240], "label": y[:240]},
          "test": {"inputs": x[240:], "label": y[240:]}}


def smoothed_cross_entropy(logits, batch):
  """A user's loss: cross-entropy with 10% label smoothing, as masked sums."""
  import optax

  classes = logits.shape[-1]
  targets = optax.smooth_labels(jnp.eye(classes)[batch["label"]], 0.1)
  losses = optax.softmax_cross_entropy(logits.astype(jnp.float32), targets) * batch["mask"]
  return losses, {"loss": losses.sum(), "count": batch["mask"].sum()}


def confident(logits, batch):
  """A user's per-example metric: the softmax probability of the predicted class."""
  import jax

  return jax.nn.softmax(logits.astype(jnp.float32)).max(-1)


def _tiny_part_build(config, model_config, spec):
  return TinyCNN(features=model_config.width, batch_norm=False, num_classes=spec.num_classes)


def _tiny_part():
  from jaxdl.models import IMAGES, ModelPart  # A record, as a researcher's package exports one.
  return ModelPart("tiny", _tiny_part_build, fields={"width": 6}, inputs=IMAGES,
                   description="a tiny CNN of my own")


TINY_PART = _tiny_part()



class NNXBagOfWords(nnx.Module):
  """The same bag of embeddings in Flax NNX (no flax.linen.Embed for explain to intercept);
  padding is found from the token ids (0), as many user models do."""

  def __init__(self, dim: int = 16, vocab_size: int = 100, num_classes: int = 2, *,
               rngs: nnx.Rngs):
    self.embed = nnx.Embed(vocab_size, dim, rngs=rngs)
    self.out = nnx.Linear(dim, num_classes, rngs=rngs)

  def __call__(self, tokens, *, train: bool = False):
    del train
    real = (tokens != 0).astype(jnp.float32)[..., None]
    mean = (self.embed(tokens) * real).sum(1) / jnp.maximum(real.sum(1), 1.0)
    return self.out(mean)
