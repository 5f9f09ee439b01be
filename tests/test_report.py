"""jaxdl report and compare on sweep folders written here (no training): ranking on
validation only, in the runs' own direction, within each dataset; bold only where a paired test
says so; failed members named; a models x datasets pivot; paired comparisons."""

import csv
import json
import pathlib

import numpy as np
import pytest

from jaxdl import cli
from jaxdl.sweeps import intervals
from jaxdl.sweeps.report import against, compare_folders, default_metrics, pivot, report
from jaxdl.training.run_folder import PREDICTIONS, RunFolder


def _member(folder: pathlib.Path, name: str, overrides: dict, results: dict,
            config: dict | None = None, correct: np.ndarray | None = None) -> dict:
  run = folder / name
  run.mkdir(parents=True)
  base = {"selection_metric": "val_accuracy", "selection_mode": "max", "num_train": 810,
          "num_val": 90, "num_test": 100}
  (run / "results.json").write_text(json.dumps({**base, **results}))
  nested: dict = {}
  for key, value in {"seed": 0, "data": {"name": "digits"}, **(config or {})}.items():
    nested[key] = value
  for key, value in overrides.items():
    where = nested
    *path, leaf = key.split(".")
    for part in path:
      where = where.setdefault(part, {})
    where[leaf] = value
  (run / "config.json").write_text(json.dumps(nested))
  if correct is not None:
    label = np.arange(len(correct)) % 2
    RunFolder(run).write_arrays(PREDICTIONS, {
        "index": np.arange(len(correct)), "label": label,
        "predicted": np.where(correct, label, 1 - label), "loss": np.zeros(len(correct))})
  return {"name": name, "overrides": overrides, "group": 0, "status": "done"}


def _sweep(folder: pathlib.Path, axes: list[str], members: list[dict],
           failed: list[dict] = ()) -> pathlib.Path:
  folder.mkdir(parents=True, exist_ok=True)
  record = {"axes": [{"key": k} for k in axes], "members": [*members, *failed]}
  (folder / "sweep.json").write_text(json.dumps(record))
  return folder


def _correct(accuracy: float, seed: int, n: int = 400) -> np.ndarray:
  return np.random.default_rng(seed).random(n) < accuracy


def _single_split(tmp_path, groups: dict[str, tuple[float, float]], seeds=3, **extra):
  """One split, ``seeds`` seeds per group: name -> (val accuracy, test accuracy)."""
  members, i = [], 0
  for g, (val, test) in groups.items():
    for seed in range(seeds):
      correct = _correct(test, 100 * i + seed)
      members.append(_member(tmp_path, f"m{i:03d}", {"model.name": g, "seed": seed},
                             {"val_accuracy": val + 0.001 * seed,
                              "test_accuracy": float(correct.mean()), "test_loss": 1.0,
                              "num_test": 400, **extra}, correct=correct))
      i += 1
  return _sweep(tmp_path, ["model.name", "seed"], members)


def _lines(table: str, group: str) -> list[str]:
  return [line for line in table.splitlines() if line.startswith(f"| {group} |")]


def test_groups_are_sorted_and_ranked_on_validation_never_on_test(tmp_path):
  # Sweep order c, a, b; validation order a, b, c; test order c, b, a.
  folder = _single_split(tmp_path, {"c": (0.70, 0.95), "a": (0.90, 0.60), "b": (0.80, 0.75)})
  table = report(folder)
  order = [line.split("|")[1].strip() for line in table.splitlines()[2:5]]
  assert order == ["a", "b", "c"]
  assert _lines(table, "a")[0].split("|")[2].strip() == "1"
  assert "**" not in table  # a is worse on test: no significance, nothing bold.
  assert "Ranked by val_accuracy (higher is better" in table


def test_without_a_validation_metric_nothing_is_ranked_and_the_note_says_why(tmp_path):
  folder = _single_split(tmp_path, {"a": (0.9, 0.9), "b": (0.8, 0.5)})
  results = folder / "m004" / "results.json"
  values = json.loads(results.read_text())
  values.update(selection_metric="last")
  del values["val_accuracy"]
  results.write_text(json.dumps(values))
  table = report(folder, metrics=["test_accuracy"])
  assert "Not ranked: m004 has no validation metric" in table
  assert "**" not in table and "| rank |" not in table
  assert "ranked by test_accuracy" not in table.lower()


