"""The report's statistics against independent implementations (scipy, statsmodels) and the
published formulas: Wilson, Nadeau & Bengio's corrected resampled t, Holm, McNemar."""

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats import multitest, proportion
from statsmodels.stats.contingency_tables import mcnemar

from jaxdl.sweeps import intervals


@pytest.mark.parametrize("successes, n", [(349, 359), (0, 20), (20, 20), (7, 13), (500, 1000)])
def test_wilson_equals_statsmodels_and_scipy(successes, n):
  low, high = intervals.wilson(successes / n, n)
  sm = proportion.proportion_confint(successes, n, alpha=0.05, method="wilson")
  sp = stats.binomtest(successes, n).proportion_ci(0.95, method="wilson")
  assert (low, high) == pytest.approx(sm, abs=1e-12)
  assert (low, high) == pytest.approx((sp.low, sp.high), abs=1e-12)


def test_the_corrected_t_interval_is_nadeau_and_bengios():
  folds = [0.91, 0.88, 0.93, 0.90, 0.89, 0.92, 0.87, 0.94, 0.90, 0.91]
  n, ratio = len(folds), 1 / 9  # 10-fold CV: each test fold is 1/9 of its training data.
  se = math.sqrt((1 / n + ratio) * np.var(folds, ddof=1))
  half = stats.t.ppf(0.975, n - 1) * se
  assert intervals.t_interval(folds, inflation=ratio) == pytest.approx(
      (np.mean(folds) - half, np.mean(folds) + half), rel=1e-12)
  plain = stats.t.interval(0.95, n - 1, np.mean(folds), stats.sem(folds))
  assert intervals.t_interval(folds) == pytest.approx(plain, rel=1e-12)
  # The correction widens a 10-fold interval by sqrt(1 + n / 9) = 1.49x.
  wide, narrow = intervals.t_interval(folds, inflation=ratio), plain
  assert (wide[1] - wide[0]) / (narrow[1] - narrow[0]) == pytest.approx(math.sqrt(1 + 10 / 9))


def test_holm_equals_statsmodels():
  p = [0.01, 0.04, 0.03, 0.2, 0.001, 0.04]
  assert intervals.holm(p) == pytest.approx(multitest.multipletests(p, method="holm")[1])


def _predictions(correct: np.ndarray, classes: int = 2) -> dict:
  label = np.arange(len(correct)) % classes
  predicted = np.where(correct, label, (label + 1) % classes)
  return {"index": np.arange(len(correct)), "label": label, "predicted": predicted,
          "loss": np.where(correct, 0.1, 2.0)}


def test_mcnemar_equals_statsmodels_exact():
  rng = np.random.default_rng(0)
  a = rng.random(300) < 0.9
  b = np.where(rng.random(300) < 0.15, ~a, a)
  table = [[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]]
  rows = [{"seed": 0, "test_accuracy": a.mean(), "num_test": 300}]
  got = intervals.compare(rows, [{**rows[0], "test_accuracy": b.mean()}], "test_accuracy",
                          [_predictions(a)], [_predictions(b)])
  assert got.p == pytest.approx(mcnemar(table, exact=True).pvalue, rel=1e-12)
  assert got.difference == pytest.approx(a.mean() - b.mean())
  assert got.n == 300 and "McNemar" in got.test


