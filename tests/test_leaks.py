"""Test data never reaches what is learned or chosen: the vocabulary, the standardising
statistics, the selected checkpoint; and DP-SGD accounts for exactly the steps it took.

Each test here failed on a realistic bug applied by hand (a vocabulary from train + val +
test; statistics from train + test; epsilon for half the steps or with delta = 1/N; test
evaluated on every checkpoint).
"""

import json

import numpy as np
import pytest

from conftest import experiment
from jaxdl import data
from jaxdl.data.arrays import Scaling
from jaxdl.data.text import build_vocab
from jaxdl.training import privacy, train_and_evaluate
from jaxdl.training import final_test as evaluating_module
from jaxdl.training.experiment import build_experiment


def _texts(folder, with_dev: bool):
  folder.mkdir()
  rows = lambda words: "text\tlabel\n" + "".join(
      f"{w} common\t{'pos' if i % 2 else 'neg'}\n" for i, w in enumerate(words))
  (folder / "train.tsv").write_text(rows([f"train{i}" for i in range(40)]))
  (folder / "test.tsv").write_text(rows(["testonly"] * 6))
  if with_dev:
    (folder / "dev.tsv").write_text(rows(["devonly"] * 6))
  return folder


@pytest.mark.parametrize("with_dev", [True, False])
def test_the_vocabulary_comes_from_the_training_split_alone(tmp_path, with_dev):
  folder = _texts(tmp_path / "texts", with_dev)
  cfg = experiment("seed_lstm_mr", f"data.name=textfile:{folder}", "data.encoding=utf-8",
                   "data.val_fraction=0.25", "data.vocab_size=1000").data
  d = data.build(cfg)
  words = set(d.vocab)
  assert "testonly" not in words and "devonly" not in words
  # Held-out validation examples (no dev file) keep their words out too: exactly the
  # vocabulary of the training examples that remain.
  train_words = {d.vocab[i] for i in np.unique(d.train.inputs) if i > 1}
  assert words - {"<pad>", "<oov>"} == train_words
  if not with_dev:
    val_words = {d.vocab[i] for i in np.unique(d.val.inputs)}
    assert "<oov>" in val_words  # The validation sentences' own words are unknown.
  assert int(np.sum(d.test.inputs == 1)) == 6  # "testonly" is OOV in each test sentence.
  assert d.vocab == build_vocab([f"train{i} common" for i in range(40)
                                 if f"train{i}" in words], 1000)


