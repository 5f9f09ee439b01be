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

The l2 max-norm constraint s = 3 on the softmax layer's weight vectors, the
Adadelta optimizer and the batches are the experiment's (``experiments/kim2014.py``):
``config.constraints`` covers ``Dense_0/kernel``, the code's only 2-D parameter
besides the word vectors, which it exempts.
"""

import dataclasses
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdl.models.part import TOKENS, linen_class_part


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
    vocab_size, num_classes: from the data.
  """

  embed_dim: int = 300
  widths: Sequence[int] = (3, 4, 5)
  features: int = 100
  dropout_rate: float = 0.5
  embed_init_range: float = 0.25
  vocab_size: int = 10_000
  num_classes: int = 2

  @nn.compact
  def __call__(self, tokens: jax.Array, lengths: jax.Array | None = None, *,
               train: bool) -> jax.Array:
    batch, time = tokens.shape
    lengths = jnp.full((batch,), time) if lengths is None else lengths
    r = self.embed_init_range
    x = nn.Embed(self.vocab_size, self.embed_dim,
                 embedding_init=lambda k, s, d=jnp.float32: jax.random.uniform(k, s, d, -r, r)
                 )(tokens)
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


KIM_CNN = dataclasses.replace(
    linen_class_part("kim_cnn", KimCNN), inputs=TOKENS,
    cite_keys=lambda fields: ["kim2014convolutional"],
    description="Kim's (2014) CNN for sentence classification")
