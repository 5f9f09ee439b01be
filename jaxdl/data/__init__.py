"""Datasets: ``build(config.data)`` returns the train/val/test splits and a DataSpec."""

import ml_collections

from jaxdl.data.arrays import Batch, Scaling, Split
from jaxdl.data.batches import PoissonBatches, eval_batches, num_batches, train_batches
from jaxdl.data.sources import SOURCES, DataSource, resolve
from jaxdl.data.spec import DataSpec, Datasets

SYNTHETIC = ("adding", "memory", "seq_digits")


def build(data_config: ml_collections.ConfigDict, experiment: str = "") -> Datasets:
  """Builds the datasets named by ``data_config.name`` (see sources.py).

  Args:
    data_config: ``config.data``.
    experiment: the experiment file, whose folder resolves ``PKG.MODULE:ATTR`` (a data
      function the API was given is found by its ``python:`` name: ``parts.given``).
  """
  return resolve(data_config.name, experiment).build(data_config, experiment)


__all__ = ["Batch", "DataSource", "DataSpec", "Datasets", "PoissonBatches", "SOURCES",
           "SYNTHETIC", "Scaling", "Split", "build", "eval_batches", "num_batches", "resolve",
           "train_batches"]
