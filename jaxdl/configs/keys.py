"""Config keys as data: dotted flattening, JSON-ready dicts, and did-you-mean suggestions.

The bottom floor of ``jaxdl.configs``: loading, checks and the part-field modules all
use these, and this module imports none of them.
"""

import difflib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import ml_collections


def suggest(name: str, valid: Iterable[str]) -> list[str]:
  """The valid key ``name`` most likely meant: a close spelling, or its initials (lr)."""
  valid = list(valid)
  close = difflib.get_close_matches(name, valid, n=1)
  if close:
    return close
  return [v for v in valid if "_" in v and "".join(w[0] for w in v.split("_")) == name][:1]


def config_to_dict(config: ml_collections.ConfigDict) -> dict:
  """A JSON-ready dict (tuples become lists)."""
  return json.loads(config.to_json())


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``: dotted keys, as overrides name them."""
  out = {}
  for k, v in d.items():
    out.update(flatten(v, f"{prefix}{k}.") if isinstance(v, Mapping) else {f"{prefix}{k}": v})
  return out
