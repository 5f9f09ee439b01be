"""Learning-rate schedules as parts: a built-in name or ``PKG.MODULE:ATTR``.

A schedule is the multiplier of the peak learning rate at each step (1.0 at its peak), which
the optimizer chain applies after the optimizer (build.py): ``optim.learning_rate`` stays the
peak, a plain number that sweeps vectorize over. The built-in ones read ``optim.warmup_epochs``
and ``optim.end_lr_fraction``; a researcher's own is a ``SchedulePart``, or a function
``f(total_steps, steps_per_epoch) -> optax.Schedule`` whose values are that multiplier.
"""

import dataclasses
from collections.abc import Callable
from typing import Any

import ml_collections
import optax

from jaxdl import parts
from jaxdl.errors import ConfigError

Maker = Callable[[ml_collections.ConfigDict, int, int], optax.Schedule | None]


@dataclasses.dataclass(frozen=True)
class SchedulePart:
  """A learning-rate schedule.

  Attributes:
    name: what ``optim.schedule`` says.
    make: ``(optim_config, total_steps, steps_per_epoch) -> optax.Schedule`` of the peak
      learning rate's multiplier (peak 1.0), or None for a constant rate.
    description: for listings.
    cite_keys: BibTeX keys of the papers behind it, for ``jaxdl cite``.
  """

  name: str
  make: Maker
  description: str = ""
  cite_keys: tuple[str, ...] = ()


def _cosine(cfg, total_steps: int, steps_per_epoch: int) -> optax.Schedule:
  return optax.cosine_decay_schedule(1.0, max(total_steps, 1), alpha=cfg.end_lr_fraction)


def _warmup_cosine(cfg, total_steps: int, steps_per_epoch: int) -> optax.Schedule:
  warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
  if warmup >= total_steps:
    raise ConfigError(f"optim.warmup_epochs={cfg.warmup_epochs} covers the whole run "
                      f"({total_steps} steps); make it shorter than num_epochs")
  return optax.warmup_cosine_decay_schedule(0.0, 1.0, warmup, total_steps,
                                            end_value=cfg.end_lr_fraction)


def _adapt(name: str, obj: Any) -> SchedulePart:
  """A record at an import path, or a function ``f(total_steps, steps_per_epoch)``."""
  if isinstance(obj, SchedulePart):
    return obj
  if callable(obj):
    return SchedulePart(name, lambda cfg, total, per_epoch: obj(total, per_epoch),
                        f"user schedule {name}")
  raise ConfigError(f"optim.schedule {name!r} is a {type(obj).__name__}, not a SchedulePart or a "
                    "function f(total_steps, steps_per_epoch) -> optax.Schedule")


SCHEDULES: parts.Registry[SchedulePart] = parts.Registry("schedule", _adapt, key="optim.schedule")
SCHEDULES.register("constant", SchedulePart("constant", lambda cfg, total, per_epoch: None,
                                            "the peak learning rate throughout"))
SCHEDULES.register("cosine", SchedulePart(
    "cosine", _cosine, "cosine decay to optim.end_lr_fraction of the peak",
    ("loshchilov2017sgdr",)))
SCHEDULES.register("warmup_cosine", SchedulePart(
    "warmup_cosine", _warmup_cosine,
    "linear warm-up over optim.warmup_epochs, then cosine decay", ("loshchilov2017sgdr",)))


def schedule_shape(cfg: ml_collections.ConfigDict, total_steps: int, steps_per_epoch: int,
                   experiment: str = "") -> optax.Schedule | None:
  """The multiplier schedule of ``cfg.schedule`` (None: constant), checked at step 0."""
  part = SCHEDULES.resolve(cfg.schedule, experiment)
  shape = part.make(cfg, total_steps, steps_per_epoch)
  if shape is not None and part.name not in SCHEDULES.names():
    peak = float(max(shape(0), shape(max(total_steps - 1, 0)), shape(total_steps // 2)))
    if not 0 < peak <= 1.0 + 1e-6:
      raise ConfigError(f"optim.schedule {cfg.schedule}: its values multiply the peak "
                        f"learning rate and must lie in (0, 1], got {peak:g}; scale it to peak "
                        "1.0 and set optim.learning_rate to the peak")
  return shape
