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

from jaxdl.configs.model_fields import merged_fields, set_section
from jaxdl.optim.build import own_fields
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
  fields = merged_fields(part, own_fields(config.optim), {}, tolerant, section="optim",
                         shared=COMMON[1:])
  set_section(config, "optim", ml_collections.ConfigDict({**common, **fields}))
  return part


def rename_optim(config: ml_collections.ConfigDict, name: str) -> OptimizerPart:
  """Switches ``config`` to optimizer ``name`` with its default fields."""
  common = {k: config.optim[k] for k in COMMON}
  set_section(config, "optim", ml_collections.ConfigDict({**common, "name": name}))
  return complete_optim(config)

