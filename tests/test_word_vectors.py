"""Pretrained word vectors (data/word_vectors.py) and Kim's CNN-static, -non-static and
-multichannel (models/kim.py), on a vectors file made here in each format."""

import gzip
import json
import struct

import numpy as np
import pytest

import jaxdl
from conftest import experiment
from jaxdl.data import word_vectors
from jaxdl.errors import ConfigError, DataError
from jaxdl.models.kim import STATIC_TABLE
from jaxdl.training import train_and_evaluate
from jaxdl.training.experiment import build_experiment
from jaxdl.training.saved_runs import load_run

VOCAB = ("<pad>", "<oov>", "good", "bad", "film", "zebra")
# In the file: three vocabulary words, a word the vocabulary lacks, and a repeat of 'good'.
WORDS = {"the": [9.0, 9.0, 9.0], "good": [0.5, -1.0, 2.0], "bad": [-0.25, 0.75, 1e-3],
         "film": [3.0, 0.0, -3.5]}


def _text(path, header: bool):
  lines = ([f"{len(WORDS) + 1} 3"] if header else [])
  lines += [f"{w} {' '.join(repr(x) for x in v)}" for w, v in WORDS.items()]
  lines += ["good 7 7 7"]  # A second vector for a word: the first one counts.
  path.write_text("\n".join(lines) + "\n")
  return path


def _binary(path):
  records = [*WORDS.items(), ("good", [7.0, 7.0, 7.0])]
  body = b"".join(w.encode() + b" " + struct.pack("<3f", *v) + b"\n" for w, v in records)
  data = f"{len(records)} 3\n".encode() + body
  with gzip.open(path, "wb") if path.suffix == ".gz" else open(path, "wb") as f:
    f.write(data)
  return path


@pytest.mark.parametrize("make", [
    lambda d: _text(d / "w2v.txt", header=True), lambda d: _text(d / "glove.txt", header=False),
    lambda d: _binary(d / "w2v.bin"), lambda d: _binary(d / "w2v.bin.gz")],
    ids=["word2vec text", "glove text", "word2vec binary", "gzipped binary"])
def test_each_format_gives_the_vocabularys_vectors(tmp_path, make):
  found = word_vectors.read(make(tmp_path), VOCAB)
  want = np.zeros((len(VOCAB), 3), np.float32)
  for word in ("good", "bad", "film"):
    want[VOCAB.index(word)] = WORDS[word]
  np.testing.assert_array_equal(found.vectors, want)
  assert found.found.tolist() == [False, False, True, True, True, False] and found.dim == 3


def test_bad_files_are_named(tmp_path):
  with pytest.raises(DataError, match="does not exist; set model.vectors_file"):
    word_vectors.read(tmp_path / "missing.bin", VOCAB)
  whole = _binary(tmp_path / "w2v.bin").read_bytes()
  (tmp_path / "cut.bin").write_bytes(whole[:-9])
  with pytest.raises(DataError, match="cut.bin: ends inside the vector of 'good'; .*truncated"):
    word_vectors.read(tmp_path / "cut.bin", VOCAB)
  (tmp_path / "other.txt").write_text("Haus 1 2 3\n")
  with pytest.raises(DataError, match="holds no vector for any of the 6 vocabulary words"):
    word_vectors.read(tmp_path / "other.txt", VOCAB)
  (tmp_path / "short.txt").write_text("good 1 2 3\nbad 1 2\n")
  with pytest.raises(DataError, match="short.txt:2: 2 numbers after the word, not 3"):
    word_vectors.read(tmp_path / "short.txt", VOCAB)


