"""Kim's (2014) CNN for sentence classification, CNN-rand, as the paper and its code build it.

Kim, "Convolutional Neural Networks for Sentence Classification", EMNLP 2014
(arXiv:1408.5882), section 2 and 3.1; where the paper is silent, Kim's public
Theano code (github yoonkim/CNN_sentence, ``conv_net_sentence.py`` and
``conv_net_classes.py``) decides, as noted on each line below:

- Word vectors of 300 dimensions, uniform in [-0.25, 0.25] (the code's
  ``add_unknown_words``), trained with the rest. The padding vector is zero and
  stays zero (the code's ``set_zero``): here padding positions are masked to
  zero, so the padding row never moves anything.
- Each sentence is padded with ``width - 1`` zero vectors on both sides (the
  code's ``get_idx_from_sent``: ``pad = filter_h - 1``), so every window that
  touches a word is convolved; filters of widths 3, 4, 5 with 100 maps each,
  ReLU after the bias.
- Max-over-time pooling over the windows that hold at least one real word (the
  paper pools over the sentence; the code also pools over windows made of
  padding alone, which only adds relu(bias) candidates).
- Convolution weights uniform in ±sqrt(6 / (fan_in + fan_out)), fan_in =
  width * 300, fan_out = 100 * width * 300 / (number of windows), and zero
  biases (the code's ``LeNetConvPoolLayer``); the softmax layer's weights and
  bias start at zero (the code's ``LogisticRegression``).
- Dropout 0.5 on the penultimate layer (the 300 pooled features); inverted
  dropout, where the code scales the weights by 0.5 at test time: the same
  expectation.

The other three columns of Table 2 start from pretrained vectors (``vectors_file``: word2vec
or GloVe, ``jaxdl/data/word_vectors.py``): ``embeddings='static'`` keeps them fixed,
``'non_static'`` fine-tunes them, ``'multichannel'`` has two tables that start from the
vectors, one fixed and one fine-tuned, each filter applied to both and the results added
(section 2: a filter is linear, so this is the filter applied to the sum of the two
channels). Words the file lacks start uniform in ±0.25 as in ``'rand'`` (the code's
``add_unknown_words``) and are fixed in ``'static'`` as the paper says ("all words, including
the unknown ones that are randomly initialized, are kept static").

The l2 max-norm constraint s = 3 on the softmax layer's weight vectors, the
Adadelta optimizer and the batches are the experiment's (``experiments/kim2014.py``):
``config.constraints`` covers ``Dense_0/kernel``, the code's only 2-D parameter
besides the word vectors, which it exempts.
"""

import dataclasses
import logging
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from jaxdl.data import word_vectors
from jaxdl.errors import ConfigError
from jaxdl.models.part import TOKENS, linen_class_part

EMBEDDINGS = ("rand", "static", "non_static", "multichannel")  # Table 2's four columns.
STATIC_TABLE = "Embed_static"  # The multichannel model's fixed table.


def _glorot_over_windows(windows: int, width: int, embed_dim: int, features: int):
  """The code's conv init: uniform ±sqrt(6 / (fan_in + fan_out)), fan_out divided by the
  pool size (the number of windows)."""
  fan_in = width * embed_dim
  fan_out = features * width * embed_dim / windows
  bound = (6.0 / (fan_in + fan_out)) ** 0.5

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


