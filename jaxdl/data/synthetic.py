"""Long-range synthetic tasks that test whether a recurrent network can remember.

All are generated deterministically from ``data.split_seed``, for any length T:

* ``adding`` (Hochreiter & Schmidhuber 1997; the setup of Le et al. 2015): each
  step is a pair (value ~ U[0, 1], marker); exactly two markers are 1, one in
  each half of the sequence; the target is the sum of the two marked values.
  Always predicting 1 gives MSE = Var(u1 + u2) = 1/6 = 0.167: the baseline.
* ``memory`` (a one-output form of the copy task): the first step shows one of
  ``data.num_symbols`` symbols (one-hot), the remaining T - 1 steps are blank
  but for a recall marker at the last step; the label is the first symbol.
  Chance accuracy is 1 / num_symbols.
* ``seq_digits`` (pixel-by-pixel digits, after Le et al. 2015's sequential
  MNIST): scikit-learn's 8x8 digits read as a length-64 sequence of pixels in
  [0, 1]; ``data.permute`` applies one fixed random permutation of the pixels.
"""

import dataclasses
from collections.abc import Callable

import ml_collections
import numpy as np

from jaxdl.data.arrays import Split, check_split_sizes, hold_out_test, refuse_folds, split_indices
from jaxdl.data.spec import DataSpec, Datasets
from jaxdl.errors import DataError

ADDING_BASELINE_MSE = 1.0 / 6.0


@dataclasses.dataclass(frozen=True)
class Generated:
  """A synthetic task's sequences: inputs ``<float32>[n, T, features]``, their labels."""

  inputs: np.ndarray
  labels: np.ndarray
  task: str  # 'classification' or 'regression'.
  num_classes: int  # 0 for regression.
  note: str  # What the task is and its baseline, for the run's notes.


# (data_config, rng, n) -> n sequences of the task.
Generator = Callable[[ml_collections.ConfigDict, np.random.Generator, int], Generated]


def adding_problem(n: int, length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """``<float32>[n, length, 2]`` (value, marker) sequences and ``<float32>[n]`` targets."""
  if length < 2:
    raise DataError(f"the adding problem needs data.seq_len >= 2, got {length}")
  values = rng.uniform(0.0, 1.0, (n, length)).astype(np.float32)
  half = length // 2
  first = rng.integers(0, half, n)
  second = rng.integers(half, length, n)
  markers = np.zeros((n, length), np.float32)
  markers[np.arange(n), first] = 1.0
  markers[np.arange(n), second] = 1.0
  targets = values[np.arange(n), first] + values[np.arange(n), second]
  return np.stack([values, markers], axis=-1), targets.astype(np.float32)


def memory_task(n: int, length: int, num_symbols: int,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """``<float32>[n, length, num_symbols + 1]`` sequences and ``<int32>[n]`` labels."""
  if length < 2 or num_symbols < 2:
    raise DataError("the memory task needs data.seq_len >= 2 and data.num_symbols >= 2")
  labels = rng.integers(0, num_symbols, n).astype(np.int32)
  x = np.zeros((n, length, num_symbols + 1), np.float32)
  x[np.arange(n), 0, labels] = 1.0
  x[:, -1, num_symbols] = 1.0  # The recall marker.
  return x, labels


def _seq_digits(cfg: ml_collections.ConfigDict) -> tuple[np.ndarray, np.ndarray, list[str]]:
  from sklearn.datasets import load_digits

  digits = load_digits()
  x = (digits.images.reshape(len(digits.images), 64, 1) / 16.0).astype(np.float32)
  notes = ["scikit-learn's 8x8 digits read pixel by pixel (length-64 sequences)"]
  if cfg.permute:
    perm = np.random.default_rng([cfg.split_seed, 2]).permutation(64)
    x = x[:, perm]
    notes.append(f"pixels permuted by one fixed permutation (data.split_seed={cfg.split_seed})")
  return x, digits.target.astype(np.int32), notes


def adding(cfg: ml_collections.ConfigDict, rng: np.random.Generator, n: int) -> Generated:
  """``n`` adding-problem sequences of ``data.seq_len`` steps (``adding``)."""
  x, y = adding_problem(n, cfg.seq_len, rng)
  return Generated(x, y, "regression", 0, f"adding problem, T={cfg.seq_len}: predicting 1 "
                   f"always gives MSE {ADDING_BASELINE_MSE:.3f}")


def memory(cfg: ml_collections.ConfigDict, rng: np.random.Generator, n: int) -> Generated:
  """``n`` recall sequences of ``data.seq_len`` steps (``memory``)."""
  x, y = memory_task(n, cfg.seq_len, cfg.num_symbols, rng)
  return Generated(x, y, "classification", cfg.num_symbols,
                   f"memory task, T={cfg.seq_len}, {cfg.num_symbols} symbols: chance accuracy "
                   f"{1 / cfg.num_symbols:.3f}")


def build_generated_data(cfg: ml_collections.ConfigDict, generate: Generator) -> Datasets:
  """``data.num_train`` training and ``data.num_test`` test sequences from ``generate``
  (``adding``, ``memory``), drawn from ``data.split_seed``."""
  rng = np.random.default_rng([cfg.split_seed, 3])
  refuse_folds(cfg, f"{cfg.name} (generated with its own test sequences)")
  n_train, n_test = cfg.num_train, cfg.num_test
  if n_train < 2 or n_test < 1:
    raise DataError(f"{cfg.name}: data.num_train ({n_train}) and data.num_test ({n_test}) "
                    "must be positive")
  made = generate(cfg, rng, n_train + n_test)
  train_all = Split(made.inputs[:n_train], made.labels[:n_train])
  test = Split(made.inputs[n_train:], made.labels[n_train:])
  notes = [made.note, f"{n_train} training and {n_test} test sequences generated from "
                      f"data.split_seed={cfg.split_seed}"]
  return _datasets(cfg, train_all, test, made.task, made.num_classes, notes)


def build_seq_digits_data(cfg: ml_collections.ConfigDict) -> Datasets:
  """The digits pixel by pixel (``seq_digits``), test held out as for any labelled set."""
  x, y, notes = _seq_digits(cfg)
  keep, held, note = hold_out_test(y, cfg, cfg.name)
  return _datasets(cfg, Split(x[keep], y[keep]), Split(x[held], y[held]), "classification",
                   10, [*notes, note])


def _datasets(cfg: ml_collections.ConfigDict, train_all: Split, test: Split, task: str,
              num_classes: int, notes: list[str]) -> Datasets:
  """Validation held out of ``train_all`` (stratified for classes), and the spec."""
  keep, held = split_indices(len(train_all), cfg.val_fraction, [cfg.split_seed, 1],
                             train_all.label if task == "classification" else None, "validation")
  check_split_sizes(cfg.name, len(keep), len(test))
  spec = DataSpec(name=cfg.name, task=task, input_shape=tuple(train_all.inputs.shape[1:]),
                  input_dtype="float32", num_classes=num_classes, num_train=len(keep),
                  num_val=len(held), num_test=len(test), notes=tuple(notes))
  return Datasets(train_all.take(keep), train_all.take(held), test, spec)
