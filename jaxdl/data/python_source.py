"""``py:PKG.MODULE:ATTR``: a researcher's own data, from a function that returns arrays.

The function takes ``config.data`` and returns a mapping of splits::

  def my_data(data_config):
    x, y = ...                       # e.g. read a CSV or an NPZ file
    return {"train": (x, y)}         # or {"train": {"inputs": x, "label": y, "lengths": n}, ...}

``train`` is required; ``val`` (or ``validation``/``dev``) and ``test`` are
optional and held out of train as for every source (``data.val_fraction``,
``data.test_fraction`` or ``data.folds``, with ``data.split_seed``). Entries
besides ``inputs`` and ``label`` are per-example arrays passed to the model by
keyword. An optional ``meta`` entry may give ``class_names``, ``num_classes``,
``vocab_size`` and ``notes``. The DataSpec is inferred: integer labels mean
classification, float labels regression (``data.task`` decides otherwise: floats that
are all whole numbers can be classes), string labels are classes (ids in sorted order,
their names kept); integer inputs are token ids (``vocab_size`` = the largest id + 1
unless given); uint8 images are scaled to [0, 1]. Raw strings as inputs are refused with
a pointer to ``textfile:`` (which tokenises) or to returning token ids.
"""

from collections.abc import Callable, Mapping
from typing import Any

import ml_collections
import numpy as np

from jaxdl import parts
from jaxdl.data.arrays import (Scaling, Split, check_labels, check_split_sizes, hold_out_test,
                               refuse_folds, split_indices)
from jaxdl.data.spec import DataSpec, Datasets
from jaxdl.errors import DataError

PREFIX = "py:"
TASKS = ("auto", "classification", "regression")
_VAL_NAMES = ("val", "validation", "dev")


def _as_split(name: str, value: Any, where: str) -> dict[str, np.ndarray]:
  if isinstance(value, tuple) and len(value) == 2:
    value = {"inputs": value[0], "label": value[1]}
  if not isinstance(value, Mapping) or "inputs" not in value or "label" not in value:
    raise DataError(f"{where}: split {name!r} must be (inputs, labels) or a dict with 'inputs' "
                    f"and 'label' (and per-example extras), got {type(value).__name__}")
  arrays = {k: np.asarray(v) for k, v in value.items()}
  if arrays["label"].ndim == 0:
    raise DataError(f"{where}: split {name!r} has a single label; give one per example")
  n = len(arrays["label"])
  for key, array in arrays.items():
    if array.ndim == 0 or len(array) != n:
      raise DataError(f"{where}: split {name!r} has {n} labels but {key!r} has shape "
                      f"{array.shape}; every entry needs one row per example")
  if n == 0:
    raise DataError(f"{where}: split {name!r} is empty")
  return arrays


def _is_text(array: np.ndarray) -> bool:
  return array.dtype.kind in "US" or (array.dtype.kind == "O" and array.size > 0
                                       and isinstance(array.flat[0], str))


def _task(labels: np.ndarray, chosen: str, where: str) -> tuple[str, tuple[str, ...], list[str]]:
  """(task, class names of string labels, notes) from the training labels and ``data.task``."""
  if chosen not in TASKS:
    raise DataError(f"data.task must be one of {', '.join(TASKS)}, got {chosen!r}")
  if _is_text(labels):
    if chosen == "regression":
      raise DataError(f"{where}: data.task=regression, but the labels are strings (e.g. "
                      f"{labels[0]!r}); regression needs numbers")
    names = tuple(sorted({str(v) for v in labels}))
    return "classification", names, [f"string labels as classes 0..{len(names) - 1}: "
                                     f"{', '.join(names[:10])}{', ...' if len(names) > 10 else ''}"]
  integers = np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool
  if chosen != "auto":
    return chosen, (), []
  if integers:
    return "classification", (), []
  whole = np.issubdtype(labels.dtype, np.number) and np.array_equal(labels, np.round(labels))
  note = (["float labels that are all whole numbers (e.g. "
           f"{', '.join(map(str, np.unique(labels)[:3].tolist()))}) are trained as regression "
           "targets; set data.task=classification to treat them as classes"] if whole else [])
  return "regression", (), note


def _class_ids(labels: np.ndarray, names: tuple[str, ...], where: str) -> np.ndarray:
  ids = {name: i for i, name in enumerate(names)}
  unknown = [str(v) for v in labels if str(v) not in ids]
  if unknown:
    raise DataError(f"{where}: label {unknown[0]!r} is not among the training labels "
                    f"({', '.join(names[:10])})")
  return np.asarray([ids[str(v)] for v in labels], np.int32)


def _convert(arrays: dict[str, np.ndarray], task: str, num_classes: int, where: str,
             class_names: tuple[str, ...] = ()) -> Split:
  inputs, scaling = arrays["inputs"], None
  if _is_text(inputs):
    raise DataError(f"{where}: inputs are strings (e.g. {str(inputs.flat[0])[:40]!r}); a model "
                    "takes numbers: return token ids (and 'lengths'), or read the texts with "
                    "data.name=textfile:FOLDER, which tokenises them")
  if inputs.dtype == np.uint8:  # Pixels: stored as they are, scaled to [0, 1] a batch at a time.
    scaling = Scaling(255.0)
  elif np.issubdtype(inputs.dtype, np.integer):
    inputs = inputs.astype(np.int32)
  elif np.issubdtype(inputs.dtype, np.floating) or inputs.dtype == bool:
    inputs = inputs.astype(np.float32)
  else:
    raise DataError(f"{where}: inputs must be numbers, got dtype {inputs.dtype}")
  if task == "classification" and class_names:
    label = _class_ids(arrays["label"], class_names, f"{where} labels")
  elif task == "classification":
    label = check_labels(arrays["label"], num_classes, f"{where} labels")
  else:
    label = arrays["label"].astype(np.float32)
    if label.ndim != 1:
      raise DataError(f"{where}: regression targets must be one number per example, got shape "
                      f"{label.shape}")
  extra = {k: v for k, v in arrays.items() if k not in ("inputs", "label")}
  return Split(inputs, label, extra, scaling)


