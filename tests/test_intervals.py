"""The report's statistics against independent implementations (scipy, statsmodels) and the
published formulas: Wilson, Nadeau & Bengio's corrected resampled t, Holm, McNemar."""

import dataclasses
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


# --- every branch, field by field (mutation testing: docs/guides/testing.md) ----------------------

@pytest.mark.parametrize("metric, bounds", [
    ("test_mcc", (-1.0, 1.0)), ("val_accuracy", (0.0, 1.0)), ("macro_f1", (0.0, 1.0)),
    ("last_test_top5_accuracy", (0.0, 1.0)), ("train_loss", (0.0, math.inf)),
    ("test_mse", (0.0, math.inf)), ("train_s", (0.0, math.inf)),
    ("train_s_per_epoch", (0.0, math.inf)), ("examples_per_s", (0.0, math.inf)),
    ("compile_s", (0.0, math.inf)), ("num_params", (0.0, math.inf)),
    ("test_accuracy_gap", (-math.inf, math.inf)), ("test_auc_delta", (-math.inf, math.inf))])
def test_each_metric_has_its_range(metric, bounds):
  assert intervals.metric_range(metric) == bounds


def test_wilson_stays_inside_zero_and_one_where_rounding_would_leave_it():
  assert intervals.wilson(1.0, 16)[1] == 1.0  # The formula gives 1 + 1e-16 at n = 16.
  assert intervals.wilson(0.0, 27)[0] == 0.0  # ... and -1e-17 at n = 27.


def test_the_bootstrap_is_scipys_percentile_bootstrap_seeded_and_reproducible():
  values = np.random.default_rng(3).random(50)
  statistic = lambda idx: float(np.mean(values[idx]))
  ours = intervals.bootstrap(statistic, 50)
  theirs = stats.bootstrap((np.arange(50),), statistic, vectorized=False, n_resamples=2000,
                           method="percentile", rng=np.random.default_rng(0))
  assert ours == (theirs.confidence_interval.low, theirs.confidence_interval.high)
  assert intervals.bootstrap(statistic, 50) == ours
  assert intervals.bootstrap(statistic, 50, seed=1) != ours
  at_90 = stats.bootstrap((np.arange(50),), statistic, vectorized=False, n_resamples=2000,
                          confidence_level=0.9, method="percentile", rng=np.random.default_rng(0))
  assert intervals.bootstrap(statistic, 50, level=0.9) == (at_90.confidence_interval.low,
                                                           at_90.confidence_interval.high)


def test_holm_caps_adjusted_p_values_at_one():
  assert intervals.holm([0.6, 0.7, 0.01]) == [1.0, 1.0, 0.03]


def test_metrics_from_predictions_equal_sklearns_on_the_rows_asked_for():
  from sklearn.metrics import f1_score, matthews_corrcoef

  rng = np.random.default_rng(4)
  label = rng.integers(0, 4, 300)
  predicted = np.where(rng.random(300) < 0.7, label, rng.integers(0, 3, 300))
  p = {"label": label, "predicted": predicted, "loss": rng.random(300)}
  rows = np.arange(0, 300, 3)  # Class 3 is never predicted: the matrix still has 4 columns.
  get = lambda m: intervals.from_predictions(m, p, rows, 4)
  assert get("test_accuracy") == pytest.approx(np.mean(label[rows] == predicted[rows]))
  assert get("test_loss") == pytest.approx(np.mean(p["loss"][rows]))
  assert get("test_mse") == pytest.approx(np.mean((predicted[rows] - label[rows]) ** 2))
  assert get("test_macro_f1") == pytest.approx(f1_score(label[rows], predicted[rows],
                                                        average="macro"))
  assert get("test_mcc") == pytest.approx(matthews_corrcoef(label[rows], predicted[rows]))


@pytest.mark.parametrize("metric, expected", [
    ("test_accuracy", True), ("test_loss", True), ("test_mse", True), ("test_macro_f1", True),
    ("test_mcc", True), ("val_accuracy", False), ("last_test_accuracy", False),
    ("test_top5_accuracy", False), ("mse", False)])
