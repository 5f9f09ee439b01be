"""``config.optim``: the common keys plus the chosen optimizer's own fields, checked.

As for ``config.model``: loading an experiment (or a run's config.json) gives
``config.optim`` exactly the fields of the optimizer it names, with optax's
defaults (or jaxdl's) under the values the experiment set; a key the optimizer
does not have is an error with a did-you-mean. Changing ``optim.name`` replaces
the old optimizer's fields with the new one's defaults: a field two optimizers
share by name need not mean the same (adam's ``eps`` is 1e-8 outside the root,
adadelta's 1e-6 inside it), so no value carries over.
"""

import ml_collections

from jaxdl.configs.keys import suggest
from jaxdl.configs.model_fields import merged_fields, set_section
from jaxdl.errors import ConfigError
from jaxdl.optim.optimizers import COMMON, OPTIMIZERS, OptimizerPart


def complete_optim(config: ml_collections.ConfigDict, tolerant: bool = False
                   ) -> OptimizerPart:
  """Sets ``config.optim`` to the common keys and the named optimizer's fields; its record.

  Args:
    tolerant: drop keys the optimizer does not have (a run folder from an older jaxdl,
      which saved sgd's momentum for every optimizer) instead of refusing them.
  """
  part = OPTIMIZERS.resolve(config.optim.name, config.get("experiment", ""))
  common = {k: config.optim[k] for k in COMMON}
  given = {k: tuple(v) if isinstance(v, list) else v
           for k, v in config.optim.items() if k not in COMMON}
  if not tolerant and part.fields is not None:
    _refuse_unknown(part, given)
  fields = merged_fields(part, given, {}, tolerant, section="optim")
  set_section(config, "optim", ml_collections.ConfigDict({**common, **fields}))
  return part


def rename_optim(config: ml_collections.ConfigDict, name: str) -> OptimizerPart:
  """Switches ``config`` to optimizer ``name`` with its default fields."""
  common = {k: config.optim[k] for k in COMMON}
  set_section(config, "optim", ml_collections.ConfigDict({**common, "name": name}))
  return complete_optim(config)


def _refuse_unknown(part: OptimizerPart, given: dict) -> None:
  """A key neither common nor the optimizer's: named, with the closest of both kinds."""
  known = {*part.fields, *part.required}
  unknown = [k for k in given if k not in known]
  if unknown:
    close = suggest(unknown[0], [*known, *COMMON])
    hint = f" (did you mean 'optim.{close[0]}'?)" if close else ""
    raise ConfigError(f"config key 'optim.{unknown[0]}' is not a field of optimizer "
                      f"{part.name!r}{hint}; its fields: {', '.join(sorted(known)) or 'none'}; "
                      f"every optimizer's: {', '.join(COMMON[1:])}")
