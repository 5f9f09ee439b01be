"""Which sweep members can be trained together as one vectorized program.

Members may differ only in values that are data inside the compiled step:
the seed (init key, dropout key, data order) and the optimizer's injected
hyperparameters. Anything else (width, depth, cell type, batch size, data,
epochs, dropout rate, ...) changes shapes or code and splits the members into
groups. Turning clipping, or (for adam and sgd) L2 weight decay, on or off
changes the optimizer's structure, so 0 and non-0 values fall into different
groups too; decoupled decay (adamw's, the optimizer's own argument) is a value
at any setting. Which of an optimizer's own fields are values is its record's
``injected``.
"""

import json
from collections.abc import Sequence

import ml_collections

from jaxdl.configs.loading import config_to_dict, flatten
from jaxdl.optim import OPTIMIZERS

# Keys whose values live in the train state for every optimizer: free to differ in a group.
VALUE_KEYS = ("seed", "optim.learning_rate", "optim.weight_decay", "optim.grad_clip_norm")
# Of those, the ones whose zero/non-zero switches a transformation on or off.
_SWITCHES = ("optim.weight_decay", "optim.grad_clip_norm")


def value_keys(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """VALUE_KEYS and the optimizer's own injected fields (sgd's momentum, adadelta's rho)."""
  part = OPTIMIZERS.resolve(config.optim.name, config.experiment)
  return (*VALUE_KEYS, *(f"optim.{k}" for k in part.injected))


def _switches(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  part = OPTIMIZERS.resolve(config.optim.name, config.experiment)
  # Decoupled decay (adamw's) is the optimizer's own argument: a value at any setting.
  return tuple(k for k in _SWITCHES if not (k == "optim.weight_decay" and part.decoupled_decay))


def structure_key(config: ml_collections.ConfigDict) -> str:
  """Equal for two configs exactly when they can share one compiled step."""
  flat = flatten(config_to_dict(config))
  switches = _switches(config)
  for key in value_keys(config):
    value = flat.pop(key)
    if key in switches:
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
  values, switches = value_keys(configs[groups[0][0]]), _switches(configs[groups[0][0]])
  shape = lambda k, f: f.get(k, 0) > 0 if k in switches else f.get(k)
  return [k for k in axis_keys
          if (k not in values or k in switches)
          and len({json.dumps(shape(k, f)) for f in firsts}) > 1]