class WindowConv(nn.Module):
  """A 1-D convolution over words as one matmul: ``[batch, time, embed] -> [batch, windows,
  features]``, zero-padded by ``width - 1`` on both sides (windows = time + width - 1).

  The ``width`` shifted copies of the input are concatenated into ``[batch, windows, width *
  embed]`` and multiplied by the kernel ``[width, embed, features]`` reshaped: the same sums as
  ``lax.conv_general_dilated``, whose gradient XLA:CPU computes 4.4x to 5.9x slower at the
  sentence sets' lengths (40 to 131 words, batch 50; ``scripts/bench_kim_conv.py``, medians
  of 5 on 2 cores, 2026-12-02).
  """

  width: int
  features: int
  kernel_init: nn.initializers.Initializer

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    _, time, embed = x.shape
    kernel = self.param("kernel", self.kernel_init, (self.width, embed, self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    padded = jnp.pad(x, ((0, 0), (self.width - 1, self.width - 1), (0, 0)))
    windows = time + self.width - 1
    columns = jnp.concatenate([padded[:, i:i + windows] for i in range(self.width)], axis=-1)
    return columns @ kernel.reshape(self.width * embed, self.features) + bias[None, None, :]


class KimCNN(nn.Module):
  """``<int32>[batch, time]`` token ids and ``<int32>[batch]`` lengths -> ``[batch, classes]``
  logits.

  Attributes:
    embed_dim: word vector width (300).
    widths: filter widths in words (3, 4, 5).
    features: feature maps per width (100).
    dropout_rate: on the pooled features (0.5).
    embed_init_range: word vectors start uniform in ±this (0.25).
    embeddings: 'rand' (CNN-rand), or from ``vectors_file``: 'static', 'non_static',
      'multichannel' (the paper's four variants).
    vectors_file: pretrained word vectors (word2vec ``.bin`` or text, GloVe text).
    vocab_size, num_classes: from the data.
  """

  embed_dim: int = 300
  widths: Sequence[int] = (3, 4, 5)
  features: int = 100
  dropout_rate: float = 0.5
  embed_init_range: float = 0.25
  embeddings: str = "rand"
  vectors_file: str = ""
  vocab_size: int = 10_000
  num_classes: int = 2

  @nn.compact
  def __call__(self, tokens: jax.Array, lengths: jax.Array | None = None, *,
               train: bool) -> jax.Array:
    batch, time = tokens.shape
    lengths = jnp.full((batch,), time) if lengths is None else lengths
    r = self.embed_init_range
    init = lambda k, s, d=jnp.float32: jax.random.uniform(k, s, d, -r, r)
    x = nn.Embed(self.vocab_size, self.embed_dim, embedding_init=init)(tokens)
    if self.embeddings == "static":
      x = jax.lax.stop_gradient(x)
    elif self.embeddings == "multichannel":  # The fixed channel, added: see the docstring.
      fixed = nn.Embed(self.vocab_size, self.embed_dim, embedding_init=init, name=STATIC_TABLE)
      x = x + jax.lax.stop_gradient(fixed(tokens))
    real = jnp.arange(time)[None, :] < lengths[:, None]
    x = jnp.where(real[..., None], x, 0.0)  # The padding vector is zero (the code's set_zero).
    pooled = []
    for i, width in enumerate(self.widths):
      windows = time + width - 1  # Padded by width - 1 on both sides.
      init = _glorot_over_windows(windows, width, self.embed_dim, self.features)
      h = nn.relu(WindowConv(width, self.features, init, name=f"Conv_{i}")(x))
      # Window j covers words j - width + 1 .. j: it holds a real word when j < length + width - 1.
      holds_word = jnp.arange(windows)[None, :] < (jnp.maximum(lengths, 1) + width - 1)[:, None]
      pooled.append(jnp.where(holds_word[..., None], h, -jnp.inf).max(axis=1))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(jnp.concatenate(pooled, -1))
    return nn.Dense(self.num_classes, kernel_init=nn.initializers.zeros)(x)


def pretrained_vectors(params, model_config: ml_collections.ConfigDict, datasets):
  """``params`` with each word table's rows of the words in ``vectors_file`` set to their
  vectors (the others keep their uniform ±0.25 start); unchanged for 'rand'."""
  _check_embeddings(model_config)
  if model_config.embeddings == "rand":
    return params
  if datasets.vocab is None:
    raise ConfigError(f"model.embeddings={model_config.embeddings} reads word vectors for the "
                      f"vocabulary, but {datasets.spec.name} has no vocabulary (is it text?)")
  found = word_vectors.read(model_config.vectors_file, datasets.vocab)
  if found.dim != model_config.embed_dim:
    raise ConfigError(f"{found.path} holds vectors of {found.dim} dimensions, but "
                      f"model.embed_dim={model_config.embed_dim}; set model.embed_dim="
                      f"{found.dim}")
  logging.info("%s: vectors for %d of %d vocabulary words", found.path, found.found.sum(),
               len(found.found))
  rows = jnp.asarray(found.found)[:, None]
  tables = ["Embed_0"] + ([STATIC_TABLE] if model_config.embeddings == "multichannel" else [])
  params = dict(params)
  for table in tables:
    start = params[table]["embedding"]
    params[table] = {"embedding": jnp.where(rows, jnp.asarray(found.vectors, start.dtype), start)}
  return params


def _check_embeddings(fields) -> None:
  if fields["embeddings"] not in EMBEDDINGS:
    raise ConfigError(f"model.embeddings={fields['embeddings']!r}; choose one of "
                      f"{', '.join(EMBEDDINGS)}")
  if fields["embeddings"] != "rand" and not fields["vectors_file"]:
    raise ConfigError(f"model.embeddings={fields['embeddings']} starts from pretrained word "
                      "vectors: set model.vectors_file to a word2vec (.bin or text) or GloVe file")


def _cite_keys(fields) -> list[str]:
  vectors = ["mikolov2013distributed"] if fields.get("embeddings", "rand") != "rand" else []
  return ["kim2014convolutional", *vectors]


KIM_CNN = dataclasses.replace(
    linen_class_part("kim_cnn", KimCNN), inputs=TOKENS, cite_keys=_cite_keys,
    description="Kim's (2014) CNN for sentence classification",
    prepare_params=pretrained_vectors)
