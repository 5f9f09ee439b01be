"""Sequence models: the seed's LSTM text classifier and a head for float sequences."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdl.errors import ConfigError
from jaxdl.models.layers import glorot_uniform
from jaxdl.models.part import SEQUENCES, TOKENS, ModelPart
from jaxdl.models.recurrent import CELLS, RecurrentStack, StackFields, cell_factory


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


# The seed's LSTM(64, return_sequences) -> LSTM(64); options of every recurrent layer.
RECURRENT_FIELDS = {
    "cell": "lstm",  # 'rnn' | 'lstm' | 'gru'.
    "hidden_sizes": (64, 64),  # One width per recurrent layer.
    "bidirectional": False,
    "dropout_rate": 0.0,  # Between recurrent layers and before the output layer.
    "activation": "tanh",  # rnn cell only.
    "forget_bias": 1.0,  # lstm cell only (Keras's unit_forget_bias).
    "unroll": 1,  # Scan steps per loop iteration: speed only, same math.
    "lstm_kernel": "auto",  # LSTM training recurrence: auto (native on CPU, pallas on GPU), xla, native, pallas.
}
_CELL_PAPERS = {"rnn": "elman1990finding", "lstm": "hochreiter1997long", "gru": "cho2014learning"}


def _stack_kwargs(model_config) -> dict:
  """The recurrent fields of ``config.model`` as a stack's settings (the cell as an object)."""
  if model_config.cell not in CELLS:
    raise ConfigError(f"unknown model.cell {model_config.cell!r}; choose one of "
                      f"{', '.join(CELLS)}")
  cell = cell_factory(model_config.cell, activation=model_config.activation,
                      forget_bias=model_config.forget_bias)
  return dict(cell=cell, hidden_sizes=tuple(model_config.hidden_sizes),
              bidirectional=model_config.bidirectional, dropout_rate=model_config.dropout_rate,
              unroll=model_config.unroll, lstm_kernel=model_config.lstm_kernel)


def first_lstm_cell(params: dict) -> dict | None:
  """The first recurrent layer's cell parameters, if it is a unidirectional LSTM."""
  layer = params.get("recurrent", {}).get("layer_0")
  cell = layer.get("cell") if layer else None
  return cell if cell and cell["recurrent_kernel"].shape[1] == 4 * cell[
      "recurrent_kernel"].shape[0] else None


TEXT_RNN = ModelPart(
    "text_rnn",
    lambda config, model_config, spec: TextClassifier(
        vocab_size=spec.vocab_size, embed_dim=model_config.embed_dim,
        num_classes=spec.num_classes, **_stack_kwargs(model_config)),
    fields={**RECURRENT_FIELDS, "embed_dim": 64},  # The seed's Embedding(output_dim=64).
    inputs=TOKENS, cite_keys=lambda f: [_CELL_PAPERS.get(f["cell"], "")],
    description="a recurrent text classifier", lstm_cell=first_lstm_cell)

SEQ_RNN = ModelPart(
    "seq_rnn",
    lambda config, model_config, spec: SequenceModel(
        num_outputs=1 if spec.task == "regression" else spec.num_classes,
        **_stack_kwargs(model_config)),
    fields=dict(RECURRENT_FIELDS), inputs=SEQUENCES,
    cite_keys=lambda f: [_CELL_PAPERS.get(f["cell"], "")],
    description="a recurrent sequence model", lstm_cell=first_lstm_cell)
