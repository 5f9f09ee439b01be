"""The seed's LSTM text classifier (section 4.2) on MR movie-review polarity (Pang & Lee 2005).

Command:  jaxdl train experiments/seed_lstm_mr.py --workdir runs/seed_lstm_mr
Data:     ../shared/data/mr (10,662 sentences, one latin-1 file per class); 10% held out
          as test and 10% of the rest as validation, stratified, data.split_seed=0 (the
          standard protocol is 10-fold CV; this is one fold-sized split).
Model:    the seed's exactly: Embedding(10000, 64) -> LSTM(64, sequences) -> LSTM(64) ->
          Dense(2), Adam 1e-3, batch 32; padding is masked.
Anchor:   Kim 2014 Table 2, CNN-rand (random embeddings, like ours): 76.1 on MR.
Expected: about 0.75 test accuracy (the best validation epoch comes early: MR overfits).
"""

from _common import SHARED_DATA, seed_lstm_config


def get_config():
  config = seed_lstm_config()
  config.data.name = f"textfile:{SHARED_DATA / 'mr'}"
  config.data.encoding = "latin-1"
  config.data.test_fraction = 0.1
  config.data.val_fraction = 0.1
  config.num_epochs = 4
  return config
