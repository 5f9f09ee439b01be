"""ArrayRecord datasets: ``data.name = 'arrayrecord:<folder>'``, read one example at a time.

A folder holds, per split (``train``, optionally ``val`` and ``test``)::

  <split>-00000-of-00004.array_record  # one record per example: its inputs' raw bytes
  <split>-label.npy                    # <int32>[n] labels (kept in memory: small)
  <split>-<extra>.npy                  # optional per-example extras (e.g. lengths)
  info.json                            # shapes, dtypes, counts, classes

Inputs are read on demand through Grain's ``ArrayRecordDataSource`` (random
access, batched reads), so a split larger than memory costs only its labels;
``data.in_memory`` decides whether a split is read whole instead (sources.py).
``Writer`` makes such a folder from batches of NumPy arrays, so a dataset
that does not fit in memory can be written a part at a time.
"""

import json
import pathlib
from collections.abc import Mapping

import numpy as np

from jaxdl.data.columns import LazyColumn
from jaxdl.errors import DataError

FORMAT = "jaxdl-arrayrecord-1"
INFO = "info.json"
SPLITS = ("train", "val", "test")


class ArrayRecordColumn(LazyColumn):
  """Examples stored as raw bytes, one record each, in ArrayRecord files.

  Args:
    paths: the split's shard files, in order.
    length: the number of records in all of them.
    example_shape, dtype: one example's shape and dtype.
  """

  def __init__(self, paths: list[str], length: int, example_shape, dtype):
    super().__init__(length, example_shape, dtype)
    self.paths = [str(p) for p in paths]

  def open(self):
    import grain  # Imported here: in-memory data needs none of it.

    return grain.sources.ArrayRecordDataSource(self.paths)

  def read(self, i: int) -> np.ndarray:
    self.reads += 1
    return self._decode(self.source[i], i)

  def read_many(self, indices: np.ndarray) -> np.ndarray:
    self.reads += len(indices)
    records = self.source.__getitems__([int(i) for i in indices])  # One batched read.
    out = np.empty((len(indices), *self.example_shape), self.dtype)
    for row, (i, record) in enumerate(zip(indices, records)):
      out[row] = self._decode(record, int(i))
    return out

  def _decode(self, record: bytes, i: int) -> np.ndarray:
    expected = int(np.prod(self.example_shape)) * self.dtype.itemsize
    if len(record) != expected:
      raise DataError(f"{self.describe(i)} holds {len(record)} bytes, but a {self.dtype}"
                      f"{list(self.example_shape)} example takes {expected}; the file is damaged "
                      "or was written for other shapes: write the folder again")
    return np.frombuffer(record, self.dtype).reshape(self.example_shape)

  def describe(self, i: int) -> str:
    return f"record {i} of {pathlib.Path(self.paths[0]).parent} ({len(self.paths)} file(s))"


