"""Datasets: ``build(config.data)`` returns the train/val/test splits and a DataSpec."""

from collections.abc import Callable

import ml_collections

from jaxdl import parts
from jaxdl.data.arrays import Batch, Scaling, Split
from jaxdl.data.batches import PoissonBatches, eval_batches, num_batches, train_batches
from jaxdl.data.sources import SOURCES, DataSource, resolve
from jaxdl.data.spec import DataSpec, Datasets
from jaxdl.errors import DataError

SYNTHETIC = ("adding", "memory", "seq_digits")


def build(data_config: ml_collections.ConfigDict, experiment: str = "",
          source: Callable | None = None) -> Datasets:
  """Builds the datasets named by ``data_config.name`` (see sources.py).

  Args:
    data_config: ``config.data``.
    experiment: the experiment file, whose folder resolves ``py:PKG.MODULE:ATTR``.
    source: the user's data function itself, where the API was given one.
  """
  name = data_config.name
  if source is None and name.startswith(parts.PYTHON_OBJECT):
    raise DataError(f"data {name} was a Python function given to the API; pass it again "
                    "(data=...) to use this run")
  found = resolve(parts.PYTHON_OBJECT) if source is not None else resolve(name, experiment)
  return found.build(data_config, experiment, source)


__all__ = ["Batch", "DataSource", "DataSpec", "Datasets", "PoissonBatches", "SOURCES",
           "SYNTHETIC", "Scaling", "Split", "build", "eval_batches", "num_batches", "resolve",
           "train_batches"]
