"""Sequence models: the seed's LSTM text classifier and a head for float sequences."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdl.models.layers import glorot_uniform
from jaxdl.models.recurrent import RecurrentStack, StackFields


def keras_embedding_init(key, shape, dtype=jnp.float32):
  """Keras's Embedding default: uniform in [-0.05, 0.05]."""
  return jax.random.uniform(key, shape, dtype, -0.05, 0.05)


class _Recurrent(StackFields):
  """A model built on a RecurrentStack of its StackFields."""

  def stack(self) -> RecurrentStack:
    fields = self.stack_fields()
    return RecurrentStack(**{**fields, "hidden_sizes": tuple(fields["hidden_sizes"])},
                          name="recurrent")


class TextClassifier(_Recurrent):
  """Embedding -> stacked recurrent layers -> Dense: the seed's model (section 4.2).

  The defaults are the seed's Keras model: Embedding(10000, 64), LSTM(64,
  return_sequences=True), LSTM(64), Dense(num_classes), Keras initialisers
  (embeddings uniform in [-0.05, 0.05]). Unlike the Keras code, padding is
  masked: the state stops at each text's last real token.

  Attributes:
    vocab_size: rows of the embedding table (PAD = 0, OOV = 1 included).
    embed_dim: embedding width.
    num_classes: outputs.
  """

  vocab_size: int = 10_000
  embed_dim: int = 64
  num_classes: int = 2

  @nn.compact
  def __call__(self, inputs: jax.Array, lengths: jax.Array | None = None, *,
               train: bool = False, mask: jax.Array | None = None,
               embedded: jax.Array | None = None) -> jax.Array:
    """Maps ``<int32>[batch, time]`` token ids to ``[batch, num_classes]`` logits.

    ``embedded`` (``<float32>[batch, time, embed_dim]``) replaces the embedding
    lookup, so attributions can be taken with respect to the embeddings.
    """
    del mask
    embed = nn.Embed(self.vocab_size, self.embed_dim, embedding_init=keras_embedding_init)
    x = embed(inputs) if embedded is None else embedded
    x = self.stack()(x, lengths, train=train)
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return nn.Dense(self.num_classes, kernel_init=glorot_uniform)(x)


class SequenceModel(_Recurrent):
  """Stacked recurrent layers over float sequences -> Dense.

  For the long-range tasks: the adding problem (regression, one output) and
  pixel-by-pixel digits or the memory task (classification).

  Attributes:
    num_outputs: classes, or 1 for regression (then the output is ``[batch]``).
  """

  num_outputs: int = 1

  @nn.compact
  def __call__(self, inputs: jax.Array, lengths: jax.Array | None = None, *,
               train: bool = False, mask: jax.Array | None = None,
               hidden_offsets: jax.Array | None = None) -> jax.Array:
    """Maps ``<float32>[batch, time, features]`` to ``[batch, num_outputs]`` (or ``[batch]``).

    ``hidden_offsets``: see RecurrentStack (for measuring dL/dh_t).
    """
    del mask
    x = self.stack()(inputs, lengths, train=train, hidden_offsets=hidden_offsets)
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    x = nn.Dense(self.num_outputs, kernel_init=glorot_uniform)(x)
    return x[:, 0] if self.num_outputs == 1 else x
