"""``jaxdl reproduce kim2014``: the document's cells come from the run folders, the verdicts
follow the published bands, a rerun resumes, and the quick scale runs on the real data."""

import json
import math
import re

import numpy as np
import pytest

from conftest import EXPERIMENTS, SHARED_DATA, cue_sentences, polarity_folder
from jaxdl.configs.loading import load_module
from jaxdl.studies import StudyOptions
from jaxdl.studies.reproduce import reproduce

kim2014 = load_module(str(EXPERIMENTS / "kim2014_study.py"))


def reproduce_kim2014(workdir, quick=True, datasets=(), log=lambda m: None):
  return reproduce(workdir, quick, log=log, study="kim2014",
                   options=StudyOptions(datasets=tuple(datasets)))
from jaxdl.sweeps.intervals import Estimate
from jaxdl.sweeps.report import Group

@pytest.fixture
def tiny_data(tmp_path, monkeypatch):
  """A CV dataset laid out as MR and a given-test-set one laid out as TREC ('COARSE:fine')."""
  rng = np.random.default_rng(0)
  polarity_folder(tmp_path / "data" / "mr", 150, rng)
  trec = tmp_path / "data" / "trec"
  trec.mkdir()
  for split, n in (("train", 150), ("test", 60)):
    lines = [f"{label}:x {s}" for label, other in (("LOC", "NUM"), ("NUM", "LOC"))
             for s in cue_sentences(rng, label, n, other)]
    (trec / f"TREC.{split}").write_text("\n".join(lines) + "\n")
  monkeypatch.setenv("JAXDL_DATA_DIR", str(tmp_path / "data"))
  return tmp_path


def _row(document: str, dataset: str) -> list[str]:
  line = next(l for l in document.splitlines() if l.startswith(f"| {dataset} "))
  return [cell.strip() for cell in line.strip("|").split("|")]


@pytest.mark.slow  # 33 s: trains the study's tiny table.
def test_the_cells_are_the_run_folders_numbers_and_a_rerun_trains_nothing(tiny_data):
  workdir = tiny_data / "runs"
  path = reproduce_kim2014(workdir, datasets=["trec", "mr", "sst2"])
  document = path.read_text()
  for dataset, folder in (("trec", "trec"), ("mr", "mr")):
    results = [json.loads(p.read_text()) for p in sorted((workdir / folder).glob("m*/results.json"))]
    assert len(results) == 1  # Quick: one fold (mr) or the given test set (trec), one seed.
    cells = _row(document, dataset)
    assert cells[1] == f"{ {'trec': 91.2, 'mr': 76.1}[dataset]:.1f}"
    assert cells[3] == f"{100 * results[0]['test_accuracy']:.1f}"
    assert cells[6] == f"{100 * results[0]['test_accuracy'] - float(cells[1]):+.1f}"
    assert cells[7] == "not judged (quick scale)"
  sweep = json.loads((workdir / "mr" / "sweep.json").read_text())
  assert [m["overrides"] for m in sweep["members"]] == [{"data.fold": 0, "seed": 0}]
  trec_config = json.loads((workdir / "trec" / "m000" / "config.json").read_text())
  assert (trec_config["data"]["folds"], trec_config["num_epochs"],
          trec_config["model"]["embed_dim"]) == (0, 2, 16)
  # Trained on the labels before ':', and tested on the given test file (120 lines).
  trec_results = json.loads((workdir / "trec" / "m000" / "results.json").read_text())
  assert trec_results["num_test"] == 120
  assert _row(document, "trec")[5] == "Wilson, 120 test examples"
  assert _row(document, "mr")[5] == "none: 1 fold"
  assert "| sst2 | 82.7 | 83.5 | not run |" in document
  assert "Not present in the data folder, so not run: sst2." in document
  assert (workdir / "kim2014_table2.png").stat().st_size > 10_000
  assert "\\begin{tabular}{lrr}" in document and "| model | mr | trec |" in document

  stamps = {p: p.stat().st_mtime_ns for p in workdir.glob("*/m*/results.json")}
  reproduce_kim2014(workdir, datasets=["trec", "mr"])
  assert {p: p.stat().st_mtime_ns for p in workdir.glob("*/m*/results.json")} == stamps


def test_an_unknown_dataset_is_refused_in_one_line(tiny_data):
  with pytest.raises(Exception, match="unknown dataset 'imdb' for kim2014; choose from mr, "):
    reproduce_kim2014(tiny_data / "runs", datasets=["imdb"])


def _group(mean: float, low: float = math.nan, high: float = math.nan) -> Group:
  return Group({}, ("m000",), {"test_accuracy": Estimate(mean, 0.01, low, high, 10, "t", 10)})


@pytest.mark.parametrize("mean, low, high, expected", [
    (0.912, 0.90, 0.92, "aim met (within 1 of Kim)"),
    (0.902, 0.89, 0.91, "aim met (within 1 of Kim)"),  # 1.0 point below Kim: at the aim's edge.
    (0.900, 0.89, 0.91, "above the floor, short of the aim"),
    (0.925, 0.91, 0.935, "above the floor, beyond Kim"),
    (0.880, 0.86, 0.89, "**below the floor** (the floor is inside our interval)"),
    (0.880, 0.8825, 0.89, "**below the floor**"),
    # The whole interval under the floor (SST-1 here: 39.5 [37.5, 41.6] against 42.2).
    (0.870, 0.86, 0.881, "**below the floor**"),
])
def test_the_verdict_follows_the_published_bands(mean, low, high, expected):
  trec = kim2014.Dataset("trec", "trec", False, kim=91.2, floor=88.2)
  assert kim2014.verdict(trec, _group(mean, low, high), papers=True) == expected
  assert kim2014.verdict(trec, _group(mean, low, high), papers=False) == (
      "not judged (quick scale)")


def test_only_the_papers_recipe_is_judged():
  assert kim2014.FULL.is_papers and not kim2014.QUICK.is_papers
  assert not kim2014.KimScale(epochs=10).is_papers and not kim2014.KimScale(folds=3).is_papers


def test_the_published_numbers_are_the_papers():
  found = {d.name: d for d in kim2014.datasets(kim2014.recipe_file())}
  assert {k: d.kim for k, d in found.items()} == {
      "mr": 76.1, "sst1": 45.0, "sst2": 82.7, "subj": 89.6, "trec": 91.2, "cr": 79.8, "mpqa": 83.4}
  assert {k: d.floor for k, d in found.items()} == {
      "mr": 75.9, "sst1": 42.2, "sst2": 83.5, "subj": 89.2, "trec": 88.2, "cr": 78.3, "mpqa": 84.6}
  assert {k for k, d in found.items() if d.cross_validated} == {"mr", "subj", "cr", "mpqa"}


@pytest.mark.slow
def test_the_quick_table_runs_on_the_seven_datasets(tmp_path, monkeypatch):
  if not (SHARED_DATA / "trec").is_dir():
    pytest.skip(f"{SHARED_DATA} is not present")
  monkeypatch.setenv("JAXDL_DATA_DIR", str(SHARED_DATA))
  document = reproduce_kim2014(tmp_path).read_text()
  for dataset in ("mr", "sst1", "sst2", "subj", "trec", "cr", "mpqa"):
    cells = _row(document, dataset)
    assert re.fullmatch(r"\d+\.\d", cells[3]), cells  # Ours, from a finished run.
  assert "| not run |" not in document and "Not present in the data folder" not in document