@pytest.mark.parametrize("change, note", [
    ({"selection_metric": "test_accuracy"}, "Not ranked: m004 has no validation metric"),
    ({"selection_mode": None}, "Not ranked: m004 does not record the direction it selected in"),
    ({"selection_metric": "val_loss", "val_loss": 0.3}, "Not ranked: the runs selected on "
     "different rules (val_accuracy, val_loss")])
def test_runs_that_did_not_all_select_on_one_validation_rule_are_not_ranked(tmp_path, change,
                                                                            note):
  folder = _single_split(tmp_path, {"a": (0.9, 0.9), "b": (0.8, 0.5)})
  results = folder / "m004" / "results.json"
  values = {**json.loads(results.read_text()), **change}
  results.write_text(json.dumps({k: v for k, v in values.items() if v is not None}))
  table = report(folder, metrics=["test_accuracy"])
  assert note in table and "**" not in table and "| rank |" not in table


def _two_groups_selected_on(tmp_path, metric: str, mode: str,
                            groups: list[tuple[str, float, bool]]) -> pathlib.Path:
  """Two groups of 3 seeds selected on ``metric`` in ``mode``: (name, its validation value,
  whether it is the better one on test: 0.9 against 0.5 accuracy on 400 examples)."""
  members = []
  for i, (g, value, better) in enumerate(groups):
    for seed in range(3):
      correct = _correct(0.5 + 0.4 * better, 10 * i + seed)
      members.append(_member(tmp_path, f"m{3 * i + seed:03d}", {"model.name": g, "seed": seed},
                             {"selection_metric": metric, "selection_mode": mode,
                              metric: value + 0.01 * seed, "num_test": 400,
                              "test_accuracy": float(correct.mean()), "test_loss": 1.0},
                             correct=correct))
  return _sweep(tmp_path, ["model.name", "seed"], members)


def test_the_direction_is_the_one_the_runs_selected_with(tmp_path):
  """val_recall (selection_mode max) ranks highest first; the name guessed 'min' before."""
  folder = _two_groups_selected_on(tmp_path, "val_recall", "max",
                                   [("low", 0.2, False), ("high", 0.9, True)])
  table = report(folder, metrics=["val_recall", "test_accuracy"])
  assert table.splitlines()[2].startswith("| high | 1 |")
  assert "**" in _lines(table, "high")[0]  # 0.9 vs 0.5 accuracy on 400 examples: significant.


def test_a_metric_selected_by_its_minimum_ranks_the_lowest_first(tmp_path):
  folder = _two_groups_selected_on(tmp_path, "val_loss", "min",
                                   [("worse", 0.9, False), ("better", 0.2, True)])
  table = report(folder, metrics=["val_loss", "test_accuracy"])
  assert table.splitlines()[2].startswith("| better | 1 |")
  assert table.splitlines()[3].startswith("| worse | ")
  assert "Ranked by val_loss (lower is better" in table


def test_a_model_by_dataset_grid_is_ranked_and_bolded_within_each_dataset(tmp_path):
  members, i = [], 0
  for dataset, best in (("mr", "cnn"), ("trec", "lstm")):
    for model in ("cnn", "lstm"):
      for seed in range(2):
        correct = _correct(0.9 if model == best else 0.6, i)
        members.append(_member(tmp_path, f"m{i:03d}",
                               {"data.name": dataset, "model.name": model, "seed": seed},
                               {"val_accuracy": 0.9 if model == best else 0.6, "num_test": 400,
                                "test_accuracy": float(correct.mean()), "test_loss": 1.0},
                               correct=correct))
        i += 1
  folder = _sweep(tmp_path, ["data.name", "model.name", "seed"], members)
  table = report(folder)
  bold = [line.split("|")[1:3] for line in table.splitlines() if "**" in line]
  assert [[c.strip() for c in b] for b in bold] == [["mr", "cnn"], ["trec", "lstm"]]
  grid = pivot([folder], "model.name", "data.name")
  cnn = next(line for line in grid.splitlines() if line.startswith("| cnn |"))
  assert cnn.count("**") == 2 and "| mr | trec |" in grid  # Bold under mr only.
  latex = pivot([folder], "model.name", "data.name", fmt="latex")
  assert latex.count(r"\mathbf") == 2 and r"\toprule" in latex


