"""Differentially private training (DP-SGD) of the seed's CNN on the bundled digits.

Command:  jaxdl train experiments/dp_cnn_digits.py --workdir runs/dp_cnn_digits
          --config.privacy.target_epsilon=3  calibrates the noise to end at epsilon = 3.
Setup:    SeedCNN; per-example gradients clipped to norm 1, Gaussian noise with multiplier
          1.1, batch 64, SGD with momentum 0.9 at 0.05 (DP-SGD's usual optimizer), 15 epochs,
          no augmentation; delta = 1 / (10 N). The (epsilon, delta) spent is in every
          metrics.jsonl row and in results.json as privacy_epsilon (RDP accountant).
"""

from jaxdl.configs import default


def get_config():
  config = default.get_config()
  config.data.name = "digits"
  config.data.image_size = 28
  config.batch_size = 64
  config.num_epochs = 15
  config.optim.name = "sgd"
  config.optim.learning_rate = 0.05
  config.optim.momentum = 0.9
  config.privacy.enabled = True
  config.privacy.clip_norm = 1.0
  config.privacy.noise_multiplier = 1.1
  return config