def _call(source: Callable, cfg: ml_collections.ConfigDict) -> Mapping[str, Any]:
  """The user's function's splits, checked for their names; its failures in one line."""
  where = cfg.name
  try:
    returned = source(cfg)
  except DataError:
    raise
  except Exception as e:  # The user's function: one line naming it and what it raised.
    raise DataError(f"{where}: the data function failed: {type(e).__name__}: {e}") from e
  if not isinstance(returned, Mapping) or "train" not in returned:
    raise DataError(f"{where}: the data function must return a dict of splits with at least "
                    f"'train', got {type(returned).__name__}")
  unknown = set(returned) - {"train", "test", "meta", *_VAL_NAMES}
  if unknown:
    raise DataError(f"{where}: unknown split {sorted(unknown)[0]!r}; name splits train, val "
                    "(or validation/dev) and test")
  return returned


def build_python_data(cfg: ml_collections.ConfigDict,
                      source: Callable[[ml_collections.ConfigDict], Any] | None = None,
                      experiment: str = "") -> Datasets:
  """The splits a user's function returns, with test and validation held out where absent.

  Args:
    cfg: ``config.data`` (``name`` is ``py:PKG.MODULE:ATTR`` or names the object).
    source: the function itself, where the API was given one.
    experiment: the experiment file, whose folder resolves the import path.
  """
  where = cfg.name
  if source is None:
    source = parts.import_object(cfg.name[len(PREFIX):], experiment, "data")
  returned = _call(source, cfg)
  meta = dict(returned.get("meta", {}))
  raw = {name: _as_split(name, value, where) for name, value in returned.items()
         if name != "meta"}
  val_name = next((v for v in _VAL_NAMES if v in raw), None)
  labels = raw["train"]["label"]
  task, class_names, notes = _task(labels, cfg.task, where)
  meta = {**meta, "notes": [*meta.get("notes", ()), *notes]}
  if class_names:
    meta["class_names"] = class_names
  num_classes = (cfg.num_classes or meta.get("num_classes") or
                 (len(class_names) if class_names else int(np.max(labels)) + 1)
                 if task == "classification" else 0)
  splits = {name: _convert(arrays, task, num_classes, f"{where} {name}", class_names)
            for name, arrays in raw.items()}
  return _assemble(cfg, splits, val_name, task, num_classes, meta)


def _check_same_inputs(where: str, train: Split, others: dict[str, Split]) -> None:
  for name, split in others.items():
    if split.inputs.shape[1:] != train.inputs.shape[1:] or split.inputs.dtype != train.inputs.dtype:
      raise DataError(f"{where}: {name} inputs are {split.inputs.dtype}{list(split.inputs.shape[1:])}"
                      f" but train inputs are {train.inputs.dtype}{list(train.inputs.shape[1:])}")


def _assemble(cfg, splits: dict[str, Split], val_name: str | None, task: str, num_classes: int,
              meta: dict) -> Datasets:
  where, notes = cfg.name, [f"the data function {cfg.name}", *meta.get("notes", ())]
  train = splits["train"]
  stratify = train.label if task == "classification" else None
  if task == "classification" and len(np.unique(train.label)) < 2:
    raise DataError(f"{where}: the training labels hold one class only ({int(train.label[0])}); "
                    "a classifier needs examples of at least two classes")
  if "test" in splits:
    refuse_folds(cfg, where)
    test = splits["test"]
  else:
    keep, held, note = hold_out_test(stratify if stratify is not None else
                                     np.zeros(len(train), np.int32), cfg, where)
    train, test = train.take(keep), train.take(held)
    notes.append(note)
  if val_name:
    val = splits[val_name]
    notes.append(f"validation set: the function's {val_name!r} split")
  else:
    keep, held = split_indices(len(train), cfg.val_fraction, [cfg.split_seed, 1],
                               train.label if task == "classification" else None, "validation")
    train, val = train.take(keep), train.take(held)
  check_split_sizes(where, len(train), len(test))
  _check_same_inputs(where, train, {"val": val, "test": test})
  tokens = train.scaling is None and np.issubdtype(train.inputs.dtype, np.integer)
  vocab = meta.get("vocab_size") or (int(max(s.inputs.max() for s in (train, val, test)
                                             if len(s))) + 1 if tokens else 0)
  spec = DataSpec(name=where, task=task, input_shape=tuple(train.inputs.shape[1:]),
                  input_dtype="float32" if train.scaling else str(train.inputs.dtype),
                  num_classes=num_classes,
                  num_train=len(train), num_val=len(val), num_test=len(test), notes=tuple(notes),
                  vocab_size=vocab, class_names=tuple(meta.get("class_names", ())))
  return Datasets(train, val, test, spec)
