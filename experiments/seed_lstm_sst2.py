"""The seed's LSTM text classifier (section 4.2) on SST-2 sentences (Socher et al. 2013).

Command:  jaxdl train experiments/seed_lstm_sst2.py --workdir runs/seed_lstm_sst2
Data:     ../shared/data/sst2: the standard 6,920 / 872 / 1,821 train / dev / test
          sentence split (`LABEL TEXT` lines); dev is the validation set. Sentences only:
          the phrase-level training set of Kim 2014 is not available offline.
Anchor:   Kim 2014 Table 2, CNN-rand: 82.7 (trained with phrases).
"""

from _common import SHARED_DATA, seed_lstm_config


def get_config():
  config = seed_lstm_config()
  config.data.name = f"textfile:{SHARED_DATA / 'sst2'}"
  config.num_epochs = 4
  return config
