"""Checks of a whole config: keys and types against the defaults, and every value's range.

The command line's overrides are checked as they are applied (loading.py);
these checks cover what an experiment file sets itself, and the ranges of
values that would otherwise train without complaint and mean nothing (a
dropout rate of 2, a negative fraction) or fail deep inside XLA.
"""

import math
from collections.abc import Callable, Mapping
from typing import Any

import ml_collections

from jaxdl.configs.keys import config_to_dict, flatten, suggest
from jaxdl.errors import ConfigError

_positive = (lambda v: v >= 1, "at least 1")
_non_negative = (lambda v: v >= 0, ">= 0")
_fraction = (lambda v: 0.0 <= v < 1.0, "in [0, 1)")
_closed_fraction = (lambda v: 0.0 <= v <= 1.0, "in [0, 1]")
_strictly_positive = (lambda v: v > 0, "> 0")

RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "num_epochs": _positive, "batch_size": _positive, "eval_batch_size": _positive,
    "checkpoint_every_steps": _positive, "checkpoints_to_keep": _positive,
    "data.val_fraction": _fraction, "data.test_fraction": _fraction,
    "data.image_size": _non_negative, "data.augment_shift": _non_negative,
    "data.num_classes": _non_negative, "data.vocab_size": (lambda v: v >= 3, "at least 3"),
    "data.max_len": _positive, "data.seq_len": _positive, "data.num_train": _positive,
    "data.num_test": _positive, "data.num_symbols": (lambda v: v >= 2, "at least 2"),
    "data.folds": (lambda v: v == 0 or v >= 2, "0 (off) or at least 2"),
    "data.fold": _non_negative,
    "data.in_memory": (lambda v: v in ("auto", "yes", "no"), "auto, yes or no"),
    "data.workers": (lambda v: v >= -1, ">= 0, or -1 (auto)"), "data.prefetch": (lambda v: v >= -1, ">= 0, or -1 (auto)"),
    "model.dropout_rate": _fraction, "model.embed_dim": _positive,
    "model.blocks_per_stage": _positive, "model.unroll": _positive,
    "model.lstm_kernel": (lambda v: v in ("auto", "xla", "native", "pallas"),
                          "auto, xla, native or pallas"),
    "model.conv_kernel": (lambda v: v in ("auto", "xla", "native"), "auto, xla or native"),
    "model.widths": (lambda v: len(v) > 0 and all(isinstance(w, int) and w >= 1 for w in v),
                     "one positive int per stage, e.g. (32, 64)"),
    "model.hidden_sizes": (lambda v: len(v) > 0 and all(isinstance(w, int) and w >= 1
                                                        for w in v),
                           "one positive int per layer, e.g. (64, 64)"),
    "optim.learning_rate": _strictly_positive, "optim.momentum": _fraction,
    # Optimizers' own fields where present (optax's names): decay rates and epsilons.
    "optim.rho": _fraction, "optim.b1": _fraction, "optim.b2": _fraction,
    "optim.decay": _fraction, "optim.eps": _non_negative,
    "optim.weight_decay": _non_negative, "optim.grad_clip_norm": _non_negative,
    "optim.warmup_epochs": _non_negative, "optim.end_lr_fraction": _closed_fraction,
    "privacy.clip_norm": _strictly_positive, "privacy.noise_multiplier": _non_negative,
    "privacy.target_epsilon": _non_negative, "privacy.delta": _fraction,
    "parallel.model_axis": _positive, "select.patience": _non_negative,
    "log.every_steps": _non_negative,
}


def check_keys_and_types(config: ml_collections.ConfigDict, where: str) -> None:
  """Every key of ``config`` exists in the defaults, with a value of the default's type.

  Args:
    config: a config as an experiment file built it.
    where: what to name in the error (the experiment file).
  """
  from jaxdl.configs.default import get_config  # default.py imports nothing of ours.

  defaults = flatten(config_to_dict(get_config()))
  values = flatten(config_to_dict(config))
  for key, value in values.items():
    if key.startswith("model.") and key != "model.name":
      continue  # The model's own fields: model_fields.complete_model checks them.
    if key.startswith("optim.") and key not in defaults:
      continue  # The optimizer's own fields: optim_fields.complete_optim checks them.
    if key.startswith("data.") and key not in defaults:
      continue  # The data source's own fields: data_fields.complete_data checks them.
    if key.startswith("constraints."):
      continue  # Each constraint's fields: optim.constraints checks them when it binds.
    if key not in defaults:
      group, _, leaf = key.rpartition(".")
      valid = sorted(k.rpartition(".")[2] for k in defaults if k.rpartition(".")[0] == group)
      close = suggest(leaf, valid)
      hint = f" (did you mean {'.'.join([group, close[0]] if group else close)!r}?)" if close else ""
      raise ConfigError(f"{where} sets unknown config key {key!r}{hint}; valid keys at "
                        f"{group or 'the top level'}: {', '.join(valid)}")
    if not _same_type(defaults[key], value):
      raise ConfigError(f"{where} sets config key {key!r} to {value!r}, but it expects "
                        f"{_type_name(defaults[key])}")


def _same_type(default: Any, value: Any) -> bool:
  if default is None or value is None:
    return True
  if isinstance(default, bool) or isinstance(value, bool):
    return isinstance(default, bool) and isinstance(value, bool)
  if isinstance(default, float):
    return isinstance(value, (int, float))
  if isinstance(default, (list, tuple)):
    return isinstance(value, (list, tuple))
  return isinstance(value, type(default))


def _type_name(default: Any) -> str:
  if isinstance(default, (list, tuple)):
    return "a tuple"
  return {bool: "a bool", int: "an int", float: "a float", str: "a string"}.get(
      type(default), type(default).__name__)


def check_ranges(values: Mapping[str, Any]) -> None:
  """Every value in RANGES is in its range (``values``: the flattened config)."""
  for key, (ok, wanted) in RANGES.items():
    if key not in values:
      continue
    value = values[key]
    if isinstance(value, float) and not math.isfinite(value):
      raise ConfigError(f"config key {key!r} must be finite, got {value}")
    if not ok(value):
      raise ConfigError(f"config key {key!r} must be {wanted}, got {value!r}")
  if "data.fold" in values and values["data.fold"] and not values.get("data.folds"):
    raise ConfigError(f"data.fold={values['data.fold']} needs data.folds=k (k-fold "
                      "cross-validation); without it every fold is the same split: set "
                      "data.folds (e.g. data.folds=10), or leave data.fold at 0")
  if values.get("data.folds") and not values["data.fold"] < values["data.folds"]:
    raise ConfigError(f"data.fold={values['data.fold']} must be below data.folds="
                      f"{values['data.folds']} (folds are numbered 0..{values['data.folds'] - 1})")


def check_config(config: ml_collections.ConfigDict) -> None:
  """Ranges of every checked value of ``config``."""
  check_ranges(flatten(config_to_dict(config)))
