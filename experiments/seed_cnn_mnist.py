"""The seed's exact setup (section 4.1) on MNIST: SeedCNN, Adam 1e-3, sparse cross-entropy, 10 epochs.

Command:  jaxdl train experiments/seed_cnn_mnist.py --workdir runs/seed_cnn_mnist
          (TFDS mnist, prepared once: pip install -e '.[tf]' && tfds build mnist --file_format=array_record)
Variant:  jaxdl train experiments/seed_cnn_mnist.py:idx --workdir runs/seed_cnn_mnist_idx
          trains offline on the real MNIST test images in ../shared/data/mnist (10,000
          images: 80% train, 20% test, split by data.split_seed; the training images
          were not available offline). Point data.name at idx:<folder> for other copies.
Expected: about 0.99 test accuracy on the full 60k/10k MNIST (LeCun et al. 1998 report
          0.9905 for LeNet-5); somewhat lower on the 8k-image idx variant.
"""

from _common import SHARED_DATA
from jaxdl.configs import default


def get_config(arg: str = "tfds"):
  config = default.get_config()
  config.data.name = "tfds:mnist"
  config.batch_size = 32  # Keras model.fit's default, as in the seed's code.
  config.num_epochs = 10
  config.data.val_fraction = 0.1
  if arg == "idx":
    config.data.name = f"idx:{SHARED_DATA / 'mnist'}"
  elif arg != "tfds":
    raise ValueError(f"unknown variant {arg!r}; use 'tfds' or 'idx'")
  return config
