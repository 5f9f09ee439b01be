"""The data of each distinct ``config.data`` of a sweep or search, built once.

Every sweep member and search trial trains on the data its own config
describes: members that differ in a data key (``max_len``, ``vocab_size``,
``val_fraction``, ``fold``, ...) get data built from their own ``config.data``;
members that share one ``config.data`` share one build.
"""

import json

import ml_collections

from jaxdl.data import build
from jaxdl.data.spec import Datasets


def data_key(data_config: ml_collections.ConfigDict) -> str:
  """Equal for two ``config.data`` exactly when they describe the same data."""
  return json.dumps(data_config.to_dict(), sort_keys=True, default=str)


class DatasetCache:
  """``cache(config)``: the datasets of ``config.data``, built on first use (a data
  function the API was given is called once per distinct ``config.data``)."""

  def __init__(self):
    self._built: dict[str, Datasets] = {}

  def __call__(self, config: ml_collections.ConfigDict) -> Datasets:
    key = data_key(config.data)
    if key not in self._built:
      self._built[key] = build(config.data, config.experiment)
    return self._built[key]

  def __len__(self) -> int:
    return len(self._built)
