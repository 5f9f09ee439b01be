"""Prediction on what the data source reads: sentences through the run's own vocabulary,
token ids with their lengths computed, a CSV from ``jaxdl predict``."""

import csv

import numpy as np
import pytest

import jaxdl
from conftest import polarity_folder
from jaxdl import cli
from jaxdl.data import text


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
  folder = polarity_folder(tmp_path_factory.mktemp("data") / "mr", 80, np.random.default_rng(2))
  workdir = tmp_path_factory.mktemp("run")
  jaxdl.train("experiments/kim2014.py:trec", workdir,
              [f"data.name=textfile:{folder}", "data.label_separator=", "data.encoding=utf-8",
               "model.embed_dim=8", "model.features=4", "num_epochs=6", "data.max_len=12",
               "data.test_fraction=0.2"])
  return workdir


SENTENCES = ["good great fine", "bad awful dull poor", "nice"]


def test_sentences_are_encoded_with_the_runs_vocabulary(text_run):
  run = jaxdl.load_run(text_run)
  ids, lengths = text.encode(SENTENCES, run.experiment.datasets.vocab, 12)
  np.testing.assert_array_equal(run.predict(SENTENCES), run.predict(ids, lengths=lengths))
  # Ids without lengths: the lengths come from the padding, never a different answer.
  np.testing.assert_array_equal(run.predict(ids), run.predict(ids, lengths=lengths))
  np.testing.assert_array_equal(run.predict("good great fine"), run.predict(SENTENCES[:1]))
  assert list(run.predict_classes(SENTENCES)) == ["pos", "neg", "pos"]
  proba = run.predict_proba(SENTENCES)
  np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-6)


def test_jaxdl_predict_writes_one_row_per_line(text_run, tmp_path, capsys):
  sentences = tmp_path / "new.txt"
  sentences.write_text("\n".join(SENTENCES) + "\n")
  assert cli.main(["predict", str(sentences), "--workdir", str(text_run)]) == 0
  out = tmp_path / "new.predictions.csv"
  assert f"wrote {out}" in capsys.readouterr().out
  with out.open() as f:
    rows = list(csv.DictReader(f))
  run = jaxdl.load_run(text_run)
  proba = run.predict_proba(SENTENCES)
  assert [r["text"] for r in rows] == SENTENCES and [r["class"] for r in rows] == ["pos", "neg", "pos"]
  np.testing.assert_allclose([[float(r["p_neg"]), float(r["p_pos"])] for r in rows], proba,
                             atol=1e-6)


def test_sentences_for_a_run_not_on_text_are_refused(tmp_path):
  jaxdl.train("experiments/seed_cnn_digits.py", tmp_path, ["num_epochs=1"])
  run = jaxdl.load_run(tmp_path)
  with pytest.raises(ValueError, match="was not trained on text, so sentences cannot be encoded"):
    run.predict(["a sentence"])
  with pytest.raises(ValueError, match=r"do not fit this run's \[28, 28, 1\] examples"):
    run.predict(np.zeros((2, 8, 8, 1), np.float32))
