"""The seed's "deep CNN" (section 3.2) on CIFAR-10: VGG-style stages with batch norm and residuals.

Command:  jaxdl train experiments/deep_cnn_cifar10.py --workdir runs/deep_cnn_cifar10
          (TFDS cifar10, prepared once: pip install -e '.[tf]' && tfds build cifar10 --file_format=array_record)
Setup:    3 stages of widths 64/128/256 with 3 conv blocks each (9 conv layers), batch
          norm, residual connections, dropout 0.2; SGD with Nesterov momentum 0.9,
          warmup + cosine schedule, weight decay 5e-4, 30 epochs, per-channel
          standardisation from the training set. Deeper variants change model.blocks_per_stage.
Expected: roughly 0.85-0.90 test accuracy without augmentation (untested here: no
          CIFAR-10 copy is available offline; run it on a machine with TFDS data).
"""

from jaxdl.configs import default


def get_config():
  config = default.get_config()
  config.data.name = "tfds:cifar10"
  config.data.standardize = True
  config.batch_size = 128
  config.num_epochs = 30
  config.model.name = "deep_cnn"
  config.model.widths = (64, 128, 256)
  config.model.blocks_per_stage = 3
  config.model.batch_norm = True
  config.model.residual = True
  config.model.dropout_rate = 0.2
  config.optim.name = "sgd"
  config.optim.nesterov = True
  config.optim.momentum = 0.9
  config.optim.learning_rate = 0.1
  config.optim.weight_decay = 5e-4
  config.optim.schedule = "warmup_cosine"
  config.optim.warmup_epochs = 2.0
  return config