def test_which_metrics_the_predictions_give(metric, expected):
  assert intervals.recomputable(metric) is expected


@pytest.mark.parametrize("rows, kind, label", [
    ([{"data.folds": 5, "data.fold": f} for f in range(3)], "folds", "folds"),
    ([{"data.split_seed": s} for s in (0, 1)], "splits", "splits"),
    ([{"seed": s} for s in (0, 1)], "single", "runs"),
    ([{"data.fold": f} for f in (0, 1)], "single", "runs"),  # No folds: fold is not a unit.
])
def test_the_design_of_a_group(rows, kind, label):
  design = intervals.design_of(rows)
  assert (design.kind, design.describe()) == (kind, label)


def test_an_estimate_without_an_interval_says_why_field_by_field():
  one = intervals.estimate([{"train_s": 2.0}], "train_s")
  assert _fields(one) == (2.0, "nan", "nan", "nan", 1, "", 1, "nan")
  folds = intervals.estimate(_fold_rows([0.7, 0.7, 0.9, 0.9], folds=2, seeds=2),
                             "test_accuracy")
  assert _fields(folds) == (pytest.approx(0.8), pytest.approx(np.std([0.7, 0.9], ddof=1)),
                            "nan", "nan", 2, "no interval: 2 values", 4, 0.0)
  alone = intervals.estimate(_fold_rows([0.7]), "test_accuracy")
  assert _fields(alone) == (0.7, "nan", "nan", "nan", 1, "", 1, "nan")
  one_fold = intervals.estimate(_fold_rows([0.7, 0.8], folds=1, seeds=2), "test_accuracy")
  assert _fields(one_fold)[:7] == (pytest.approx(0.75), "nan", "nan", "nan", 1, "", 2)
  assert one_fold.seed_std == pytest.approx(np.std([0.7, 0.8], ddof=1))
  same = intervals.estimate([{"train_s": 1.0, "seed": s} for s in range(3)], "train_s")
  assert _fields(same) == (1.0, 0.0, "nan", "nan", 3, "no interval: every value equal", 3,
                           "nan")


def _fields(e):
  """An estimate's fields with NaN as the string 'nan' (a None would show as None)."""
  nan = lambda x: "nan" if isinstance(x, float) and math.isnan(x) else x
  return (nan(e.mean), nan(e.std), nan(e.low), nan(e.high), e.n, e.method, e.runs,
          nan(e.seed_std))


def test_runs_on_one_split_without_predictions_get_a_labelled_t_interval():
  rows = [{"seed": s, "test_loss": v, "num_test": 100, "last_test_accuracy": a,
           "val_accuracy": a, "num_val": 50, "train_s": v}
          for s, (v, a) in enumerate([(0.3, 0.8), (0.5, 0.9), (0.4, 0.85)])]
  loss = intervals.estimate(rows, "test_loss")
  assert loss.method == "t over 3 runs (run-to-run variation only: no saved test predictions)"
  assert math.isnan(loss.seed_std) and loss.mean == pytest.approx(0.4)
  assert (loss.low, loss.high) == pytest.approx(intervals.t_interval([0.3, 0.5, 0.4]))
  assert intervals.estimate(rows, "train_s").method == "t over 3 runs"
  assert intervals.estimate(rows, "last_test_accuracy").method.startswith("t over 3 runs (")
  val = intervals.estimate(rows, "val_accuracy")
  assert (val.n, val.method, val.runs) == (50, "Wilson, 50 validation examples", 3)
  assert (val.low, val.high) == pytest.approx(intervals.wilson(0.85, 50))
  assert val.std == pytest.approx(0.05) and math.isnan(val.seed_std)
  assert val.mean == pytest.approx(0.85)
  two = intervals.estimate(rows[:2], "val_accuracy")
  assert two.std == pytest.approx(np.std([0.8, 0.9], ddof=1))
  alone = intervals.estimate(rows[:1], "val_accuracy")
  assert math.isnan(alone.std) and alone.runs == 1 and alone.has_interval