def test_an_insignificant_best_is_not_bold_and_its_ties_share_rank_one(tmp_path):
  # Same test accuracy, slightly different validation: no test says the best is better.
  folder = _single_split(tmp_path, {"a": (0.81, 0.8), "b": (0.80, 0.8), "c": (0.5, 0.3)})
  table = report(folder)
  assert "**" not in table
  assert _lines(table, "b")[0].split("|")[2].strip() == "1="
  assert _lines(table, "c")[0].split("|")[2].strip() == "3"


def test_failed_members_are_named_in_every_format_and_notes_cut_at_a_word(tmp_path):
  folder = _single_split(tmp_path, {"a": (0.9, 0.9)})
  error = "non-finite loss at step 12; " + "the last good checkpoint is kept " * 10
  record = json.loads((folder / "sweep.json").read_text())
  record["members"].append({"name": "m099", "overrides": {"model.name": "a", "seed": 9},
                            "group": 0, "status": "failed", "error": error})
  (folder / "sweep.json").write_text(json.dumps(record))
  markdown = report(folder)
  note = next(line for line in markdown.splitlines() if "failed and are not" in line)
  assert "m099: non-finite loss at step 12" in note and note.endswith(" ….")
  assert note[:-len(" ….")].split()[-1] in error.split()  # Cut between words, not in one.
  assert "m099" in report(folder, fmt="latex")
  rows = list(csv.DictReader(report(folder, fmt="csv").splitlines()))
  assert rows[0]["failed_members"] == "m099" and rows[0]["n_failed"] == "1"


def _fold_sweep(folder: pathlib.Path, name: str, accuracies: list[float]) -> pathlib.Path:
  members = [_member(folder, f"m{f:03d}", {"data.fold": f},
                     {"val_accuracy": a, "test_accuracy": a, "test_loss": 1 - a},
                     config={"data": {"name": "mr", "folds": len(accuracies), "fold": f,
                                      "split_seed": 0}, "model": {"name": name}})
             for f, a in enumerate(accuracies)]
  return _sweep(folder, ["data.fold"], members)


def test_compare_pairs_two_folders_by_fold(tmp_path, capsys):
  a = _fold_sweep(tmp_path / "a", "cnn", [0.80, 0.82, 0.79, 0.84, 0.81, 0.83])
  b = _fold_sweep(tmp_path / "b", "lstm", [0.78, 0.80, 0.79, 0.81, 0.79, 0.80])
  table = compare_folders(a, b)
  expected = intervals.compare(
      [{"data.folds": 6, "data.fold": f, "test_accuracy": x, "num_train": 810, "num_val": 90,
        "num_test": 100} for f, x in enumerate([0.80, 0.82, 0.79, 0.84, 0.81, 0.83])],
      [{"data.folds": 6, "data.fold": f, "test_accuracy": x, "num_train": 810, "num_val": 90,
        "num_test": 100} for f, x in enumerate([0.78, 0.80, 0.79, 0.81, 0.79, 0.80])],
      "test_accuracy")
  line = next(line for line in table.splitlines() if "| test_accuracy |" in line)
  assert f"{expected.p:.3g}" in line and f"{expected.wilcoxon_p:.3g}" in line
  assert "corrected paired t over 6 folds" in line and "+0.0200" in line
  assert cli.main(["compare", str(a), str(b)]) == 0
  assert "corrected paired t over 6 folds" in capsys.readouterr().out
  both = compare_folders(a, b, metrics=["test_accuracy", "test_loss"])
  rows = [line.split("|") for line in both.splitlines() if "| test_" in line]
  assert len(rows) == 2  # Holm over the metrics compared.
  assert [float(r[6]) for r in rows] == pytest.approx(intervals.holm([float(r[5]) for r in rows]),
                                                     rel=1e-2)


def test_against_compares_every_group_with_the_reference_and_corrects_with_holm(tmp_path):
  folder = _single_split(tmp_path, {"a": (0.9, 0.9), "b": (0.8, 0.8), "c": (0.7, 0.7)})
  table = against(folder, "model.name=c")
  lines = [line for line in table.splitlines() if " vs model.name=c " in line]
  assert len(lines) == 2
  p = [float(line.split("|")[5]) for line in lines]
  holm = [float(line.split("|")[6]) for line in lines]
  assert holm == pytest.approx(intervals.holm(p), rel=1e-2)
  # Each group minus the reference: a and b are above c.
  assert all(line.split("|")[3].strip().startswith("+") for line in lines)
  with pytest.raises(Exception, match="0 groups match"):
    against(folder, "model.name=z")


