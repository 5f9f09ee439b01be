"""Model selection on validation data: the rule, the kept checkpoint, early stopping."""

import json
import math

import numpy as np
import pytest

from conftest import comparable_files, experiment
from jaxdl import data
from jaxdl.errors import ConfigError
from jaxdl.training import train_and_evaluate, train_group
from jaxdl.training.saved_runs import evaluate_run
from jaxdl.training import objectives
from jaxdl.training.objectives import OBJECTIVES
from jaxdl.training.selection import LAST, Selection, from_config as resolve


def _rows(*values, loss=None):
  return [{"epoch": i + 1, "step": 10 * (i + 1), "val_accuracy": v,
           "val_loss": loss[i] if loss else 1.0} for i, v in enumerate(values)]


def test_the_best_epoch_wins_and_ties_go_to_lower_loss_then_earlier():
  pick = Selection("val_accuracy", "max")
  assert pick.best_index(_rows(0.5, 0.9, 0.7)) == 1
  assert pick.best_index(_rows(0.9, 0.9, 0.9, loss=[0.3, 0.2, 0.2])) == 1
  assert pick.best_index(_rows(math.nan, 0.1)) == 1  # A non-finite value is never best.
  assert Selection("val_loss", "min").best_index(_rows(0, 0, 0, loss=[0.5, 0.1, 0.3])) == 1
  assert Selection(LAST).best_index(_rows(0.9, 0.1)) == 1
  assert pick.best_index([]) is None
  # Minimised: a NaN, missing or boolean value is still the worst, never a score of 0.
  lowest = Selection("val_loss", "min")
  assert lowest.best_index(_rows(0, 0, 0, loss=[0.5, math.nan, 0.7])) == 0
  assert lowest.best_index([{"step": 1}, {"step": 2, "val_loss": 0.4}]) == 1
  assert pick.best_index([{"step": 1, "val_accuracy": True}, *_rows(0.2)]) == 1


def test_what_results_json_says_of_the_rule():
  assert Selection("val_accuracy", "max").describe() == {"selection_metric": "val_accuracy",
                                                         "selection_mode": "max"}
  assert Selection("val_loss", "min", patience=3, note="why").describe() == {
      "selection_metric": "val_loss", "selection_mode": "min", "selection_patience": 3,
      "selection_note": "why"}
  assert Selection(LAST, note="no validation").describe() == {
      "selection_metric": "last", "selection_note": "no validation"}


def test_patience_stops_after_that_many_epochs_without_improvement():
  pick = Selection("val_accuracy", "max", patience=2)
  assert not pick.should_stop(_rows(0.5, 0.6, 0.6))
  assert pick.should_stop(_rows(0.5, 0.6, 0.6, 0.55))
  assert not Selection("val_accuracy", "max").should_stop(_rows(0.9, 0.1, 0.1, 0.1))


def test_the_checkpoint_orbax_keeps_is_the_selected_one():
  rng = np.random.default_rng(0)
  for mode in ("max", "min"):
    pick = Selection("val_accuracy", mode)
    for _ in range(200):  # Coarse values: ties are common.
      history = _rows(*rng.integers(0, 4, 6) / 4, loss=list(rng.integers(0, 3, 6) / 3))
      kept = max(history, key=lambda r: Selection.checkpoint_rank(pick.checkpoint_metrics(r)))
      assert kept is history[pick.best_index(history)]


def _spec(task="classification", num_val=10):
  return data.DataSpec("x", task, (4,), "float32", 2, 100, num_val, 10)


def _select(**values):
  return experiment("seed_cnn_digits", *(f"select.{k}={v}" for k, v in values.items())).select


@pytest.mark.parametrize("values, spec, expected", [
    ({}, _spec(), Selection("val_accuracy", "max")),
    ({}, _spec("regression"), Selection("val_loss", "min")),
    ({"metric": "val_loss", "mode": "max"}, _spec(), Selection("val_loss", "max")),
    ({"patience": 3}, _spec(), Selection("val_accuracy", "max", 3)),
    ({"metric": "last"}, _spec(), Selection(LAST)),
])
def test_the_config_resolves_to_a_rule(values, spec, expected):
  assert resolve(_select(**values), spec, OBJECTIVES[spec.task]) == expected


def _with(*names, **modes):
  return objectives.with_metrics(OBJECTIVES["classification"], names, [None] * len(names), modes)


@pytest.mark.parametrize("metric, objective, mode", [
    ("val_mcc", _with("mcc"), "max"), ("val_macro_f1", _with("macro_f1"), "max"),
    ("val_top3_accuracy", _with("top3_accuracy"), "max"),
    ("val_recall", _with("recall", recall="max"), "max"),  # Declared by its Metric.
    ("val_auc", _with("auc", auc="max"), "max"),
    ("val_cost", _with("cost", cost="min"), "min"),
])
def test_auto_takes_the_direction_a_metric_declares(metric, objective, mode):
  """A name never decides: val_recall and val_auc once resolved to 'min' (they hold neither
  'accuracy' nor 'f1'), so runs selected and stopped early on their worst epoch."""
  assert resolve(_select(metric=metric), _spec(), objective) == Selection(metric, mode)


