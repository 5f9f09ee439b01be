"""Confidence intervals that follow how a study was run, and paired comparisons.

A group of runs (one configuration) is repeated over model seeds, and over
cross-validation folds or random splits (``data.split_seed``). Those are not
independent draws of the same thing, so the interval depends on the design:

* **k-fold or repeated splits**: seeds are averaged within each fold (or
  split) first; the fold means are the units. Their training sets overlap, so
  the plain t interval is too narrow: the *corrected resampled t* (Nadeau &
  Bengio 2003; Bouckaert & Frank 2004) widens the variance of the mean from
  ``s^2 / n`` to ``(1/n + n_test/n_train) s^2``, with n - 1 degrees of freedom.
* **one split**: every run is scored on the same test set, whose own sampling
  error is what a reader needs: a Wilson interval for accuracy (``n`` = the
  test examples, the seed-averaged proportion), and a percentile bootstrap
  over test examples for other metrics, from the saved per-example
  predictions (``test_predictions.npz``).
* anything else (timing, sizes, a split without saved predictions): a t
  interval over the runs, labelled as covering run-to-run variation only.

A t-based interval needs at least 3 units; with fewer, none is given (a t
interval on 2 values spans most of a metric's range and says nothing).

Paired comparisons of two groups pair their runs by fold, split and seed:
the corrected paired t over folds (with Wilcoxon's signed-rank test where
n >= 6 lets it reach p < 0.05), or on one split McNemar's exact test on the
test examples (several seeds: the largest of the per-seed p-values, an
intersection-union test) or a paired bootstrap for metrics other than
accuracy. Holm's method corrects a family of comparisons.
"""

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

from jaxdl.training.metrics import from_confusion

LEVEL = 0.95
MIN_UNITS = 3  # Fewest units a t interval is given for.
BOOTSTRAP_RESAMPLES = 2000
_SPLIT_PREFIXES = ("last_test_", "test_", "val_", "train_")


@dataclasses.dataclass(frozen=True)
class Estimate:
  """One metric of one group.

  Attributes:
    mean: the mean over units (each unit the mean over its seeds).
    std: the spread to print beside the mean: the sample std of the unit means
      (folds, splits), or of the runs (one split); NaN for one value.
    low, high: the interval (NaN where none is given).
    n: what the interval rests on: units (folds, splits, runs) or test examples.
    method: how the interval was made, for the table's notes.
    runs: the runs averaged.
    seed_std: the pooled std across seeds within a fold or split (NaN with one seed each).
  """

  mean: float
  std: float
  low: float
  high: float
  n: int
  method: str
  runs: int
  seed_std: float = math.nan

  @property
  def ci_low(self) -> float:
    return self.low

  @property
  def ci_high(self) -> float:
    return self.high

  @property
  def error_bar(self) -> float:
    """The std to draw (0 where there is none)."""
    return 0.0 if math.isnan(self.std) else self.std

  @property
  def has_interval(self) -> bool:
    return not math.isnan(self.low)


def metric_range(metric: str) -> tuple[float, float]:
  """The values a metric can take (a t interval is clipped to them)."""
  name = base_name(metric)
  if name == "mcc":
    return -1.0, 1.0
  if name in ("accuracy", "macro_f1") or name.endswith("_accuracy"):
    return 0.0, 1.0
  if name in ("loss", "mse"):
    return 0.0, math.inf
  # Seconds, rates and sizes: a noisy wall clock must not give a negative time.
  if (name in ("s", "s_per_epoch") or name.endswith(("_s", "_s_per_epoch", "_per_s"))
      or name.startswith(("num_", "flops"))):
    return 0.0, math.inf
  return -math.inf, math.inf


def base_name(metric: str) -> str:
  """The metric without its split prefix: ``test_accuracy`` -> ``accuracy``."""
  for prefix in _SPLIT_PREFIXES:
    if metric.startswith(prefix):
      return metric[len(prefix):]
  return metric