def test_the_best_is_bold_only_if_it_beats_the_others_after_holm(tmp_path, monkeypatch):
  """Two comparisons at raw p = 0.03 are both significant alone, neither after Holm (0.06)."""
  folder = _single_split(tmp_path, {"a": (0.9, 0.9), "b": (0.8, 0.8), "c": (0.7, 0.7)})

  def fixed(rows_a, rows_b, metric, *args):
    return intervals.Comparison(metric, 0.1, 0.01, 0.2, 0.03, 400, "fixed", 0.5)

  monkeypatch.setattr(intervals, "compare", fixed)
  table = report(folder)
  assert "**" not in table
  assert [_lines(table, g)[0].split("|")[2].strip() for g in "bc"] == ["1=", "1="]


def test_default_metrics_leave_out_a_selection_metric_the_runs_do_not_share():
  rows = [{"member": "a", "selection_metric": "val_accuracy", "val_accuracy": 0.9,
           "val_loss": 0.3, "test_accuracy": 0.8},
          {"member": "b", "selection_metric": "val_loss", "val_accuracy": 0.8, "val_loss": 0.2,
           "test_accuracy": 0.7}]
  assert default_metrics(rows) == ["test_accuracy"]
  assert default_metrics(rows[:1]) == ["val_accuracy", "test_accuracy"]


def test_a_group_whose_members_all_failed_keeps_its_row_after_the_ranked_ones(tmp_path):
  folder = _single_split(tmp_path, {"a": (0.9, 0.9)})
  record = json.loads((folder / "sweep.json").read_text())
  record["members"] = [{"name": "m099", "overrides": {"model.name": "b", "seed": 0}, "group": 0,
                        "status": "failed", "error": "out of memory"}, *record["members"]]
  (folder / "sweep.json").write_text(json.dumps(record))
  lines = report(folder).splitlines()
  b = next(i for i, line in enumerate(lines) if line.startswith("| b |"))
  a = next(i for i, line in enumerate(lines) if line.startswith("| a |"))
  assert a < b and lines[b].startswith("| b | – | 0 | 1 |")  # Rank –, 0 finished, 1 failed.


def test_without_a_paired_test_nothing_is_bold(tmp_path):
  members = [_member(tmp_path, f"m{i:03d}", {"model.name": g, "seed": seed},
                     {"val_accuracy": v, "test_accuracy": v, "test_loss": 1 - v})
             for i, (g, v, seed) in enumerate([("a", 0.9, 0), ("a", 0.91, 1), ("b", 0.5, 0),
                                               ("b", 0.52, 1)])]
  table = report(_sweep(tmp_path, ["model.name", "seed"], members))
  assert "**" not in table and "Not tested for significance" in table


def test_split_seeds_are_repetitions_averaged_into_one_group(tmp_path):
  members = [_member(tmp_path, f"m{s:03d}", {"data.split_seed": s},
                     {"val_accuracy": 0.8 + 0.01 * s, "test_accuracy": 0.7 + 0.01 * s,
                      "test_loss": 1.0}, config={"data": {"name": "digits", "split_seed": s}})
             for s in range(3)]
  table = report(_sweep(tmp_path, ["data.split_seed"], members))
  data_rows = [line for line in table.splitlines()[2:] if line.startswith("|")]
  assert len(data_rows) == 1 and "| 3 |" in data_rows[0]


def test_runs_that_recorded_no_direction_are_not_ranked(tmp_path):
  """Results from before runs recorded their selection_mode: the direction is unknown."""
  folder = _single_split(tmp_path, {"a": (0.9, 0.9), "b": (0.8, 0.5)})
  for path in folder.glob("m*/results.json"):
    values = json.loads(path.read_text())
    del values["selection_mode"]
    path.write_text(json.dumps(values))
  table = report(folder, metrics=["test_accuracy"])
  assert "does not record the direction it selected in" in table and "**" not in table
