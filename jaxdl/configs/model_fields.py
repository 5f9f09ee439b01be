"""``config.model``: the chosen model's own fields, checked like every other key.

The base config names a model only. When an experiment is loaded (or a run's
config.json read back), ``config.model`` gets exactly the fields of the model
it names, with their defaults under the values the experiment set; a key the
model does not have is an error with a did-you-mean. When an override or a
sweep changes ``model.name``, the new model's fields replace the old ones, and
values of fields both models have are kept.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections

from jaxdl.configs.keys import suggest
from jaxdl.errors import ConfigError


def _plain(value: Any) -> Any:
  return tuple(value) if isinstance(value, list) else value


def complete_model(config: ml_collections.ConfigDict,
                   carried: Mapping[str, Any] | None = None, tolerant: bool = False):
  """Sets ``config.model`` to the named model's fields; returns the model's record.

  Args:
    config: the config; ``config.model.name`` names the model.
    carried: the previous model's fields, whose values carry over where the
      new model has the same field.
    tolerant: drop keys the model does not have (a run folder from an older
      jaxdl, which saved every model's fields) instead of refusing them.
  """
  from jaxdl import models  # models imports data, which imports configs: import late.

  name = config.model.name
  part = models.resolve(name, config.experiment)
  given = {k: _plain(v) for k, v in config.model.items() if k != "name"}
  fields = merged_fields(part, given, carried or {}, tolerant)
  _set_model(config, ml_collections.ConfigDict({"name": name, **fields}))
  return part


def merged_fields(part, given: Mapping[str, Any], carried: Mapping[str, Any],
                  tolerant: bool, section: str = "model", shared: Sequence[str] = ()
                  ) -> dict[str, Any]:
  """A part's defaults, under the carried values it shares, under the values set.

  Args:
    part: a record with ``name``, ``fields`` and ``required`` (a model's, an optimizer's).
    section: the config section the fields live in, for the error.
    shared: the section's keys every part has (``optim.learning_rate``, ...): not in
      ``given``, but a typo may have meant one, so the error suggests and names them.
  """
  if part.fields is None:  # A factory's fields are whatever the experiment set.
    return {**carried, **given}
  kind = {"optim": "optimizer", "data": "data source"}.get(section, section)
  known = {*part.fields, *part.required}
  unknown = [k for k in given if k not in known]
  if unknown and not tolerant:
    close = suggest(unknown[0], [*known, *shared])
    hint = f" (did you mean '{section}.{close[0]}'?)" if close else ""
    every = f"; every {kind}'s: {', '.join(shared)}" if shared else ""
    raise ConfigError(f"config key '{section}.{unknown[0]}' is not a field of {kind} "
                      f"{part.name!r}{hint}; its fields: {', '.join(sorted(known)) or 'none'}"
                      f"{every}")
  missing = [k for k in part.required if k not in given and k not in carried]
  if missing and section != "model":  # Models report theirs when built, with the model.
    raise ConfigError(f"{kind} {part.name!r} needs '{section}.{missing[0]}' (it has no default)")
  kept = {k: _plain(v) for k, v in carried.items() if k in known}
  return {**part.fields, **kept, **{k: v for k, v in given.items() if k in known}}


def _set_model(config: ml_collections.ConfigDict, model: ml_collections.ConfigDict) -> None:
  set_section(config, "model", model)


def set_section(config: ml_collections.ConfigDict, key: str,
                value: ml_collections.ConfigDict) -> None:
  """Replaces ``config[key]`` (a locked config stays locked)."""
  locked = config.is_locked
  config.unlock()
  config[key] = value
  if locked:
    config.lock()


def rename_model(config: ml_collections.ConfigDict, name: str):
  """Switches ``config`` to model ``name``, keeping the values of shared fields."""
  carried = {k: v for k, v in config.model.items() if k != "name"}
  _set_model(config, ml_collections.ConfigDict({"name": name}))
  return complete_model(config, carried)
