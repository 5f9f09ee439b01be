"""The seed's Keras CNN (section 4.1) on scikit-learn's bundled digits: offline, ~1 minute.

Command:  jaxdl train experiments/seed_cnn_digits.py --workdir runs/seed_cnn_digits
Setup:    the seed's model and optimizer exactly (Adam 1e-3, sparse cross-entropy,
          batch 32, 10 epochs); the 1,797 8x8 digits resized to 28x28x1 so the
          model runs unchanged; 20% test and 10% validation held out by class.
Expected: test accuracy about 0.98 on 2 CPU cores in under a minute.
"""

from jaxdl.configs import default


def get_config():
  config = default.get_config()
  config.data.name = "digits"
  config.data.image_size = 28
  return config
