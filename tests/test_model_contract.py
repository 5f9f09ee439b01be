"""A user's model and data checked before any training step: the mode flag as the model
spells it, outputs that fit the data, an embedding table that holds every token id, and
labels as the data function gives them (strings, whole floats)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import init
from flax import nnx

import jaxdl
from jaxdl.errors import ConfigError, DataError
from jaxdl.training.contract import embedding_rows
from jaxdl.training.model_call import model_arguments

BASE = "experiments/seed_cnn_digits.py"
FAST = ["num_epochs=1", "batch_size=32", "data.augment_shift=0"]
LEARN = ["num_epochs=8", "batch_size=32", "data.augment_shift=0", "optim.learning_rate=1e-2",
         "data.image_size=0"]


class KerasStyle(nn.Module):
  """``training`` as Keras spells it: jaxdl must pass it, or dropout never runs."""

  num_classes: int = 10

  @nn.compact
  def __call__(self, x, training=False):
    x = nn.Dropout(0.5, deterministic=not training)(x.reshape(x.shape[0], -1))
    return nn.Dense(self.num_classes)(x)


class FlaxDeterministic(nn.Module):
  num_classes: int = 10

  @nn.compact
  def __call__(self, x, deterministic: bool = True):
    x = nn.Dropout(0.5, deterministic=deterministic)(x.reshape(x.shape[0], -1))
    return nn.Dense(self.num_classes)(x)


class NoFlagWithDropout(nn.Module):
  num_classes: int = 10

  @nn.compact
  def __call__(self, x):
    x = nn.Dropout(0.5, deterministic=False)(x.reshape(x.shape[0], -1))
    return nn.Dense(self.num_classes)(x)


class NoFlagPlain(nn.Module):
  num_classes: int = 10

  @nn.compact
  def __call__(self, x):
    return nn.Dense(self.num_classes)(x.reshape(x.shape[0], -1))


class ThreeLogits(nn.Module):
  @nn.compact
  def __call__(self, x, *, train: bool):
    del train
    return nn.Dense(3)(x.reshape(x.shape[0], -1))


class OneOutput(nn.Module):
  @nn.compact
  def __call__(self, x, *, train: bool):
    del train
    return nn.Dense(1)(x.reshape(x.shape[0], -1))[:, 0]


class NNXTraining(nnx.Module):
  def __init__(self, num_classes: int = 10, *, rngs: nnx.Rngs):
    self.out = nnx.Linear(64, num_classes, rngs=rngs)
    self.dropout = nnx.Dropout(0.5, rngs=rngs)

  def __call__(self, x, *, training: bool = False):
    return self.out(self.dropout(x.reshape(x.shape[0], -1), deterministic=not training))


BATCH = {"inputs": np.zeros((2, 4), np.float32), "mask": np.ones(2, np.float32)}


@pytest.mark.parametrize("module, train, expected", [
    (KerasStyle(), True, {"training": True}), (KerasStyle(), False, {"training": False}),
    (FlaxDeterministic(), True, {"deterministic": False}),
    (FlaxDeterministic(), False, {"deterministic": True}),
    (NoFlagPlain(), True, {}),
    (nnx.bridge.to_linen(NNXTraining), True, {"training": True})])
def test_the_mode_is_passed_as_the_model_spells_it(module, train, expected):
  _, kwargs = model_arguments(module, BATCH, train=train)
  assert {k: v for k, v in kwargs.items() if k in ("train", "training", "deterministic")} == expected


def _train_over_val(results) -> float:
  return results["train_loss"] / results["val_loss"]


@pytest.mark.parametrize("model", [KerasStyle, pytest.param(NNXTraining, marks=pytest.mark.slow)])
def test_a_keras_spelled_model_drops_out_in_training_only(tmp_path, model):
  dropped = jaxdl.train(BASE, tmp_path / "d", LEARN, model=model)
  plain = jaxdl.train(BASE, tmp_path / "p", LEARN, model=NoFlagPlain)
  # Dropout at 0.5 on the inputs while training, none on validation: the same linear model
  # without dropout fits its training data about as well as it validates.
  assert _train_over_val(dropped) > _train_over_val(plain) + 0.3, (dropped, plain)


def test_a_model_that_cannot_turn_dropout_off_is_refused(tmp_path):
  with pytest.raises(ConfigError, match=r"draws random numbers \(dropout\), but its __call__ "
                     r"takes no train argument .* write `def __call__\(self, x, \*, train: bool\)`"):
    jaxdl.train(BASE, tmp_path / "a", [*FAST, "data.image_size=0"], model=NoFlagWithDropout)
  assert not (tmp_path / "a" / "metrics.jsonl").exists()
  assert jaxdl.train(BASE, tmp_path / "b", LEARN, model=NoFlagPlain)["test_accuracy"] > 0.85


@pytest.mark.parametrize("model, message", [
    (ThreeLogits, r"returns 3 logits per example for a batch of 2, but .* has 10 classes"),
    (OneOutput, r"returns outputs of shape \[2\] for a batch of 2, but .* has 10 classes")])
def test_outputs_that_do_not_fit_the_classes_are_refused(tmp_path, model, message):
  with pytest.raises(ConfigError, match=message):
    jaxdl.train(BASE, tmp_path, [*FAST, "data.image_size=0"], model=model)


class ShortTable(nn.Module):
  """Its table size comes from a field jaxdl does not know (``n_words``)."""

  n_words: int = 50
  num_classes: int = 2

  @nn.compact
  def __call__(self, tokens, *, train: bool):
    del train
    return nn.Dense(self.num_classes)(nn.Embed(self.n_words, 8)(tokens).mean(1))


class WithPositions(nn.Module):
  @nn.compact
  def __call__(self, tokens):
    words = nn.Embed(100, 8, name="words")(tokens)
    where = nn.Embed(tokens.shape[1], 8, name="positions")(jnp.arange(tokens.shape[1]))
    return (words + where[None]).sum((1, 2))


def test_the_embedding_is_found_by_what_the_tokens_index():
  tokens = np.ones((2, 6), np.int32)
  model = WithPositions()
  params = init(model, jax.random.key(0), tokens)["params"]
  rows = embedding_rows(lambda p, x: model.apply({"params": p}, x), params, tokens)
  assert rows == [100]  # The positions' table (6 rows) is indexed by arange, not by tokens.


def _sentences(data_config):
  rng = np.random.default_rng(0)
  tokens = rng.integers(1, 200, (120, 10)).astype(np.int32)
  return {"train": {"inputs": tokens, "label": rng.integers(0, 2, 120),
                    "lengths": np.full(120, 10, np.int32)}}


def test_token_ids_past_the_embedding_table_are_refused(tmp_path):
  with pytest.raises(ConfigError, match=r"embedding table has 50 rows, but the data's token ids "
                     r"go up to 199 \(vocab_size 200\)"):
    jaxdl.train(BASE, tmp_path, FAST, model=ShortTable, data=_sentences)


def _string_labels(data_config):
  rng = np.random.default_rng(0)
  x = rng.normal(0, 1, (200, 4)).astype(np.float32)
  names = np.where(x[:, 0] > 0, "subjective", "objective")
  return {"train": (x, names), "test": (x[:40], names[:40])}


def test_string_labels_become_classes_with_their_names(tmp_path):
  results = jaxdl.train(BASE, tmp_path, [*LEARN[:-1], "num_epochs=30"], model=_Linear2,
                        data=_string_labels)
  run = jaxdl.load_run(tmp_path, model=_Linear2, data=_string_labels)
  assert run.spec.class_names == ("objective", "subjective") and run.spec.num_classes == 2
  assert any("string labels as classes 0..1: objective, subjective" in n
             for n in results["data_notes"])
  assert results["test_accuracy"] > 0.8


class _Linear2(nn.Module):
  num_classes: int = 2

  @nn.compact
  def __call__(self, x, *, train: bool):
    del train
    return nn.Dense(self.num_classes)(x)


def test_a_test_label_train_never_had_is_refused(tmp_path):
  def data(cfg):
    found = _string_labels(cfg)
    x, names = found["test"]
    return {**found, "test": (x, np.where(names == "subjective", "neutral", names))}

  with pytest.raises(DataError, match="label 'neutral' is not among the training labels "
                     r"\(objective, subjective\)"):
    jaxdl.train(BASE, tmp_path, FAST, model=_Linear2, data=data)


def _whole_floats(data_config):
  rng = np.random.default_rng(0)
  x = rng.normal(0, 1, (200, 4)).astype(np.float32)
  return {"train": (x, (x[:, 0] > 0).astype(np.float64))}


def test_whole_float_labels_are_regression_with_a_note_or_classes_when_asked(tmp_path):
  regression = jaxdl.train(BASE, tmp_path / "r", FAST, model=_Linear1, data=_whole_floats)
  assert regression["test_accuracy"] is None and "test_mse" in regression
  assert any("set data.task=classification" in n for n in regression["data_notes"])
  classes = jaxdl.train(BASE, tmp_path / "c", [*FAST, "data.task=classification"],
                        model=_Linear2, data=_whole_floats)
  assert classes["test_accuracy"] is not None


class _Linear1(nn.Module):
  @nn.compact
  def __call__(self, x, *, train: bool):
    del train
    return nn.Dense(1)(x)


def test_raw_strings_as_inputs_point_to_textfile(tmp_path):
  def data(cfg):
    return {"train": (np.array(["a good film", "a bad film"] * 20), np.arange(40) % 2)}

  with pytest.raises(DataError, match=r"inputs are strings \(e.g. 'a good film'\); .* "
                     "data.name=textfile:FOLDER, which tokenises them"):
    jaxdl.train(BASE, tmp_path, FAST, model=_Linear2, data=data)


def test_a_task_the_labels_contradict_is_refused(tmp_path):
  with pytest.raises(ConfigError, match="data.task=regression, but .* gives classification"):
    jaxdl.train(BASE, tmp_path, [*FAST, "data.task=regression"])
