"""The seed's LSTM text classifier (section 4.2) on IMDB reviews (Maas et al. 2011), via TFDS.

Command:  jaxdl train experiments/seed_lstm_imdb.py --workdir runs/seed_lstm_imdb
          (prepare once with internet: pip install -e '.[tf]' && tfds build imdb_reviews
          --file_format=array_record)
Data:     TFDS imdb_reviews, 25,000 train / 25,000 test reviews, 10% of train held out as
          validation; reviews truncated to the seed's 100 tokens.
Model:    the seed's exactly: Embedding(10000, 64) -> LSTM(64, sequences) -> LSTM(64) -> Dense(2).
"""

from _common import seed_lstm_config


def get_config():
  config = seed_lstm_config()
  config.data.name = "tfds:imdb_reviews"
  config.data.text_key = "text"
  config.data.label_key = "label"
  return config