def test_without_example_counts_the_correction_is_left_out():
  rows = [{"data.folds": 3, "data.fold": f, "test_accuracy": a}
          for f, a in enumerate([0.8, 0.85, 0.83])]
  got = intervals.estimate(rows, "test_accuracy")
  assert (got.low, got.high) == pytest.approx(intervals.t_interval([0.8, 0.85, 0.83]))
  partial = [{**r, "num_test": 100} for r in rows]  # No training count: no ratio either.
  got = intervals.estimate(partial, "test_accuracy")
  assert (got.low, got.high) == pytest.approx(intervals.t_interval([0.8, 0.85, 0.83]))


def test_a_bootstrap_needs_every_runs_predictions_and_takes_one_runs():
  rows = [{"seed": s, "test_loss": v, "num_test": 50} for s, v in enumerate([0.3, 0.5, 0.4])]
  preds = [{**_predictions(np.ones(50, bool)), "loss": np.full(50, v)} for v in (0.3, 0.5, 0.4)]
  partial = intervals.estimate(rows, "test_loss", [preds[0], None, preds[2]])
  assert partial.method.startswith("t over 3 runs (run-to-run variation only")
  one = intervals.estimate(rows[:1], "test_loss", preds[:1])
  assert one.method == "bootstrap over 50 test examples"
  assert (one.low, one.high) == pytest.approx((0.3, 0.3))


def test_two_splits_and_their_ratio_of_examples():
  rows = [{"data.split_seed": s, "seed": k, "test_accuracy": 0.8 + 0.01 * s + 0.001 * k,
           "val_loss": 0.5 + 0.01 * s, "num_train": 700, "num_val": 100, "num_test": 200}
          for s in range(4) for k in range(2)]
  got = intervals.estimate(rows, "test_accuracy")
  means = [0.8005 + 0.01 * s for s in range(4)]
  assert got.method == "corrected resampled t over 4 splits" and got.runs == 8
  assert (got.low, got.high) == pytest.approx(intervals.t_interval(means, inflation=200 / 800))
  val = intervals.estimate(rows, "val_loss")
  assert (val.low, val.high) == pytest.approx(intervals.t_interval(
      [0.5 + 0.01 * s for s in range(4)], inflation=100 / 700))


def test_compare_refuses_what_it_cannot_pair_or_test():
  a = [{"seed": 0, "test_accuracy": 0.9, "num_test": 4}]
  assert intervals.compare(a, [{**a[0], "seed": 1}], "test_accuracy") is None
  message = ("comparing test_accuracy on one split needs each run's saved test predictions "
             r"\(test_predictions.npz, written by jaxdl since this release\) and a metric they "
             r"give \(test_accuracy, test_loss, test_macro_f1, test_mcc, test_mse\); retrain "
             "the runs, or compare over folds")
  with pytest.raises(ValueError, match=message):
    intervals.compare(a, a, "test_accuracy", [_predictions(np.ones(4, bool))], [None])
  with pytest.raises(ValueError, match="needs each run's saved test predictions"):
    intervals.compare(a, a, "test_accuracy", [], [_predictions(np.ones(4, bool))])
  with pytest.raises(ValueError, match="needs each run's saved test predictions"):
    intervals.compare(a, a, "test_accuracy", [_predictions(np.ones(4, bool))])
  with pytest.raises(ValueError, match="needs each run's saved test predictions"):
    intervals.compare(a, a, "test_top5_accuracy", [_predictions(np.ones(4, bool))] * 2,
                      [_predictions(np.ones(4, bool))] * 2)
  other = {**_predictions(np.ones(4, bool)), "index": np.arange(1, 5)}
  with pytest.raises(ValueError, match="tested on different examples; McNemar needs one test"):
    intervals.compare(a, a, "test_accuracy", [_predictions(np.ones(4, bool))], [other])


