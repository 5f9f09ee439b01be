"""Pieces shared by the experiment files (not an experiment itself)."""

import pathlib

from jaxdl.configs import default

# The offline datasets: ../shared/data beside the checkout (see its README.md).
SHARED_DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"


def seed_lstm_config():
  """The seed's Keras text model (section 4.2) and its training setup.

  Embedding(10000, 64, input_length=100) -> LSTM(64, return_sequences=True) ->
  LSTM(64) -> Dense(classes); Adam (Keras default 1e-3), sparse categorical
  cross-entropy, model.fit's defaults (batch 32), 10 epochs.
  """
  config = default.get_config()
  config.model.name = "text_rnn"
  config.model.cell = "lstm"
  config.model.hidden_sizes = (64, 64)
  config.model.embed_dim = 64
  config.data.vocab_size = 10_000
  config.data.max_len = 100
  config.batch_size = 32
  config.num_epochs = 10
  config.optim.name = "adam"
  config.optim.learning_rate = 1e-3
  return config
