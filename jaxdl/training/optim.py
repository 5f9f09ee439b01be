"""The Optax optimizer built from ``config.optim``.

Numeric hyperparameters (learning rate, weight decay, momentum, clipping norm)
are injected with ``optax.inject_hyperparams``, so they live in the optimizer
state as arrays: data, not code. A sweep can then stack members that differ
only in these values and train them in one compiled program.

The learning-rate schedule is applied as a unit-peak multiplier after the base
optimizer. For adam, adamw and sgd (momentum or not) the update is linear in
the learning rate, so this equals Optax's own schedules exactly while keeping
the peak learning rate a plain number.
"""

import math

import ml_collections
import optax

from jaxdl.errors import ConfigError

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "warmup_cosine")


def _schedule_shape(cfg: ml_collections.ConfigDict, total_steps: int,
                    steps_per_epoch: int) -> optax.Schedule | None:
  """A schedule with peak 1.0, or None for a constant learning rate."""
  if cfg.schedule == "constant":
    return None
  end = cfg.end_lr_fraction
  if cfg.schedule == "cosine":
    return optax.cosine_decay_schedule(1.0, max(total_steps, 1), alpha=end)
  warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
  if warmup >= total_steps:
    raise ConfigError(f"optim.warmup_epochs={cfg.warmup_epochs} covers the whole run "
                      f"({total_steps} steps); make it shorter than num_epochs")
  return optax.warmup_cosine_decay_schedule(0.0, 1.0, warmup, total_steps, end_value=end)


def _optimizer(learning_rate, weight_decay, momentum, grad_clip_norm, *, name: str,
               nesterov: bool, clip: bool, decay: bool, shape: optax.Schedule | None):
  parts = []
  if clip:
    parts.append(optax.clip_by_global_norm(grad_clip_norm))
  if name == "adamw":
    parts.append(optax.adamw(learning_rate, weight_decay=weight_decay))
  else:
    if decay:
      parts.append(optax.add_decayed_weights(weight_decay))  # Coupled L2 decay.
    if name == "adam":
      parts.append(optax.adam(learning_rate))
    else:
      parts.append(optax.sgd(learning_rate, momentum=momentum, nesterov=nesterov))
  if shape is not None:
    parts.append(optax.scale_by_schedule(shape))
  return optax.chain(*parts)


def build_optimizer(cfg: ml_collections.ConfigDict, total_steps: int,
                    steps_per_epoch: int) -> optax.GradientTransformation:
  """Builds the optimizer of ``config.optim`` for a run of ``total_steps`` steps."""
  if cfg.name not in OPTIMIZERS:
    raise ConfigError(f"unknown optim.name {cfg.name!r}; choose one of {', '.join(OPTIMIZERS)}")
  if cfg.schedule not in SCHEDULES:
    raise ConfigError(f"unknown optim.schedule {cfg.schedule!r}; choose one of "
                      f"{', '.join(SCHEDULES)}")
  for key in ("learning_rate", "weight_decay", "grad_clip_norm"):
    value = cfg[key]
    if not math.isfinite(value) or value < 0:
      raise ConfigError(f"optim.{key} must be a finite number >= 0, got {value}")
  make = optax.inject_hyperparams(
      _optimizer, static_args=("name", "nesterov", "clip", "decay", "shape"))
  return make(learning_rate=cfg.learning_rate, weight_decay=float(cfg.weight_decay),
              momentum=cfg.momentum, grad_clip_norm=cfg.grad_clip_norm or 1.0,
              name=cfg.name, nesterov=cfg.nesterov, clip=cfg.grad_clip_norm > 0,
              decay=cfg.weight_decay > 0 and cfg.name != "adamw",
              shape=_schedule_shape(cfg, total_steps, steps_per_epoch))
