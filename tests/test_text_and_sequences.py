"""Text data, long-range synthetic tasks, and learning on them."""

import json

import numpy as np
import pytest
import tensorflow_datasets as tfds

import jaxdl

from conftest import experiment, shared_data
from jaxdl import data
from jaxdl.data import synthetic, text
from jaxdl.errors import CheckpointError, DataError
from jaxdl.training import load_run, train_and_evaluate


def test_tokenizer_is_lowercase_word_level():
  assert text.tokenize("It's a GREAT film , isn't it?") == [
      "it's", "a", "great", "film", ",", "isn't", "it", "?"]


def test_vocab_is_top_k_by_frequency_ties_by_word():
  vocab = text.build_vocab(["b a c", "a b d", "a"], size=4)
  assert vocab == ("<pad>", "<oov>", "a", "b")  # a:3, then b:2; c and d miss the cut.
  # Equal counts at the cut go by the word, not by the order the texts came in.
  assert text.build_vocab(["c b", "a"], size=4) == ("<pad>", "<oov>", "a", "b")
  ids, lengths = text.encode(["a d b b b", ""], vocab, max_len=4)
  np.testing.assert_array_equal(ids, [[2, 1, 3, 3], [0, 0, 0, 0]])
  np.testing.assert_array_equal(lengths, [4, 0])


def test_mr_is_read_as_latin1_split_on_newlines_only():
  folder = shared_data("mr")
  cfg = experiment("seed_lstm_mr").data
  d = data.build(cfg)
  assert d.spec.num_train + d.spec.num_val + d.spec.num_test == 2 * 5331
  assert d.spec.class_names == ("neg", "pos")
  assert d.spec.vocab_size == 10_000 and d.spec.input_shape == (100,)
  assert d.train.extra["lengths"].max() <= 100
  assert (folder / "rt-polarity.pos").exists()


def test_sst2_uses_its_own_splits():
  shared_data("sst2")
  d = data.build(experiment("seed_lstm_sst2").data)
  assert (d.spec.num_train, d.spec.num_val, d.spec.num_test) == (6920, 872, 1821)
  assert np.bincount(d.test.label).tolist() == [912, 909]


def _write(path, content, encoding="utf-8"):
  path.write_bytes(content.encode(encoding) if isinstance(content, str) else content)


def test_tsv_layout_with_string_labels(tmp_path):
  _write(tmp_path / "train.tsv", "label\ttext\nspam\tbuy now\nham\thello there\nspam\tcheap pills\n")
  _write(tmp_path / "test.tsv", "label\ttext\nham\tsee you\n")
  cfg = experiment("seed_lstm_mr", f"data.name=textfile:{tmp_path}", "data.encoding=utf-8",
                   "data.val_fraction=0.0").data
  d = data.build(cfg)
  assert d.spec.class_names == ("ham", "spam")
  np.testing.assert_array_equal(d.train.label, [1, 0, 1])
  np.testing.assert_array_equal(d.test.label, [0])


def test_coarse_labels_cut_at_the_separator(tmp_path):
  """TREC's layout: 'COARSE:fine question'; data.label_separator=':' keeps the coarse class."""
  _write(tmp_path / "q.train", "DESC:manner How do I do it ?\nHUM:ind Who wrote it ?\n"
                               "DESC:def What is a cat ?\nLOC:city Where is Rome ?\n")
  _write(tmp_path / "q.test", "HUM:ind Which team won ?\nLOC:city Where : here ?\n")
  cfg = experiment("seed_lstm_mr", f"data.name=textfile:{tmp_path}", "data.encoding=utf-8",
                   "data.val_fraction=0.0", "data.label_separator=:").data
  d = data.build(cfg)
  assert d.spec.class_names == ("DESC", "HUM", "LOC")
  np.testing.assert_array_equal(d.train.label, [0, 1, 0, 2])
  np.testing.assert_array_equal(d.test.label, [1, 2])
  assert "labels cut at the first ':'" in d.spec.notes[0]
  whole = data.build(experiment("seed_lstm_mr", f"data.name=textfile:{tmp_path}",
                                "data.encoding=utf-8", "data.val_fraction=0.0").data,)
  assert whole.spec.class_names == ("DESC:def", "DESC:manner", "HUM:ind", "LOC:city")


@pytest.mark.parametrize("files, message", [
    ({"train.tsv": "label\ttext\n", "test.tsv": "label\ttext\na\tb\n"}, "train"),
    ({"a.train": "", "a.test": "1 x\n"}, "is empty"),
    ({"train.tsv": "label\ttext\npos\tgood\nneg\tbad\n", "test.tsv": "label\ttext\nneutral\tmeh\n"},
     r"test.tsv:2: label 'neutral' in the test split never occurs in the training split"),
    ({"train.tsv": "y\tsentence\n1\tgood\n", "test.tsv": "y\tsentence\n1\tok\n"},
     "no column 'text'; its header has y, sentence"),
    ({"x.pos": b"fine\ncaf\xe9 au lait\n", "x.neg": b"bad\n"}, r"x.pos:2: bytes .* do not decode "
     "as utf-8; set data.encoding"),
])
def test_bad_text_data_names_the_file_and_line(tmp_path, files, message):
  for name, content in files.items():
    _write(tmp_path / name, content)
  cfg = experiment("seed_lstm_mr", f"data.name=textfile:{tmp_path}", "data.encoding=utf-8").data
  with pytest.raises(DataError, match=message):
    data.build(cfg)


