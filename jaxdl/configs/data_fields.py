"""``config.data``: the keys every source shares plus the named source's own fields, checked.

As for ``config.model``: loading an experiment (or a run's config.json) gives
``config.data`` the shared keys of ``default.py`` and exactly the fields of the
source ``data.name`` names (``DataSource.fields``), with their defaults under the
values the experiment set; a key the source does not have is an error with a
did-you-mean. Changing ``data.name`` replaces the old source's fields with the new
one's, keeping the values of fields both have (``image_size`` means the same for
every image source).
"""

import functools
from collections.abc import Mapping
from typing import Any

import ml_collections

from jaxdl.configs.model_fields import merged_fields, set_section
from jaxdl.data.sources import DataSource, resolve


@functools.cache  # The defaults never change; every load and override asks.
def shared_keys() -> tuple[str, ...]:
  """The ``config.data`` keys every source has (default.py's), ``name`` first."""
  from jaxdl.configs.default import get_config  # default.py imports nothing of ours.

  keys = get_config().data.keys()  # Sorted, as ConfigDict keeps them.
  return ("name", *(k for k in keys if k != "name"))


def complete_data(config: ml_collections.ConfigDict, carried: Mapping[str, Any] | None = None,
                  tolerant: bool = False) -> DataSource:
  """Sets ``config.data`` to the shared keys and the named source's fields; its record.

  Args:
    carried: the previous source's fields, whose values carry over where the new
      source has the same field.
    tolerant: drop keys the source does not have (a run folder from an older jaxdl,
      which saved every source's fields) instead of refusing them.
  """
  shared = shared_keys()
  source = resolve(config.data.name, config.get("experiment", ""))
  given = {k: v for k, v in config.data.items() if k not in shared}
  fields = merged_fields(source, given, carried or {}, tolerant, section="data",
                         shared=shared[1:])
  common = {k: config.data[k] for k in shared if k in config.data}
  set_section(config, "data", ml_collections.ConfigDict({**common, **fields}))
  return source


def rename_data(config: ml_collections.ConfigDict, name: str) -> DataSource:
  """Switches ``config`` to data source ``name``, keeping the values of shared fields."""
  shared = shared_keys()
  common = {k: config.data[k] for k in shared if k in config.data}
  carried = {k: v for k, v in config.data.items() if k not in shared}
  set_section(config, "data", ml_collections.ConfigDict({**common, "name": name}))
  return complete_data(config, carried)