# --- the intervals --------------------------------------------------------------------------------

def wilson(proportion: float, n: int, level: float = LEVEL) -> tuple[float, float]:
  """Wilson's score interval of a proportion observed on ``n`` trials."""
  z = float(stats.norm.ppf(0.5 + level / 2))
  centre = (proportion + z * z / (2 * n)) / (1 + z * z / n)
  half = z / (1 + z * z / n) * math.sqrt(proportion * (1 - proportion) / n + z * z / (4 * n * n))
  return max(centre - half, 0.0), min(centre + half, 1.0)


def t_interval(values: Sequence[float], level: float = LEVEL, inflation: float = 0.0
               ) -> tuple[float, float]:
  """Student's t interval of the mean of ``values``, its variance ``(1/n + inflation) s^2``.

  ``inflation`` = n_test / n_train gives Nadeau & Bengio's corrected resampled t;
  0 the plain one.
  """
  x = np.asarray(values, np.float64)
  n = len(x)
  se = math.sqrt((1.0 / n + inflation) * float(np.var(x, ddof=1)))
  half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * se
  mean = float(np.mean(x))
  return mean - half, mean + half


def bootstrap(statistic: Callable[[np.ndarray], float], n: int, level: float = LEVEL,
              seed: int = 0) -> tuple[float, float]:
  """Percentile bootstrap interval of ``statistic(indices)`` over ``n`` examples resampled."""
  result = stats.bootstrap((np.arange(n),), statistic, vectorized=False, paired=False,
                           n_resamples=BOOTSTRAP_RESAMPLES, confidence_level=level,
                           method="percentile", rng=np.random.default_rng(seed))
  return float(result.confidence_interval.low), float(result.confidence_interval.high)


def holm(p_values: Sequence[float]) -> list[float]:
  """Holm's step-down adjusted p-values (family-wise error), in the given order."""
  p = np.asarray(p_values, np.float64)
  order = np.argsort(p)
  adjusted = np.empty_like(p)
  running = 0.0
  for rank, i in enumerate(order):
    running = max(running, min(1.0, (len(p) - rank) * p[i]))
    adjusted[i] = running
  return adjusted.tolist()


# --- metrics recomputed from per-example predictions ---------------------------------------------

