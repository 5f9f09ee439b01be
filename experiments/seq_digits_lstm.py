"""Pixel-by-pixel digits: the 8x8 digits as length-64 sequences, classified by an LSTM.

Command:  jaxdl train experiments/seq_digits_lstm.py --workdir runs/seq_digits_lstm
Variant:  --config.data.permute=true applies one fixed pixel permutation (after Le et al.
          2015's permuted sequential MNIST), which spreads each stroke over the sequence.
Model:    LSTM(64) -> LSTM(64) -> Dense(10), Adam 3e-3 with cosine decay, clipping at 1.0.
"""

from jaxdl.configs import default


def get_config():
  config = default.get_config()
  config.data.name = "seq_digits"
  config.model.name = "seq_rnn"
  config.model.cell = "lstm"
  config.model.hidden_sizes = (64, 64)
  config.batch_size = 32
  config.num_epochs = 20
  config.optim.learning_rate = 3e-3
  config.optim.schedule = "cosine"
  config.optim.grad_clip_norm = 1.0
  return config
