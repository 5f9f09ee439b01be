"""Differentially private training (DP-SGD) of the seed's CNN on the bundled digits.

Command:  jaxdl train experiments/dp_cnn_digits.py --workdir runs/dp_cnn_digits
          --config.privacy.target_epsilon=3  calibrates the noise to end at epsilon = 3.
Setup:    SeedCNN; per-example gradients clipped to norm 1, Gaussian noise with multiplier
          1.1, batch 64, plain SGD at 0.1 (momentum amplifies the noise: with 0.9 the
          runs at epsilon = 1 diverged), 15 epochs, no augmentation; delta = 1 / (10 N). The (epsilon, delta) spent is in every
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
  config.optim.learning_rate = 0.1
  config.optim.momentum = 0.0
  config.privacy.enabled = True
  config.privacy.clip_norm = 1.0
  config.privacy.noise_multiplier = 1.1
  return config