def test_a_metric_without_a_direction_needs_select_mode():
  with pytest.raises(ConfigError, match="cannot tell whether a higher or a lower val_recall"):
    resolve(_select(metric="val_recall"), _spec(), _with("recall"))
  assert resolve(_select(metric="val_recall", mode="max"), _spec(),
                 _with("recall")) == Selection("val_recall", "max")


def test_without_validation_data_auto_takes_the_last_epoch_and_says_so():
  chosen = resolve(_select(), _spec(num_val=0), OBJECTIVES["classification"])
  assert chosen.is_last and "no validation split" in chosen.note


@pytest.mark.parametrize("values, num_val, message", [
    ({"metric": "val_acc"}, 10, "not a validation metric of this run; choose one of val_loss, "
     "val_accuracy"),
    ({"metric": "test_accuracy"}, 10, "not a validation metric"),
    ({"metric": "val_loss"}, 0, "needs a validation split"),
    ({"metric": "last", "patience": 2}, 10, "early stopping"),
    ({"mode": "best"}, 10, "select.mode must be auto, max or min"),
    ({"patience": -1}, 10, "select.patience must be >= 0"),
])
def test_a_bad_selection_is_a_clear_error(values, num_val, message):
  with pytest.raises(ConfigError, match=message):
    resolve(_select(**values), _spec(num_val=num_val), OBJECTIVES["classification"])


# The worst validation loss is a rule that picks an early epoch, whatever the seed.
PICK_EARLY = ("select.metric=val_loss", "select.mode=max")
SMALL = ("num_epochs=3", "batch_size=128", "checkpoints_to_keep=1")


def test_the_selected_checkpoint_is_kept_and_tested_once(tmp_path):
  results = train_and_evaluate(experiment("seed_cnn_digits", *SMALL, *PICK_EARLY), tmp_path,
                               quiet=True)
  rows = [json.loads(r) for r in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  best = max(rows, key=lambda r: r["val_loss"])
  assert (results["selected_epoch"], results["last_epoch"]) == (best["epoch"], 3) != (3, 3)
  assert results["val_loss"] == best["val_loss"] and results["last_val_loss"] == rows[-1]["val_loss"]
  steps = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
  assert steps == [best["step"], rows[-1]["step"]]  # The best survives keep=1.
  selected = evaluate_run(tmp_path, "selected")
  last = evaluate_run(tmp_path, "last")
  assert (selected["step"], last["step"]) == (best["step"], rows[-1]["step"])
  assert selected["test_loss"] == pytest.approx(results["test_loss"], rel=1e-6)
  assert last["test_loss"] == pytest.approx(results["last_test_loss"], rel=1e-6)
  assert results["test_loss"] != results["last_test_loss"]


def test_early_stopping_stops_after_patience_epochs(tmp_path):
  results = train_and_evaluate(
      experiment("seed_cnn_digits", *SMALL, *PICK_EARLY, "num_epochs=6", "select.patience=1"),
      tmp_path, quiet=True)
  rows = (tmp_path / "metrics.jsonl").read_text().splitlines()
  assert results["stopped_early"] and results["epochs"] == len(rows) < 6
  assert results["epochs"] == results["selected_epoch"] + 1
  assert results["steps"] == results["epochs"] * 11


@pytest.mark.slow
def test_vectorized_members_stop_on_their_own_and_equal_their_lone_runs(tmp_path):
  # A tiny learning rate keeps lowering the validation loss (by 0.03 an epoch); a huge one
  # stops after epoch 5 (its loss rises by 0.008). Both margins dwarf the float drift between
  # vmapped and lone convolutions (~1e-4), which can flip a decision on accuracy ties.
  overrides = ("num_epochs=6", "batch_size=128", "select.metric=val_loss", "select.patience=1",
               "data.augment_shift=0", "optim.schedule=constant", "nonfinite=skip")
  configs = [experiment("seed_cnn_digits", *overrides, f"optim.learning_rate={lr}")
             for lr in (1e-4, 0.3)]
  train_group(configs, [tmp_path / "v0", tmp_path / "v1"], vectorized=True, quiet=True)
  epochs = []
  for i, config in enumerate(configs):
    train_and_evaluate(config, tmp_path / f"alone{i}", quiet=True)
    together, alone = comparable_files(tmp_path / f"v{i}"), comparable_files(tmp_path / f"alone{i}")
    assert [r["epoch"] for r in together[0]] == [r["epoch"] for r in alone[0]]
    for key in ("selected_epoch", "epochs", "steps", "stopped_early"):
      assert together[1][key] == alone[1][key], key
    # vmapped convolutions round differently; over 5 epochs that drifts by ~0.1%.
    assert together[1]["test_loss"] == pytest.approx(alone[1]["test_loss"], rel=5e-3)
    epochs.append(together[1]["epochs"])
  assert len(set(epochs)) == 2, epochs  # They did stop at different epochs.
