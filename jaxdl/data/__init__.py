"""Datasets: ``build(config.data)`` returns the train/val/test splits and a DataSpec."""

import ml_collections

from jaxdl.data.arrays import Batch, Split, eval_batches, num_batches, train_batches
from jaxdl.data.images import Datasets, build_image_data
from jaxdl.data.spec import DataSpec


def build(data_config: ml_collections.ConfigDict) -> Datasets:
  """Builds the datasets named by ``data_config.name``."""
  return build_image_data(data_config)


__all__ = ["Batch", "DataSpec", "Datasets", "Split", "build", "eval_batches", "num_batches",
           "train_batches"]
