"""Which sweep members can be trained together as one vectorized program.

Members may differ only in values that are data inside the compiled step:
the seed (init key, dropout key, data order) and the optimizer's injected
hyperparameters. Anything else (width, depth, cell type, batch size, data,
epochs, dropout rate, ...) changes shapes or code and splits the members into
groups. Turning clipping, or (for adam and sgd) L2 weight decay, on or off
changes the optimizer's structure, so 0 and non-0 values fall into different
groups too; adamw's decoupled decay is a value at any setting.
"""

import json
from collections.abc import Sequence

import ml_collections

from jaxdl.configs.loading import config_to_dict, flatten

# Keys whose values live in the train state: free to differ within a group.
VALUE_KEYS = ("seed", "optim.learning_rate", "optim.momentum", "optim.weight_decay",
              "optim.grad_clip_norm")
# Of those, the ones whose zero/non-zero switches a transformation on or off.
_SWITCHES = ("optim.weight_decay", "optim.grad_clip_norm")


def structure_key(config: ml_collections.ConfigDict) -> str:
  """Equal for two configs exactly when they can share one compiled step."""
  flat = flatten(config_to_dict(config))
  for key in VALUE_KEYS:
    value = flat.pop(key)
    if key in _SWITCHES and not (key == "optim.weight_decay" and flat["optim.name"] == "adamw"):
      flat[key + ">0"] = value > 0
  return json.dumps(flat, sort_keys=True)


def group_members(configs: Sequence[ml_collections.ConfigDict]) -> list[list[int]]:
  """Indices of members, grouped by structure, in first-seen order."""
  groups: dict[str, list[int]] = {}
  for i, config in enumerate(configs):
    groups.setdefault(structure_key(config), []).append(i)
  return list(groups.values())


def splitting_axes(axis_keys: Sequence[str], configs: Sequence[ml_collections.ConfigDict],
                   groups: Sequence[Sequence[int]]) -> list[str]:
  """The swept keys whose values differ between groups (what forced the split)."""
  if len(groups) < 2:
    return []
  firsts = [flatten(config_to_dict(configs[g[0]])) for g in groups]
  shape = lambda k, f: f[k] > 0 if k in _SWITCHES else f[k]
  return [k for k in axis_keys
          if (k not in VALUE_KEYS or k in _SWITCHES)
          and len({json.dumps(shape(k, f)) for f in firsts}) > 1]