def test_tfds_text_through_mock_data():
  cfg = experiment("seed_lstm_imdb", "data.vocab_size=50", "data.max_len=20").data
  with tfds.testing.mock_data(num_examples=30):
    d = data.build(cfg)
  assert d.spec.input_dtype == "int32" and d.spec.num_classes == 2
  assert d.spec.input_shape == (20,) and d.spec.vocab_size <= 50


def test_adding_problem_statistics():
  x, y = synthetic.adding_problem(20_000, 30, np.random.default_rng(0))
  assert x.shape == (20_000, 30, 2)
  np.testing.assert_array_equal(x[:, :, 1].sum(1), 2.0)
  assert np.all(x[:, :15, 1].sum(1) == 1) and np.all(x[:, 15:, 1].sum(1) == 1)
  np.testing.assert_allclose((x[:, :, 0] * x[:, :, 1]).sum(1), y, rtol=1e-6)
  # Always predicting 1 gives MSE Var(u1 + u2) = 1/6.
  np.testing.assert_allclose(np.mean((y - 1.0) ** 2), synthetic.ADDING_BASELINE_MSE, rtol=0.03)


def test_memory_task_and_sequential_digits():
  x, y = synthetic.memory_task(50, 12, 4, np.random.default_rng(0))
  np.testing.assert_array_equal(np.argmax(x[:, 0, :4], -1), y)
  assert x[:, 1:-1].sum() == 0 and np.all(x[:, -1, 4] == 1)
  plain = data.build(experiment("seq_digits_lstm").data)
  permuted = data.build(experiment("seq_digits_lstm", "data.permute=true").data)
  assert plain.spec.input_shape == (64, 1)
  np.testing.assert_allclose(np.sort(plain.test.inputs, 1), np.sort(permuted.test.inputs, 1))
  assert not np.array_equal(plain.test.inputs, permuted.test.inputs)


def test_a_model_that_cannot_take_the_data_is_a_clear_error():
  from jaxdl import models
  from jaxdl.errors import ConfigError

  spec = data.build(experiment("adding_lstm", "data.num_train=10", "data.num_test=2").data).spec
  with pytest.raises(ConfigError, match="takes images.*use model.name 'seq_rnn'"):
    models.build(experiment("seed_cnn_digits"), spec)


@pytest.mark.slow
def test_lstm_solves_the_adding_problem_at_t50(tmp_path):
  results = train_and_evaluate(experiment("adding_lstm", "num_epochs=5"), tmp_path, quiet=True)
  assert results["test_mse"] < 0.05, results  # The baseline is 0.167.


@pytest.mark.slow
def test_seed_lstm_beats_070_on_mr(tmp_path):
  shared_data("mr")
  results = train_and_evaluate(experiment("seed_lstm_mr", "num_epochs=2"), tmp_path, quiet=True)
  assert results["test_accuracy"] > 0.70, results
  vocab = json.loads((tmp_path / "vocab.json").read_text())
  assert vocab[:2] == ["<pad>", "<oov>"] and len(vocab) == 10_000


def test_eval_refuses_a_vocabulary_that_changed(tmp_path):
  folder = tmp_path / "texts"
  folder.mkdir()
  _write(folder / "t.pos", "good fun\ngreat film\nnice one\nlovely\n")
  _write(folder / "t.neg", "bad film\nawful\ndull one\nboring\n")
  cfg = experiment("seed_lstm_mr", f"data.name=textfile:{folder}", "data.encoding=utf-8",
                   "num_epochs=1", "data.val_fraction=0.0", "data.test_fraction=0.25",
                   "model.hidden_sizes=(4,)", "data.max_len=4")
  train_and_evaluate(cfg, tmp_path / "run", quiet=True)
  load_run(tmp_path / "run")  # Unchanged data: fine.
  _write(folder / "t.pos", "superb\nsplendid\nwonderful\nterrific\n")
  _write(folder / "t.neg", "poor\ndire\nweak\nflat\n")
  with pytest.raises(CheckpointError, match="vocabulary rebuilt from the data differs"):
    load_run(tmp_path / "run")


def test_blank_lines_and_cut_texts_are_noted_and_printed(tmp_path, capsys):
  folder = tmp_path / "mr"
  folder.mkdir()
  (folder / "rt-polarity.pos").write_text("a good film\n\nvery good\n" + "good " * 30 + "\n")
  (folder / "rt-polarity.neg").write_text("a bad film\nbad\n\n\nawful\n")
  results = jaxdl.train("experiments/seed_lstm_mr.py", tmp_path / "run",
                        [f"data.name=textfile:{folder}", "data.encoding=utf-8", "data.max_len=10",
                         "num_epochs=1", "data.test_fraction=0.3", "data.val_fraction=0.0",
                         "model.hidden_sizes=(4,)", "model.embed_dim=4"], quiet=False)
  blank = (f"3 blank line(s) left out, not examples ({folder / 'rt-polarity.neg'}:3, "
           f"{folder / 'rt-polarity.neg'}:4, {folder / 'rt-polarity.pos'}:2)")
  assert blank in results["data_notes"]
  assert results["num_train"] + results["num_val"] + results["num_test"] == 6
  assert any("texts are longer than data.max_len=10 tokens and were cut (the longest has 30)"
             in n for n in results["data_notes"])
  assert f"data: {blank}" in capsys.readouterr().err
