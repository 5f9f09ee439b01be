"""``data.length_bucket``: batches cut to their longest sequence give a model that reads
``lengths`` the same numbers as full-length batches, with fewer time steps."""

import json

import numpy as np
import pytest

import jaxdl
from conftest import polarity_folder
from jaxdl import data
from jaxdl.data import batches
from jaxdl.errors import ConfigError


@pytest.mark.parametrize("lengths, bucket, full, width", [
    ([3, 9, 2], 8, 40, 16), ([3, 8, 2], 8, 40, 8), ([0, 0], 8, 40, 8), ([39, 1], 8, 40, 40),
    ([5], 1, 40, 5)])
def test_the_width_is_the_longest_rounded_up_to_the_bucket(lengths, bucket, full, width):
  assert batches.bucketed_width(np.asarray(lengths), bucket, full) == width


def _text_split(lengths):
  tokens = np.zeros((len(lengths), 40), np.int32)
  for i, n in enumerate(lengths):
    tokens[i, :n] = np.arange(1, n + 1)
  return data.Split(tokens, np.zeros(len(lengths), np.int32),
                    extra={"lengths": np.asarray(lengths, np.int32)})


def test_every_process_cuts_its_rows_to_the_whole_batchs_width():
  split = _text_split([3, 20, 5, 2, 11])
  index = np.array([0, 1, 2, 3])
  whole = batches.padded_batch(split, index, 6, bucket=8)
  assert whole["inputs"].shape == (6, 24)  # Example 1 has 20 tokens.
  np.testing.assert_array_equal(whole["inputs"], split.inputs[[0, 1, 2, 3, 0, 0], :24])
  halves = [batches.padded_batch(split, index, 6, rows=rows, bucket=8) for rows in ((0, 3), (3, 6))]
  assert [h["inputs"].shape for h in halves] == [(3, 24), (3, 24)]  # Row 1 is in one half only.
  assert batches.padded_batch(split, index, 6)["inputs"].shape == (6, 40)


def test_stacked_members_of_different_widths_are_padded_to_the_widest():
  split = _text_split([3, 20, 5, 2])
  plans = [batches.InOrderPlan(split, 2, bucket=4), batches.InOrderPlan(split, 2, bucket=8)]
  stacked = batches.GroupPlan(plans, stacked=True)(1)  # Examples 2, 3: widths 8 and 8.
  assert stacked["inputs"].shape == (2, 2, 8)
  first = batches.GroupPlan([batches.InOrderPlan(split, 2, bucket=4),
                             batches.InOrderPlan(_text_split([3, 2, 1, 1]), 2, bucket=4)],
                            stacked=True)(0)
  assert first["inputs"].shape == (2, 2, 20)  # 20 and 4 steps: the second is zero-padded.
  assert not first["inputs"][1, :, 4:].any()


@pytest.mark.slow  # 28 s: two trainings.
def test_a_model_reading_lengths_trains_alike_on_cut_batches(tmp_path, monkeypatch):
  folder = polarity_folder(tmp_path / "mr", 60, np.random.default_rng(1), longest=30)
  base = ["model.name=kim_cnn", "model.embed_dim=8", "model.features=4", f"data.name=textfile:{folder}",
          "data.max_len=64", "data.test_fraction=0.2", "num_epochs=2", "batch_size=16",
          "optim.name=adadelta", "optim.learning_rate=1.0", "model.dropout_rate=0.0"]
  full = jaxdl.train("experiments/seed_cnn_digits.py", tmp_path / "full", base)
  widths = []
  width = batches.bucketed_width
  monkeypatch.setattr(batches, "bucketed_width", lambda *a: widths.append(width(*a)) or widths[-1])
  cut = jaxdl.train("experiments/seed_cnn_digits.py", tmp_path / "cut",
                    [*base, "data.length_bucket=8"])
  assert widths and set(widths) <= {8, 16, 24, 32}  # Cut, from 64 steps, for every batch.
  rows = [[json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
          for run in ("full", "cut")]
  for a, b in zip(*rows):
    for key in ("train_loss", "val_loss", "val_accuracy"):
      np.testing.assert_allclose(a[key], b[key], rtol=1e-5, err_msg=key)
  assert full["test_accuracy"] == cut["test_accuracy"]


def _arrays_without_lengths(data_config):
  x = np.random.default_rng(0).normal(0, 1, (60, 4, 1)).astype(np.float32)
  return {"train": (x, np.arange(60) % 2), "test": (x[:20], np.arange(20) % 2)}


def test_cut_batches_are_refused_for_data_without_lengths(tmp_path):
  # A source that takes the field (a data function's arrays may have lengths) but gave none.
  fast = ["num_epochs=1", "model.name=seq_rnn", "data.augment_shift=0"]
  with pytest.raises(ConfigError, match="gives no lengths; set data.length_bucket=0"):
    jaxdl.train("experiments/seed_cnn_digits.py", tmp_path, [*fast, "data.length_bucket=8"],
                data=_arrays_without_lengths)
  with pytest.raises(ConfigError, match="must be >= 0"):
    jaxdl.train("experiments/seed_cnn_digits.py", tmp_path, [*fast, "data.length_bucket=-1"],
                data=_arrays_without_lengths)
  # Image sources have no such field.
  with pytest.raises(ConfigError, match="'data.length_bucket' is not a field of data source"):
    jaxdl.train("experiments/seed_cnn_digits.py", tmp_path, ["data.length_bucket=8"])