def test_mcnemar_over_two_seeds_field_by_field():
  rng = np.random.default_rng(5)
  ca = [rng.random(200) < 0.85 for _ in range(2)]
  cb = [np.where(rng.random(200) < 0.2, ~c, c) & (rng.random(200) < 0.95) for c in ca]
  rows = [{"seed": s, "test_accuracy": 0.0} for s in range(2)]
  got = intervals.compare(rows, rows, "test_accuracy", [_predictions(c) for c in ca],
                          [_predictions(c) for c in cb])
  b = [int(np.sum(x & ~y)) for x, y in zip(ca, cb)]
  c = [int(np.sum(~x & y)) for x, y in zip(ca, cb)]
  p = [stats.binomtest(bi, bi + ci, 0.5).pvalue for bi, ci in zip(b, c)]
  d = np.mean(ca, 0).astype(float) - np.mean(cb, 0)
  half = stats.t.ppf(0.975, 199) * np.std(d, ddof=1) / math.sqrt(200)
  assert got.p == pytest.approx(max(p)) and got.n == 200
  assert (got.difference, got.low, got.high) == pytest.approx((d.mean(), d.mean() - half,
                                                               d.mean() + half))
  assert got.effect == pytest.approx((sum(b) - sum(c)) / (sum(b) + sum(c)))
  assert got.test == "McNemar exact on 200 test examples, 2 seeds: largest p"
  same = intervals.compare(rows[:1], rows[:1], "test_accuracy", [_predictions(ca[0])],
                           [_predictions(ca[0])])
  assert (same.p, same.effect, same.test) == (1.0, 0.0, "McNemar exact on 200 test examples")


def test_folds_without_variance_or_too_few_give_no_p_value():
  a = _fold_rows([0.75, 0.875, 0.5])
  b = _fold_rows([0.5, 0.625, 0.25])  # The same difference on every fold, exactly.
  got = intervals.compare(a, b, "test_accuracy")
  assert got.difference == 0.25 and got.n == 3
  assert [math.isnan(x) for x in (got.low, got.high, got.p, got.effect)] == [True] * 4
  assert got.test == "corrected paired t over 3 folds (no variance)" and got.wilcoxon_p is None
  assert not got.significant() and got.metric == "test_accuracy"
  one = intervals.compare(_fold_rows([0.8]), _fold_rows([0.7]), "test_accuracy")
  assert one.n == 1 and math.isnan(one.p)
  two = intervals.compare(_fold_rows([0.8, 0.9], folds=2), _fold_rows([0.7, 0.85], folds=2),
                          "test_accuracy")  # Two folds with variance: a p-value, df = 1.
  d = np.array([0.1, 0.05])
  se = math.sqrt((1 / 2 + 100 / 900) * np.var(d, ddof=1))
  assert two.p == pytest.approx(2 * stats.t.sf(d.mean() / se, 1))


def test_folds_compared_field_by_field_with_seeds_averaged_first():
  a = _fold_rows([0.80, 0.82, 0.86, 0.84, 0.78, 0.80, 0.9, 0.92, 0.7, 0.72, 0.75, 0.77, 0.8,
                  0.8], folds=7, seeds=2)
  b = _fold_rows([0.79, 0.80, 0.83, 0.84, 0.78, 0.77, 0.88, 0.9, 0.7, 0.69, 0.74, 0.73, 0.8,
                  0.78], folds=7, seeds=2)
  got = intervals.compare(a, b, "test_accuracy")
  d = np.array([0.015, 0.015, 0.015, 0.02, 0.015, 0.025, 0.01])
  assert got.n == 7 and got.difference == pytest.approx(d.mean())
  assert (got.low, got.high) == pytest.approx(intervals.t_interval(d, inflation=100 / 900))
  assert got.wilcoxon_p == pytest.approx(stats.wilcoxon(d).pvalue)
  assert got.effect == pytest.approx(d.mean() / np.std(d, ddof=1))
  small = intervals.compare(_fold_rows([0.8, 0.9, 0.7, 0.75, 0.85]),
                            _fold_rows([0.79, 0.88, 0.71, 0.7, 0.85]), "test_accuracy")
  assert small.wilcoxon_p is None  # n = 5 < 6: Wilcoxon cannot reach 0.05.


