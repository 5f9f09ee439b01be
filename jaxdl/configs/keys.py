"""Config keys as data: dotted flattening, JSON-ready dicts, and did-you-mean suggestions.

The bottom floor of ``jaxdl.configs``: loading, checks and the part-field modules all
use these, and this module imports none of them. ``suggest`` is the one did-you-mean of
jaxdl (``jaxdl.parts``, below every package, holds it: part registries use it too).
"""

import json
from collections.abc import Mapping
from typing import Any

import ml_collections

from jaxdl.parts import suggest  # noqa: F401 (re-exported)


def config_to_dict(config: ml_collections.ConfigDict) -> dict:
  """A JSON-ready dict (tuples become lists)."""
  return json.loads(config.to_json())


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``: dotted keys, as overrides name them."""
  out = {}
  for k, v in d.items():
    out.update(flatten(v, f"{prefix}{k}.") if isinstance(v, Mapping) else {f"{prefix}{k}": v})
  return out