@pytest.fixture(scope="module")
def sentences(tmp_path_factory):
  """A tiny two-class sentence set (one file per class) and vectors for some of its words."""
  folder = tmp_path_factory.mktemp("sentences")
  rng = np.random.default_rng(0)
  for label, words in (("pos", ["good", "great", "fine"]), ("neg", ["bad", "awful", "dull"])):
    lines = [" ".join(rng.choice([*words, "film", "plot", "the"], 6)) for _ in range(60)]
    (folder / f"reviews.{label}").write_text("\n".join(lines) + "\n")
  vectors = folder / "vectors.txt"
  vectors.write_text("".join(f"{w} {' '.join(str(x) for x in rng.normal(size=8).round(3))}\n"
                             for w in ("good", "bad", "film", "plot", "missing")))
  return folder


def _config(sentences, embeddings: str, *more: str):
  return experiment("kim2014:trec", f"data.name=textfile:{sentences}", "data.folds=0",
                    "data.test_fraction=0.2", "data.max_len=8", "model.embed_dim=8",
                    "model.features=4", "num_epochs=2", "batch_size=16",
                    f"model.embeddings={embeddings}",
                    f"model.vectors_file={sentences / 'vectors.txt'}", *more)


def _file_vectors(sentences, vocab):
  return word_vectors.read(sentences / "vectors.txt", vocab)


@pytest.mark.parametrize("embeddings", ["static", pytest.param("non_static", marks=pytest.mark.slow),
                                        pytest.param("multichannel", marks=pytest.mark.slow)])
def test_each_variant_starts_from_the_vectors_and_trains_or_keeps_them(
    sentences, tmp_path, embeddings):
  exp = build_experiment(_config(sentences, embeddings))
  found = _file_vectors(sentences, exp.datasets.vocab)
  assert found.found.sum() == 4  # good, bad, film, plot; 'missing' is not a training word.
  tables = ["Embed_0"] + ([STATIC_TABLE] if embeddings == "multichannel" else [])
  for table in tables:
    start = np.asarray(exp.initial_state.params[table]["embedding"])
    np.testing.assert_array_equal(start[found.found], found.vectors[found.found])
    unknown = start[~found.found]  # Kim's add_unknown_words: uniform in ±0.25.
    assert np.all(np.abs(unknown) <= 0.25) and np.abs(unknown).max() > 0.05
  train_and_evaluate(exp.config, tmp_path, quiet=True)
  _, state, _ = load_run(tmp_path)
  trained = np.asarray(state.params["Embed_0"]["embedding"])
  if embeddings == "static":  # Every word fixed, the unknown ones included.
    np.testing.assert_array_equal(trained, np.asarray(exp.initial_state.params["Embed_0"]["embedding"]))
  else:
    assert not np.allclose(trained[found.found], found.vectors[found.found])
  if embeddings == "multichannel":
    np.testing.assert_array_equal(np.asarray(state.params[STATIC_TABLE]["embedding"]),
                                  np.asarray(exp.initial_state.params[STATIC_TABLE]["embedding"]))
  bibtex = jaxdl.cite(tmp_path)
  assert "mikolov2013distributed" in bibtex and "kim2014convolutional" in bibtex
  assert json.loads((tmp_path / "config.json").read_text())["model"]["embeddings"] == embeddings


def test_rand_reads_no_file_and_mistakes_are_named(sentences):
  rand = build_experiment(_config(sentences, "rand", "model.vectors_file=/no/such/file"))
  assert set(rand.initial_state.params) == {"Embed_0", "Conv_0", "Conv_1", "Conv_2", "Dense_0"}
  with pytest.raises(ConfigError, match="holds vectors of 8 dimensions, but model.embed_dim=6; "
                                        "set model.embed_dim=8"):
    build_experiment(_config(sentences, "static", "model.embed_dim=6"))
  with pytest.raises(ConfigError, match="set model.vectors_file to a word2vec"):
    build_experiment(_config(sentences, "static", "model.vectors_file="))
  with pytest.raises(ConfigError, match="model.embeddings='nonstatic'; choose one of rand, "
                                        "static, non_static, multichannel"):
    build_experiment(_config(sentences, "nonstatic"))
