"""Model selection on validation data: which epoch is a run's result, and early stopping.

Careful papers pick the model on validation data and touch the test set once,
with the picked model. A ``Selection`` reads a run's history (the rows of
``metrics.jsonl``) and names the selected epoch: the best by a validation
metric (ties go to the earlier epoch), or the last one. The same rule decides
early stopping and which checkpoint orbax keeps as the best, so the three
always agree. Validation accuracy on a few hundred examples ties often; ties
go to the lower validation loss, then to the earlier epoch.
"""

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections

from jaxdl.data.spec import DataSpec
from jaxdl.errors import ConfigError
from jaxdl.training.objectives import Objective

LAST = "last"
MODES = ("max", "min")


def _is_number(value: Any) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(value: Any, worst: float = -math.inf) -> float:
  if not _is_number(value) or not math.isfinite(value):
    return worst
  return float(value)


@dataclasses.dataclass(frozen=True)
class Selection:
  """How a run's result is chosen among its epochs.

  Attributes:
    metric: a ``metrics.jsonl`` key such as ``val_accuracy``, or ``'last'``.
    mode: ``'max'`` or ``'min'`` (``''`` for ``'last'``).
    patience: stop after this many epochs without improvement (0: never).
    note: why this rule was chosen where the config said ``auto``.
  """

  metric: str
  mode: str = ""
  patience: int = 0
  note: str = ""

  @property
  def is_last(self) -> bool:
    return self.metric == LAST

  def score(self, row: Mapping[str, Any]) -> tuple[float, float]:
    """Larger is better: the metric, then (for ties) the negated validation loss.

    A missing or non-finite value is the worst score.
    """
    sign = 1.0 if self.mode == "max" else -1.0
    primary = _finite(sign * row[self.metric] if _is_number(row.get(self.metric)) else None)
    tiebreak = 0.0 if self.metric == "val_loss" else -_finite(row.get("val_loss"), math.inf)
    return primary, tiebreak

  def best_index(self, history: Sequence[Mapping[str, Any]]) -> int | None:
    """The selected row of ``history`` (the first best; the last for 'last'); None if empty."""
    if not history:
      return None
    if self.is_last:
      return len(history) - 1
    scores = [self.score(row) for row in history]
    return scores.index(max(scores))

  def should_stop(self, history: Sequence[Mapping[str, Any]]) -> bool:
    """True once ``patience`` epochs have passed without a better score."""
    best = self.best_index(history)
    return bool(self.patience and best is not None and not self.is_last
                and len(history) - 1 - best >= self.patience)

  def checkpoint_metrics(self, row: Mapping[str, Any]) -> dict[str, float]:
    """What an epoch's checkpoint records for orbax's keep-the-best policy."""
    primary, tiebreak = self.score(row)
    return {"score": primary, "tiebreak": tiebreak, "step": float(row["step"])}

  @staticmethod
  def checkpoint_rank(metrics: Mapping[str, float]) -> tuple[float, float, float]:
    """Orbax keeps the largest rank: the order of ``best_index``, earliest step on a tie."""
    return (metrics["score"], metrics["tiebreak"], -metrics["step"])

  def describe(self) -> dict[str, Any]:
    out = {"selection_metric": self.metric}
    if not self.is_last:
      out["selection_mode"] = self.mode
    if self.patience:
      out["selection_patience"] = self.patience
    if self.note:
      out["selection_note"] = self.note
    return out


def from_config(cfg: ml_collections.ConfigDict, spec: DataSpec, objective: Objective) -> Selection:
  """Checks ``config.select`` against the data and the objective's metrics.

  Args:
    cfg: ``config.select``.
    spec: the data (its task, and whether it has a validation split).
    objective: the loss and metrics (their names, and which way each is better).
  """
  metric_names = objective.metric_names
  if cfg.patience < 0:
    raise ConfigError(f"select.patience must be >= 0 (0: no early stopping), got {cfg.patience}")
  if cfg.mode not in ("auto", *MODES):
    raise ConfigError(f"select.mode must be auto, max or min, got {cfg.mode!r}")
  metric, note = cfg.metric, ""
  if metric == "auto":
    metric = "val_accuracy" if "accuracy" in metric_names else "val_loss"
    if spec.num_val == 0:
      metric, note = LAST, "no validation split, so the last epoch is the result"
  if metric == LAST:
    if cfg.patience:
      raise ConfigError("select.patience (early stopping) needs a validation metric; set "
                        "select.metric=auto or a val_ metric, and keep data.val_fraction > 0")
    return Selection(LAST, note=note)
  valid = [f"val_{m}" for m in metric_names]
  if metric not in valid:
    raise ConfigError(f"select.metric {metric!r} is not a validation metric of this run; "
                      f"choose one of {', '.join(valid)}, 'auto' or 'last'")
  if spec.num_val == 0:
    raise ConfigError(f"select.metric={metric} needs a validation split, but {spec.name} has "
                      "none; set data.val_fraction > 0, or select.metric=last")
  mode = cfg.mode if cfg.mode != "auto" else objective.mode(metric)
  if mode is None:
    raise ConfigError(f"select.mode=auto cannot tell whether a higher or a lower {metric} is "
                      "better (the metric declares no direction); set select.mode=max or "
                      "select.mode=min, or declare it with jaxdl.Metric(fn, mode=...)")
  return Selection(metric, mode, cfg.patience, note)