def _confusion(label: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
  return np.bincount(label * classes + predicted, minlength=classes * classes).reshape(
      classes, classes).astype(np.float64)


def from_predictions(metric: str, p: Mapping[str, np.ndarray], rows: np.ndarray,
                     classes: int) -> float:
  """``metric`` (a test metric) of the examples ``rows`` of predictions ``p``."""
  name = base_name(metric)
  label, predicted = p["label"][rows], p["predicted"][rows]
  if name == "accuracy":
    return float(np.mean(predicted == label))
  if name == "loss":
    return float(np.mean(p["loss"][rows]))
  if name == "mse":
    return float(np.mean((predicted - label) ** 2))
  return from_confusion(_confusion(label, predicted, classes))[name]


def recomputable(metric: str) -> bool:
  """Whether per-example predictions give ``metric`` (a bootstrap can resample it)."""
  return metric.startswith("test_") and base_name(metric) in ("accuracy", "loss", "mse",
                                                              "macro_f1", "mcc")


# --- the design ---------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Design:
  """How a group's runs repeat one configuration.

  Attributes:
    kind: ``'folds'`` (k-fold CV, possibly repeated), ``'splits'`` (random splits over
      ``data.split_seed``) or ``'single'`` (one split, seeds only).
    units: unit key -> the row indices (seeds) in it.
  """

  kind: str
  units: dict[tuple, list[int]]

  def describe(self) -> str:
    return {"folds": "folds", "splits": "splits", "single": "runs"}[self.kind]


def unit_key(row: Mapping[str, Any]) -> tuple:
  """The fold or split a run belongs to: (split_seed, fold)."""
  return (row.get("data.split_seed", 0), row.get("data.fold", 0) if row.get("data.folds") else 0)


def design_of(rows: Sequence[Mapping[str, Any]]) -> Design:
  """The design of one group's runs, from each run's config (``data.folds``, ``data.fold``,
  ``data.split_seed``)."""
  units: dict[tuple, list[int]] = {}
  for i, row in enumerate(rows):
    units.setdefault(unit_key(row), []).append(i)
  if any(row.get("data.folds") for row in rows):
    kind = "folds"
  elif len(units) > 1:
    kind = "splits"
  else:
    kind = "single"
  return Design(kind, units)


def _unit_means(values: Sequence[float], design: Design) -> tuple[list[float], float]:
  """Each unit's mean over its seeds, and the pooled within-unit (seed) std."""
  means, squares, dof = [], 0.0, 0
  for members in design.units.values():
    x = np.asarray([values[i] for i in members], np.float64)
    means.append(float(np.mean(x)))
    squares += float(np.sum((x - np.mean(x)) ** 2))
    dof += len(x) - 1
  return means, (math.sqrt(squares / dof) if dof else math.nan)


def _ratio(rows: Sequence[Mapping[str, Any]], metric: str) -> float:
  """n_test / n_train of the correction: held-out examples over the examples fitted on.

  For test metrics the training side is every example outside the test fold (train and
  validation); for validation metrics it is the training examples.
  """
  held = "num_val" if metric.startswith("val_") else "num_test"
  fitted = lambda r: r.get("num_train", 0) + (0 if held == "num_val" else r.get("num_val", 0))
  ratios = [r[held] / fitted(r) for r in rows if r.get(held) and fitted(r)]
  return float(np.mean(ratios)) if ratios else 0.0


def estimate(rows: Sequence[Mapping[str, Any]], metric: str,
             predictions: Sequence[Mapping[str, np.ndarray] | None] = ()) -> Estimate:
  """The mean, spread and interval of ``metric`` over one group's runs.

  Args:
    rows: the runs (results.json values, with their config's ``data.*`` keys).
    predictions: each run's test predictions (None where absent), for bootstrap intervals.
  """
  values = [float(r[metric]) for r in rows]
  design = design_of(rows)
  means, seed_std = _unit_means(values, design)
  held_out = metric.startswith(("test_", "last_test_", "val_"))
  if design.kind != "single" and held_out:
    return _from_units(means, seed_std, len(rows), metric,
                       f"corrected resampled t over {len(means)} {design.describe()}",
                       _ratio(rows, metric))
  if design.kind == "single" and held_out:
    found = _test_sampling(rows, metric, predictions, float(np.mean(values)))
    if found is not None:
      low, high, n, method = found
      std = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
      return Estimate(float(np.mean(values)), std, low, high, n, method, len(rows))
  why = " (run-to-run variation only: no saved test predictions)" if held_out else ""
  return _from_units(values, math.nan, len(rows), metric, f"t over {len(values)} runs{why}", 0.0)


def _from_units(units: Sequence[float], seed_std: float, runs: int, metric: str, method: str,
                inflation: float) -> Estimate:
  mean = float(np.mean(units))
  if len(units) < 2:
    return Estimate(mean, math.nan, math.nan, math.nan, len(units), "", runs, seed_std)
  std = float(np.std(units, ddof=1))
  if len(units) < MIN_UNITS or std == 0.0:
    why = f"no interval: {len(units)} values" if std else "no interval: every value equal"
    return Estimate(mean, std, math.nan, math.nan, len(units), why, runs, seed_std)
  low, high = t_interval(units, inflation=inflation)
  bounds = metric_range(metric)
  return Estimate(mean, std, max(low, bounds[0]), min(high, bounds[1]), len(units), method,
                  runs, seed_std)


def _test_sampling(rows, metric: str, predictions, mean: float):
  """(low, high, n, method) of one split's test-sampling interval, or None."""
  count = rows[0].get("num_val" if metric.startswith("val_") else "num_test")
  if base_name(metric) == "accuracy" and not metric.startswith("last_") and count:
    low, high = wilson(mean, int(count))
    return low, high, int(count), f"Wilson, {count} {'validation' if metric.startswith('val_') else 'test'} examples"
  usable = [p for p in predictions if p is not None]
  if not recomputable(metric) or not usable or len(usable) < len(rows) or not all(
      np.array_equal(p["index"], usable[0]["index"]) for p in usable):
    return None
  classes = int(max(max(p["label"].max(), p["predicted"].max()) for p in usable)) + 1
  statistic = lambda idx: float(np.mean([from_predictions(metric, p, idx, classes)
                                         for p in usable]))
  n = len(usable[0]["index"])
  low, high = bootstrap(statistic, n)
  return low, high, n, f"bootstrap over {n} test examples"


# --- paired comparisons ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Comparison:
  """Whether group A differs from group B on a metric, paired by fold, split and seed.

  Attributes:
    difference: mean of A minus mean of B (over the shared units).
    low, high: its 95% interval.
    p: two-sided p-value of the test named in ``test``.
    n: the pairs it rests on (folds or splits; test examples on one split).
    effect: a standardised effect: Cohen's d_z over the paired units, or on one
      split the difference in accuracy per discordant example (b - c) / (b + c).
    wilcoxon_p: Wilcoxon's signed-rank p over the units (None where n < 6).
    p_adjusted: after Holm's correction over the family compared (set by ``adjust``).
  """

  metric: str
  difference: float
  low: float
  high: float
  p: float
  n: int
  test: str
  effect: float
  wilcoxon_p: float | None = None
  p_adjusted: float | None = None

  def significant(self, alpha: float = 0.05) -> bool:
    p = self.p if self.p_adjusted is None else self.p_adjusted
    return bool(p < alpha)


def adjust(comparisons: Sequence[Comparison]) -> list[Comparison]:
  """The comparisons with Holm-adjusted p-values (one family)."""
  adjusted = holm([c.p if math.isfinite(c.p) else 1.0 for c in comparisons])
  return [dataclasses.replace(c, p_adjusted=a) for c, a in zip(comparisons, adjusted)]


def _pairs(rows_a, rows_b) -> list[tuple[int, int]]:
  """(i, j): runs of A and B with the same fold, split and seed."""
  where = {(*unit_key(r), r.get("seed")): j for j, r in enumerate(rows_b)}
  return [(i, where[key]) for i, r in enumerate(rows_a)
          if (key := (*unit_key(r), r.get("seed"))) in where]


def compare(rows_a: Sequence[Mapping[str, Any]], rows_b: Sequence[Mapping[str, Any]],
            metric: str, predictions_a: Sequence[Mapping | None] = (),
            predictions_b: Sequence[Mapping | None] = ()) -> Comparison | None:
  """The paired comparison of A and B on ``metric``; None where they share no run to pair.

  Raises:
    ValueError: where one split's comparison needs predictions that were not saved.
  """
  pairs = _pairs(rows_a, rows_b)
  if not pairs:
    return None
  a = [rows_a[i] for i, _ in pairs]
  b = [rows_b[j] for _, j in pairs]
  design = design_of(a)
  if design.kind != "single":
    return _compare_units(a, b, metric, design)
  pa = [predictions_a[i] if i < len(predictions_a) else None for i, _ in pairs]
  pb = [predictions_b[j] if j < len(predictions_b) else None for _, j in pairs]
  if any(p is None for p in (*pa, *pb)) or not recomputable(metric):
    raise ValueError(f"comparing {metric} on one split needs each run's saved test "
                     "predictions (test_predictions.npz, written by jaxdl since this release) "
                     "and a metric they give (test_accuracy, test_loss, test_macro_f1, "
                     "test_mcc, test_mse); retrain the runs, or compare over folds")
  if base_name(metric) == "accuracy":
    return _mcnemar(pa, pb, metric)
  return _paired_bootstrap(pa, pb, metric)


def _compare_units(a, b, metric: str, design: Design) -> Comparison:
  diffs = [float(np.mean([a[i][metric] - b[i][metric] for i in members]))
           for members in design.units.values()]
  d = np.asarray(diffs)
  n, mean = len(d), float(np.mean(d))
  label = f"corrected paired t over {n} {design.describe()}"
  if n < 2 or float(np.std(d, ddof=1)) == 0.0:
    return Comparison(metric, mean, math.nan, math.nan, math.nan, n, label + " (no variance)",
                      math.nan)
  inflation = _ratio(a, metric)
  sd = float(np.std(d, ddof=1))
  se = math.sqrt((1.0 / n + inflation) * sd * sd)
  t = mean / se
  p = float(2 * stats.t.sf(abs(t), n - 1))
  low, high = t_interval(d, inflation=inflation)
  wilcoxon_p = (float(stats.wilcoxon(d).pvalue) if n >= 6 and np.any(d != 0) else None)
  return Comparison(metric, mean, low, high, p, n, label, mean / sd, wilcoxon_p)


def _correct(p: Mapping[str, np.ndarray]) -> np.ndarray:
  return (p["predicted"] == p["label"]).astype(np.float64)


def _mcnemar(pa, pb, metric: str) -> Comparison:
  """McNemar's exact test per seed pair; the largest p (every seed must agree)."""
  for x, y in zip(pa, pb):
    if not np.array_equal(x["index"], y["index"]):
      raise ValueError("the two groups' runs were tested on different examples; McNemar "
                       "needs one test set")
  p_values, discordant = [], np.zeros(2)
  for x, y in zip(pa, pb):
    ca, cb = _correct(x), _correct(y)
    b, c = int(np.sum((ca == 1) & (cb == 0))), int(np.sum((ca == 0) & (cb == 1)))
    discordant += (b, c)
    p_values.append(1.0 if b + c == 0 else float(stats.binomtest(b, b + c, 0.5).pvalue))
  d = np.mean([_correct(x) for x in pa], 0) - np.mean([_correct(y) for y in pb], 0)
  n = len(d)
  half = float(stats.t.ppf(0.5 + LEVEL / 2, n - 1)) * float(np.std(d, ddof=1)) / math.sqrt(n)
  mean = float(np.mean(d))
  seeds = f", {len(pa)} seeds: largest p" if len(pa) > 1 else ""
  total = discordant.sum()
  effect = float((discordant[0] - discordant[1]) / total) if total else 0.0
  return Comparison(metric, mean, mean - half, mean + half, max(p_values), n,
                    f"McNemar exact on {n} test examples{seeds}", effect)


def _paired_bootstrap(pa, pb, metric: str) -> Comparison:
  classes = int(max(max(p["label"].max(), p["predicted"].max()) for p in (*pa, *pb))) + 1
  n = len(pa[0]["index"])
  value = lambda preds, idx: float(np.mean([from_predictions(metric, p, idx, classes)
                                            for p in preds]))
  rng = np.random.default_rng(0)
  draws = np.array([value(pa, idx) - value(pb, idx)
                    for idx in rng.integers(0, n, (BOOTSTRAP_RESAMPLES, n))])
  whole = np.arange(n)
  mean = value(pa, whole) - value(pb, whole)
  low, high = np.quantile(draws, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
  p = float(min(1.0, 2 * min(np.mean(draws <= 0), np.mean(draws >= 0))))
  sd = float(np.std(draws, ddof=1))
  return Comparison(metric, mean, float(low), float(high), p, n,
                    f"paired bootstrap over {n} test examples", mean / sd if sd else math.nan)