def _idx_digits(folder):
  """scikit-learn's digits as uint8 IDX files (0..255), the format of MNIST."""
  import gzip

  from sklearn.datasets import load_digits

  digits = load_digits()
  images = (digits.images * 15).astype(np.uint8)
  folder.mkdir()
  for name, magic, array in (("train-images-idx3-ubyte.gz", 3, images),
                             ("train-labels-idx1-ubyte.gz", 1, digits.target.astype(np.uint8))):
    header = bytes([0, 0, 8, magic]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    (folder / name).write_bytes(gzip.compress(header + array.tobytes()))
  return folder


def test_standardize_uses_exactly_the_training_splits_statistics(tmp_path):
  # Resized digits are standardised once, in memory: the training split is exactly 0 / 1.
  d = data.build(experiment("seed_cnn_digits", "data.standardize=true").data)
  x = np.asarray(d.train.inputs, np.float64)
  assert abs(x.mean()) < 1e-6 and abs(x.std() - 1.0) < 1e-5
  # uint8 images stay uint8 and are standardised a batch at a time: the statistics are the
  # training split's own, not those of everything (a leak that shifts them by ~1e-3).
  d = data.build(experiment("seed_cnn_digits", "data.standardize=true", "data.image_size=0",
                            f"data.name=idx:{_idx_digits(tmp_path / 'idx')}").data)
  scaled = Scaling(d.train.scaling.divisor)(d.train.inputs)
  np.testing.assert_allclose(d.train.scaling.mean, scaled.mean(axis=(0, 1, 2)), rtol=1e-6)
  np.testing.assert_allclose(d.train.scaling.std, scaled.std(axis=(0, 1, 2)) + 1e-6, rtol=1e-6)
  everything = Scaling(d.train.scaling.divisor)(np.concatenate(
      [d.train.inputs, d.val.inputs, d.test.inputs]))
  assert abs(float(everything.mean()) - float(d.train.scaling.mean[0])) > 1e-4
  for split in (d.val, d.test):  # Every split is scaled with the training statistics.
    assert split.scaling is d.train.scaling


def test_dp_settings_take_delta_from_the_training_examples_and_the_rate_from_the_batch():
  cfg = experiment("dp_cnn_digits").privacy
  settings = privacy.settings(cfg, num_train=1295, batch_size=64, total_steps=300)
  assert settings["delta"] == pytest.approx(1 / (10 * 1295), rel=1e-12)
  assert settings["sampling_rate"] == pytest.approx(64 / 1295, rel=1e-12)
  assert settings["expected_batch"] == 64


def test_a_target_epsilon_is_calibrated_for_every_step_of_the_run():
  cfg = experiment("dp_cnn_digits", "num_epochs=3", "privacy.target_epsilon=2.0",
                   "data.image_size=0", "model.name=plugin_models:TinyCNN",
                   "model.batch_norm=false")
  exp = build_experiment(cfg)
  settings = exp.privacy
  assert exp.total_steps == 3 * exp.steps_per_epoch
  spent = privacy.epsilon(settings["noise_multiplier"], settings["sampling_rate"],
                          exp.total_steps, settings["delta"])
  assert 1.95 <= spent <= 2.0  # Calibrated to the whole run: at, not above, the target.


@pytest.mark.slow
def test_a_dp_runs_epsilon_is_that_of_every_step_it_took(tmp_path):
  cfg = experiment("dp_cnn_digits", "num_epochs=2", "data.image_size=0",
                   "model.name=plugin_models:TinyCNN", "model.batch_norm=false")
  results = train_and_evaluate(cfg, tmp_path, quiet=True)
  steps = results["steps"]
  assert steps == 2 * -(-results["num_train"] // 64)
  delta = 1 / (10 * results["num_train"])
  assert results["privacy_delta"] == pytest.approx(delta, rel=1e-12)
  expected = privacy.epsilon(1.1, 64 / results["num_train"], steps, delta, "rdp")
  assert results["privacy_epsilon"] == pytest.approx(expected, rel=1e-9)
  rows = [json.loads(r) for r in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [r["epsilon"] for r in rows] == pytest.approx(
      [privacy.epsilon(1.1, 64 / results["num_train"], r["step"], delta, "rdp") for r in rows])


@pytest.mark.slow
def test_the_test_split_is_evaluated_once_on_the_selected_checkpoint(tmp_path, monkeypatch):
  """Evaluation is counted split by split: validation once per epoch, test once on the
  selected checkpoint and once on the last (they differ here), never on any other."""
  seen = []
  real = evaluating_module.evaluate_group

  def counting(group, step, state, split, *args, **kwargs):
    seen.append((len(split), int(np.asarray(state.step).max())))
    return real(group, step, state, split, *args, **kwargs)

  monkeypatch.setattr(evaluating_module, "evaluate_group", counting)
  config = experiment("seed_cnn_digits", "num_epochs=3", "batch_size=128",
                      "checkpoints_to_keep=1", "select.metric=val_loss", "select.mode=max")
  results = train_and_evaluate(config, tmp_path, quiet=True)
  num_val, num_test = results["num_val"], results["num_test"]
  assert num_val != num_test
  tested = [step for size, step in seen if size == num_test]
  assert tested == [results["selected_step"], results["steps"]]  # Selected, then last.
  assert [size for size, _ in seen].count(num_val) == 3  # One validation per epoch.
