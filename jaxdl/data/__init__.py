"""Datasets: ``build(config.data)`` returns the train/val/test splits and a DataSpec."""

from collections.abc import Callable

import ml_collections

from jaxdl import parts
from jaxdl.data import tfds_source
from jaxdl.data.arrays import (Batch, PoissonBatches, Split, eval_batches, num_batches,
                               train_batches)
from jaxdl.data.images import build_image_data
from jaxdl.data.python_source import PREFIX, build_python_data
from jaxdl.data.spec import DataSpec, Datasets
from jaxdl.data.synthetic import build_synthetic_data
from jaxdl.errors import DataError
from jaxdl.data.text import build_text_data

SYNTHETIC = ("adding", "memory", "seq_digits")


def build(data_config: ml_collections.ConfigDict, experiment: str = "",
          source: Callable | None = None) -> Datasets:
  """Builds the datasets named by ``data_config.name``.

  Args:
    data_config: ``config.data``.
    experiment: the experiment file, whose folder resolves ``py:PKG.MODULE:ATTR``.
    source: the user's data function itself, where the API was given one.
  """
  name = data_config.name
  if source is None and name.startswith(parts.PYTHON_OBJECT):
    raise DataError(f"data {name} was a Python function given to the API; pass it again "
                    "(data=...) to use this run")
  if source is not None or name.startswith(PREFIX):
    return build_python_data(data_config, source, experiment)
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
