"""The Optax optimizer of ``config.optim``: clipping, L2 decay, the optimizer, the schedule.

Numeric hyperparameters (learning rate, weight decay, clipping norm and the
optimizer's injected fields) are injected with ``optax.inject_hyperparams``, so
they live in the optimizer state as arrays: data, not code. A sweep can then
stack members that differ only in these values and train them in one compiled
program.

The learning-rate schedule is applied as a unit-peak multiplier after the
optimizer. Every built-in optimizer ends in a scale by the learning rate, so
this equals Optax's own schedules exactly while keeping the peak learning rate
a plain number.
"""

import inspect
import math
from collections.abc import Mapping
from typing import Any

import ml_collections
import optax

from jaxdl.errors import ConfigError
from jaxdl.optim.optimizers import COMMON, OPTIMIZERS, OptimizerPart
from jaxdl.optim.schedules import schedule_shape

_STATIC = ("jaxdl_static", "jaxdl_clip", "jaxdl_decay", "jaxdl_shape")


def _chain(part: OptimizerPart, jaxdl_static: Mapping[str, Any], jaxdl_clip: bool,
           jaxdl_decay: bool, jaxdl_shape: optax.Schedule | None, learning_rate, weight_decay,
           grad_clip_norm, **injected) -> optax.GradientTransformation:
  """Clipping, coupled L2 decay, the optimizer and the schedule, in that order.

  (The static arguments' prefix keeps them apart from optimizers' own fields: rmsprop
  has a ``decay``.)
  """
  parts = [optax.clip_by_global_norm(grad_clip_norm)] if jaxdl_clip else []
  own = {**jaxdl_static, **injected}
  if part.decoupled_decay:
    parts.append(part.make(learning_rate, weight_decay=weight_decay, **own))
  else:
    if jaxdl_decay:
      parts.append(optax.add_decayed_weights(weight_decay))  # Coupled L2 decay.
    parts.append(part.make(learning_rate, **own))
  if jaxdl_shape is not None:
    parts.append(optax.scale_by_schedule(jaxdl_shape))
  return optax.chain(*parts)


def _factory(part: OptimizerPart):
  """``_chain`` with a signature naming each injected field, which inject_hyperparams reads."""
  def factory(**kwargs):
    return _chain(part, **kwargs)

  keyword = inspect.Parameter.KEYWORD_ONLY
  names = (*_STATIC, "learning_rate", "weight_decay", "grad_clip_norm", *part.injected)
  factory.__signature__ = inspect.Signature([inspect.Parameter(n, keyword) for n in names])
  return factory


def own_fields(cfg: ml_collections.ConfigDict) -> dict[str, Any]:
  """The optimizer's own fields of ``config.optim`` (everything but the common keys)."""
  return {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items() if k not in COMMON}


def build_optimizer(cfg: ml_collections.ConfigDict, total_steps: int, steps_per_epoch: int,
                    experiment: str = "") -> optax.GradientTransformation:
  """Builds the optimizer of ``config.optim`` for a run of ``total_steps`` steps.

  Args:
    cfg: ``config.optim``, completed with the optimizer's own fields.
    experiment: the experiment file, whose folder an import path resolves from.
  """
  part = OPTIMIZERS.resolve(cfg.name, experiment)
  shape = schedule_shape(cfg, total_steps, steps_per_epoch, experiment)
  for key in ("learning_rate", "weight_decay", "grad_clip_norm"):
    value = cfg[key]
    if not math.isfinite(value) or value < 0:
      raise ConfigError(f"optim.{key} must be a finite number >= 0, got {value}")
  own = own_fields(cfg)
  injected = {k: own.pop(k) for k in part.injected}
  make = optax.inject_hyperparams(_factory(part), static_args=_STATIC)
  return make(jaxdl_static=own, jaxdl_clip=cfg.grad_clip_norm > 0,
              jaxdl_decay=cfg.weight_decay > 0 and not part.decoupled_decay,
              jaxdl_shape=shape,
              learning_rate=cfg.learning_rate, weight_decay=float(cfg.weight_decay),
              grad_clip_norm=cfg.grad_clip_norm or 1.0, **injected)