def _fold_rows(values, folds=10, seeds=1, split_seed=0, num_train=810, num_val=90, num_test=100):
  return [{"data.folds": folds, "data.fold": f, "data.split_seed": split_seed, "seed": s,
           "test_accuracy": values[f * seeds + s], "num_train": num_train, "num_val": num_val,
           "num_test": num_test} for f in range(len(values) // seeds) for s in range(seeds)]


def test_seeds_are_averaged_within_folds_before_the_interval():
  """3 folds x 2 seeds: the interval rests on 3 fold means, not 6 runs (which gave 0.051
  where the fold means give a wider one)."""
  values = [0.80, 0.82, 0.86, 0.84, 0.78, 0.82]
  rows = _fold_rows(values, folds=3, seeds=2, num_train=600, num_val=66, num_test=333)
  got = intervals.estimate(rows, "test_accuracy")
  fold_means = [0.81, 0.85, 0.80]
  ratio = 333 / 666
  assert got.n == 3 and got.runs == 6 and got.mean == pytest.approx(np.mean(fold_means))
  assert got.std == pytest.approx(np.std(fold_means, ddof=1))
  assert (got.low, got.high) == pytest.approx(intervals.t_interval(fold_means, inflation=ratio))
  assert got.seed_std == pytest.approx(math.sqrt(np.sum(np.square(
      [0.01, 0.01, 0.01, 0.01, 0.02, 0.02])) / 3))
  pooled = intervals.t_interval(values)  # What the report once printed: 6 independent runs.
  assert got.high - got.low > 2 * (pooled[1] - pooled[0])
  assert "corrected resampled t over 3 folds" in got.method


def test_one_split_gets_its_test_sampling_interval():
  """DeepCNN-16 on digits: 359 test examples, 3 seeds; the seed-only interval was
  [0.9736, 0.9874], narrower than the test set's own sampling error allows."""
  rows = [{"seed": s, "test_accuracy": a, "num_test": 359, "num_train": 1295, "num_val": 143}
          for s, a in enumerate([0.9777, 0.9805, 0.9833])]
  got = intervals.estimate(rows, "test_accuracy")
  assert (got.low, got.high) == pytest.approx(intervals.wilson(0.9805, 359), abs=1e-6)
  assert got.low < 0.9650 and got.high > 0.9890 and got.n == 359
  assert "Wilson, 359 test examples" in got.method


def test_one_split_bootstraps_macro_f1_from_the_predictions():
  rng = np.random.default_rng(1)
  preds = [_predictions(rng.random(400) < 0.8, classes=2) for _ in range(2)]
  from sklearn.metrics import f1_score

  values = [f1_score(p["label"], p["predicted"], average="macro") for p in preds]
  rows = [{"seed": s, "test_macro_f1": v, "num_test": 400} for s, v in enumerate(values)]
  got = intervals.estimate(rows, "test_macro_f1", preds)
  assert got.low < np.mean(values) < got.high and 0.03 < got.high - got.low < 0.15
  assert got.method == "bootstrap over 400 test examples"


def test_two_values_give_no_interval_rather_than_the_whole_range():
  rows = _fold_rows([0.7, 0.9], folds=2)
  got = intervals.estimate(rows, "test_accuracy")
  assert math.isnan(got.low) and "no interval: 2 values" in got.method


def test_timing_gets_a_t_interval_over_runs():
  rows = [{"seed": s, "train_s": t} for s, t in enumerate([1.0, 1.2, 1.1])]
  got = intervals.estimate(rows, "train_s")
  assert (got.low, got.high) == pytest.approx(stats.t.interval(0.95, 2, 1.1, stats.sem(
      [1.0, 1.2, 1.1])))


def test_the_corrected_paired_t_over_folds():
  rng = np.random.default_rng(2)
  a = 0.85 + 0.02 * rng.standard_normal(10)
  b = a - 0.01 - 0.005 * rng.standard_normal(10)
  got = intervals.compare(_fold_rows(a), _fold_rows(b), "test_accuracy")
  d = a - b
  se = math.sqrt((1 / 10 + 100 / 900) * np.var(d, ddof=1))
  assert got.p == pytest.approx(2 * stats.t.sf(abs(d.mean() / se), 9), rel=1e-10)
  assert got.wilcoxon_p == pytest.approx(stats.wilcoxon(d).pvalue)
  assert got.effect == pytest.approx(d.mean() / np.std(d, ddof=1))
  assert got.n == 10 and got.difference == pytest.approx(d.mean())


def test_runs_are_paired_by_fold_and_seed_not_by_position():
  a = _fold_rows([0.80, 0.90, 0.70, 0.85], folds=4)
  b = list(reversed(_fold_rows([0.79, 0.88, 0.71, 0.83], folds=4)))
  got = intervals.compare(a, b, "test_accuracy")
  assert got.difference == pytest.approx(np.mean([0.01, 0.02, -0.01, 0.02]))
