"""Kim's (2014) CNN over word embeddings, the researcher's own, against the seed's LSTM on MR.

Command:  jaxdl sweep experiments/kim_cnn_mr.py --workdir runs/kim_vs_lstm --sweep seed=0:3
          jaxdl report runs/kim_vs_lstm      (sweep() below adds the model.name axis)
          one model: jaxdl train experiments/kim_cnn_mr.py --workdir runs/kim_cnn_mr
Model:    KimCNN below (Kim 2014, CNN-rand): random 128-d embeddings, filters of widths
          3, 4, 5 with 100 feature maps each, ReLU, max-over-time pooling over the real
          tokens, dropout 0.5, a dense head. It takes `lengths` by keyword, as the data
          carries them. The sweep's other member is the seed's LSTM text model
          (model.name=text_rnn with its defaults: Embedding 64, LSTM 64 -> LSTM 64).
Data:     ../shared/data/mr as in seed_lstm_mr.py (10% test, 10% validation, split_seed 0);
          `--config.data.folds=10 --sweep data.fold=0:10` gives Kim's 10-fold protocol.
Setup:    Adam 1e-3, batch 50, 10 epochs; the best validation epoch is the result and
          training stops after 3 epochs without a better one.
Anchor:   Kim 2014, Table 2: CNN-rand 76.1 on MR (10-fold CV).
Expected: both models near Kim's 0.761 on this split (the sweep takes about 7 minutes on
          2 CPU cores); `jaxdl report runs/kim_vs_lstm` ranks them on validation and says
          whether a paired test finds their test accuracies different.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from _common import SHARED_DATA, seed_lstm_config


class KimCNN(nn.Module):
  """``<int32>[batch, time]`` token ids (and lengths) -> ``[batch, num_classes]`` logits.

  Attributes:
    embed_dim: embedding width.
    widths: the filter widths (tokens).
    features: feature maps per width.
    dropout_rate: before the head.
    vocab_size, num_classes: filled in from the data.
  """

  embed_dim: int = 128
  widths: Sequence[int] = (3, 4, 5)
  features: int = 100
  dropout_rate: float = 0.5
  vocab_size: int = 10_000
  num_classes: int = 2

  @nn.compact
  def __call__(self, tokens: jax.Array, lengths: jax.Array | None = None, *,
               train: bool) -> jax.Array:
    x = nn.Embed(self.vocab_size, self.embed_dim)(tokens)
    time = jnp.arange(tokens.shape[1])[None, :]
    real = time < (lengths[:, None] if lengths is not None else tokens.shape[1])
    pooled = []
    for width in self.widths:
      h = nn.relu(nn.Conv(self.features, (width,), padding="SAME")(x))
      pooled.append(jnp.where(real[..., None], h, -jnp.inf).max(axis=1))  # Real tokens only.
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(jnp.concatenate(pooled, -1))
    return nn.Dense(self.num_classes)(x)


def get_config():
  config = seed_lstm_config()  # The seed's training setup; KimCNN has its own model fields.
  config.model = ml_collections.ConfigDict({"name": "kim_cnn_mr:KimCNN"})
  config.data.name = f"textfile:{SHARED_DATA / 'mr'}"
  config.data.encoding = "latin-1"
  config.data.test_fraction = 0.1
  config.data.val_fraction = 0.1
  config.batch_size = 50
  config.num_epochs = 10
  config.select.patience = 3
  return config


def sweep():
  return {"model.name": ["kim_cnn_mr:KimCNN", "text_rnn"]}