class Writer:
  """Writes an ArrayRecord dataset folder, a batch of examples at a time.

  ::

    with Writer(folder, num_classes=10) as writer:
      for images, labels in parts:
        writer.add("train", images, labels)

  Args:
    folder: where to write (created; an existing dataset there is refused).
    num_classes: classes of a classification task (0: count the labels).
    class_names: optional names, one per class.
    examples_per_file: records per ArrayRecord file.
  """

  def __init__(self, folder: str | pathlib.Path, num_classes: int = 0,
               class_names: tuple[str, ...] = (), examples_per_file: int = 100_000):
    self.folder = pathlib.Path(folder)
    if (self.folder / INFO).exists():
      raise DataError(f"{self.folder} already holds an ArrayRecord dataset; write to a new folder")
    self.folder.mkdir(parents=True, exist_ok=True)
    self.num_classes, self.class_names = num_classes, tuple(class_names)
    self.examples_per_file = examples_per_file
    self._splits: dict[str, dict] = {}

  def __enter__(self) -> "Writer":
    return self

  def __exit__(self, exc_type, *exc) -> None:
    self.close(write_info=exc_type is None)

  def add(self, split: str, inputs: np.ndarray, labels: np.ndarray,
          **extras: np.ndarray) -> None:
    """Appends examples to ``split``: ``inputs`` ``[n, ...]``, ``labels`` ``[n]``, extras ``[n, ...]``."""
    if split not in SPLITS:
      raise DataError(f"split {split!r} must be one of {SPLITS}")
    inputs, labels = np.ascontiguousarray(inputs), np.asarray(labels)
    state = self._splits.setdefault(split, {"shape": inputs.shape[1:], "dtype": inputs.dtype,
                                            "labels": [], "extras": {}, "count": 0,
                                            "files": [], "writer": None})
    if inputs.shape[1:] != state["shape"] or inputs.dtype != state["dtype"]:
      raise DataError(f"{split}: inputs {inputs.dtype}{list(inputs.shape[1:])} differ from the "
                      f"split's first ones, {state['dtype']}{list(state['shape'])}")
    if len(labels) != len(inputs) or any(len(v) != len(inputs) for v in extras.values()):
      raise DataError(f"{split}: inputs, labels and extras need one row per example")
    state["labels"].append(labels)
    for name, value in extras.items():
      state["extras"].setdefault(name, []).append(np.asarray(value))
    for example in inputs:
      self._writer(split, state).write(example.tobytes())
      state["count"] += 1

  def _writer(self, split: str, state: dict):
    if state["writer"] is None or state["count"] % self.examples_per_file == 0:
      from array_record.python.array_record_module import ArrayRecordWriter

      if state["writer"] is not None:
        state["writer"].close()
      path = self.folder / f"{split}-{len(state['files']):05d}.array_record"
      state["files"].append(path.name)
      state["writer"] = ArrayRecordWriter(str(path), "group_size:1")
    return state["writer"]

  def close(self, write_info: bool = True) -> None:
    """Closes the files and writes the labels and info.json (last: it marks the folder done)."""
    info = {"format": FORMAT, "num_classes": self.num_classes,
            "class_names": list(self.class_names), "splits": {}}
    for split, state in self._splits.items():
      if state["writer"] is not None:
        state["writer"].close()
        state["writer"] = None
      np.save(self.folder / f"{split}-label.npy", np.concatenate(state["labels"]))
      for name, parts in state["extras"].items():
        np.save(self.folder / f"{split}-{name}.npy", np.concatenate(parts))
      info["splits"][split] = {"files": state["files"], "num_examples": state["count"],
                               "shape": list(state["shape"]), "dtype": str(state["dtype"]),
                               "extras": sorted(state["extras"])}
    if write_info:
      (self.folder / INFO).write_text(json.dumps(info, indent=2))


def write(folder: str | pathlib.Path, splits: Mapping[str, tuple], **options) -> pathlib.Path:
  """Writes in-memory splits ``{name: (inputs, labels)}`` as an ArrayRecord folder."""
  with Writer(folder, **options) as writer:
    for name, (inputs, labels) in splits.items():
      writer.add(name, inputs, labels)
  return pathlib.Path(folder)


def read_info(folder: str | pathlib.Path) -> dict:
  folder = pathlib.Path(folder)
  path = folder / INFO
  if not path.exists():
    raise DataError(f"{folder} is not an ArrayRecord dataset (no {INFO}); write one with "
                    "jaxdl.data.arrayrecord.Writer, or check data.name=arrayrecord:<folder>")
  info = json.loads(path.read_text())
  if info.get("format") != FORMAT:
    raise DataError(f"{path}: format {info.get('format')!r} is not {FORMAT!r}")
  if "train" not in info["splits"]:
    raise DataError(f"{folder} has no train split (it has {sorted(info['splits'])})")
  return info


def load_splits(folder: str | pathlib.Path) -> tuple[dict[str, tuple], dict]:
  """``{split: (ArrayRecordColumn, labels, extras)}`` and the folder's info."""
  folder = pathlib.Path(folder)
  info = read_info(folder)
  splits = {}
  for split, entry in info["splits"].items():
    paths = [folder / name for name in entry["files"]]
    missing = [p for p in paths if not p.exists()]
    if missing:
      raise DataError(f"{missing[0]} is missing; the ArrayRecord folder {folder} is incomplete")
    column = ArrayRecordColumn(paths, entry["num_examples"], entry["shape"], entry["dtype"])
    if len(column.source) != entry["num_examples"]:
      raise DataError(f"{folder} {split}: {len(column.source)} records on disk but info.json "
                      f"says {entry['num_examples']}; write the folder again")
    labels = np.load(folder / f"{split}-label.npy")
    extras = {name: np.load(folder / f"{split}-{name}.npy") for name in entry.get("extras", ())}
    splits[split] = (column, labels, extras)
  return splits, info
