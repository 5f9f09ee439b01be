"""The adding problem (Hochreiter & Schmidhuber 1997; Le et al. 2015 setup) with an LSTM.

Command:  jaxdl train experiments/adding_lstm.py --workdir runs/adding_lstm --config.data.seq_len=100
Task:     sequences of T (value, marker) pairs, target the sum of the two marked values;
          predicting 1 always gives MSE 0.167. T is data.seq_len (default 50).
Model:    one LSTM layer of 64 units -> Dense(1), MSE loss, Adam 1e-2 with global-norm
          clipping at 1.0, batch 64, 10,000 training sequences, 10 epochs.
Measured: at T=50 the LSTM leaves the baseline in epoch 4 and reaches test MSE ~0.001
          by epoch 5 (2 CPU cores, ~7 s).
"""

from jaxdl.configs import default


def get_config(cell: str = "lstm"):
  config = default.get_config()
  config.data.name = "adding"
  config.data.seq_len = 50
  config.data.num_train = 10_000
  config.data.num_test = 1_000
  config.model.name = "seq_rnn"
  config.model.cell = cell
  config.model.hidden_sizes = (64,)
  config.batch_size = 64
  config.num_epochs = 10
  config.optim.learning_rate = 1e-2  # 1e-3 needs ~3x the steps to leave the baseline.
  config.optim.grad_clip_norm = 1.0
  return config
