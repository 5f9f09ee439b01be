"""The adding problem with the seed's vanilla RNN (tanh), the same setup as adding_lstm.py.

Command:  jaxdl train experiments/adding_rnn.py --workdir runs/adding_rnn --config.data.seq_len=100
The seed (1.2.1) says the vanilla RNN's vanishing gradient limits it on long
dependencies; compare its test MSE with adding_lstm.py's at growing T.
"""

from adding_lstm import get_config as adding_config


def get_config():
  return adding_config("rnn")
