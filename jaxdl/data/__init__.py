"""Datasets: ``build(config.data)`` returns the train/val/test splits and a DataSpec."""

import ml_collections

from jaxdl.data import tfds_source
from jaxdl.data.arrays import (Batch, PoissonBatches, Split, eval_batches, num_batches,
                               train_batches)
from jaxdl.data.images import build_image_data
from jaxdl.data.spec import DataSpec, Datasets
from jaxdl.data.synthetic import build_synthetic_data
from jaxdl.data.text import build_text_data

SYNTHETIC = ("adding", "memory", "seq_digits")


def build(data_config: ml_collections.ConfigDict) -> Datasets:
  """Builds the datasets named by ``data_config.name``."""
  name = data_config.name
  if name in SYNTHETIC:
    return build_synthetic_data(data_config)
  if name.startswith("textfile:"):
    return build_text_data(data_config)
  if name.startswith("tfds:") and tfds_source.is_text(
      name.partition(":")[2], data_config.train_split, data_config.data_dir,
      data_config.download, data_config.text_key):
    return build_text_data(data_config)
  return build_image_data(data_config)


__all__ = ["Batch", "DataSpec", "Datasets", "PoissonBatches", "SYNTHETIC", "Split", "build", "eval_batches",
           "num_batches", "train_batches"]