def test_a_paired_bootstrap_compares_macro_f1_on_one_split():
  from sklearn.metrics import f1_score

  rng = np.random.default_rng(6)
  ca, cb = rng.random(300) < 0.9, rng.random(300) < 0.6
  pa, pb = _predictions(ca), _predictions(cb)
  rows = [{"seed": 0, "test_macro_f1": 0.0}]
  got = intervals.compare(rows, rows, "test_macro_f1", [pa], [pb])
  f1 = lambda p: f1_score(p["label"], p["predicted"], average="macro")
  assert got.difference == pytest.approx(f1(pa) - f1(pb)) and got.n == 300
  assert got.metric == "test_macro_f1"
  assert intervals.compare(rows, rows, "test_macro_f1", [pa], [pb]) == got  # Seeded.
  assert got.low < got.difference < got.high and got.low > 0 and got.p < 0.01
  assert got.test == "paired bootstrap over 300 test examples" and got.effect > 2
  back = intervals.compare(rows, rows, "test_macro_f1", [pb], [pa])
  assert back.difference == pytest.approx(-got.difference) and back.high < 0
  tie = intervals.compare(rows, rows, "test_macro_f1", [pa], [pa])
  assert (tie.difference, tie.low, tie.high, tie.p) == (0.0, 0.0, 0.0, 1.0)
  assert math.isnan(tie.effect)


def test_the_paired_bootstrap_matches_the_normal_theory_of_a_mean_difference():
  """On 3,000 examples the percentile interval of a difference in mean loss is the mean
  difference +- 1.96 standard errors, and the two-sided p-value 2 * Phi(-|z|)."""
  rng = np.random.default_rng(7)
  n = 3000
  la, lb = rng.exponential(1.0, n), rng.exponential(1.0, n)
  lb = 0.85 * la + 0.15 * lb + 0.0085  # Paired: correlated, a small shift in the mean.
  pa = {**_predictions(np.ones(n, bool)), "loss": la}
  pb = {**_predictions(np.ones(n, bool)), "loss": lb}
  rows = [{"seed": 0, "test_loss": 0.0}]
  got = intervals.compare(rows, rows, "test_loss", [pa], [pb])
  d = la - lb
  se = np.std(d, ddof=1) / math.sqrt(n)
  assert got.difference == pytest.approx(d.mean())
  assert (d.mean() - got.low) / se == pytest.approx(1.96, abs=0.15)
  assert (got.high - d.mean()) / se == pytest.approx(1.96, abs=0.15)
  assert got.p == pytest.approx(2 * stats.norm.sf(abs(d.mean()) / se), rel=0.35)
  assert 0.001 < got.p < 0.2


def test_the_paired_bootstrap_resamples_every_example():
  """Two runs that differ on example 0 alone: resamples that include it show the difference
  (a draw that never picked index 0 would give an interval of [0, 0])."""
  correct = np.ones(50, bool)
  pa, pb = _predictions(correct), _predictions(correct)
  pb["loss"] = pb["loss"].copy()
  pb["loss"][0] += 5.0
  rows = [{"seed": 0, "test_loss": 0.0}]
  got = intervals.compare(rows, rows, "test_loss", [pa], [pb])
  assert got.low < 0.0 and got.high == 0.0 and got.difference == pytest.approx(-0.1)


def test_significance_uses_the_adjusted_p_value_once_there_is_one():
  c = intervals.Comparison("test_accuracy", 0.1, 0.0, 0.2, 0.03, 10, "t", 1.0)
  assert c.significant() and not c.significant(alpha=0.01)
  assert not dataclasses.replace(c, p=0.05).significant()  # p < alpha, strictly.
  family = intervals.adjust([c, dataclasses.replace(c, p=0.04), dataclasses.replace(
      c, p=math.nan)])
  assert [x.p_adjusted for x in family] == pytest.approx([0.09, 0.09, 1.0])
  assert not family[0].significant()
