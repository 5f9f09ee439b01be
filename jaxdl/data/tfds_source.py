"""TFDS datasets read through ``tfds.data_source`` (no TensorFlow needed once prepared)."""

from typing import Any

import numpy as np

from jaxdl.data.columns import LazyColumn, keep_in_memory
from jaxdl.errors import DataError

_PREPARE_HINT = ("prepare it once on a machine with internet: pip install -e '.[tf]' && "
                 "tfds build {name} --file_format=array_record{data_dir_flag}; or set "
                 "data.download=true")


def _open(name: str, split: str, data_dir: str, download: bool):
  import tensorflow_datasets as tfds  # Imported here: slow, and only this source needs it.

  try:
    return tfds.data_source(name, split=split, data_dir=data_dir or None, download=download)
  except Exception as e:  # TFDS raises many types for a missing or unbuilt dataset.
    data_dir_flag = f" --data_dir={data_dir}" if data_dir else ""
    hint = _PREPARE_HINT.format(name=name, data_dir_flag=data_dir_flag)
    raise DataError(f"TFDS dataset {name!r} split {split!r} is not available "
                    f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                    f"{hint}") from e


def _opened(name: str, split: str, data_dir: str, download: bool, feature_keys: tuple[str, ...]):
  """The split's data source and its first record, checked for ``feature_keys``."""
  source = _open(name, split, data_dir, download)
  if len(source) == 0:
    raise DataError(f"TFDS dataset {name!r} split {split!r} is empty")
  first = source[0]
  missing = [k for k in feature_keys if k not in first]
  if missing:
    raise DataError(f"TFDS dataset {name!r} has no feature {missing[0]!r}; its features are "
                    f"{', '.join(sorted(first))} (set data.image_key / data.label_key)")
  return source, first


class TfdsColumn(LazyColumn):
  """One feature of a TFDS split, read (and decoded) record by record through ``tfds.data_source``."""

  def __init__(self, name: str, split: str, data_dir: str, key: str, length: int,
               example_shape, dtype):
    super().__init__(length, example_shape, dtype)
    self.name, self.split, self.data_dir, self.key = name, split, data_dir, key

  def open(self):
    return _open(self.name, self.split, self.data_dir, False)

  def read(self, i: int) -> np.ndarray:
    self.reads += 1
    return np.asarray(self.source[i][self.key])

  def read_many(self, indices: np.ndarray) -> np.ndarray:
    self.reads += len(indices)
    records = _read(self.source, [int(i) for i in indices])
    return np.stack([np.asarray(r[self.key]) for r in records]).reshape(-1, *self.example_shape)

  def describe(self, i: int) -> str:
    return f"TFDS {self.name} split {self.split!r} record {i}"


def open_split(name: str, split: str, data_dir: str, download: bool, image_key: str,
               label_key: str, in_memory: str, chunk: int = 4096) -> tuple[Any, np.ndarray]:
  """A split's images (in memory, or a ``TfdsColumn``) and its labels.

  ``in_memory`` (``data.in_memory``) decides from the images' size; the
  labels are read now either way (records are decoded whole, so this reads
  every image once, keeping none).
  """
  source, first = _opened(name, split, data_dir, download, (image_key, label_key))
  image = np.asarray(first[image_key])
  if keep_in_memory(in_memory, image.nbytes * len(source)):
    columns = _read_columns(source, (image_key, label_key), chunk)
    return columns[image_key], columns[label_key]
  labels = _read_columns(source, (label_key,), chunk)[label_key]
  column = TfdsColumn(name, split, data_dir, image_key, len(source), image.shape, image.dtype)
  return column, labels


def load_split(name: str, split: str, data_dir: str, download: bool, feature_keys: tuple[str, ...],
               chunk: int = 4096) -> dict[str, np.ndarray]:
  """Reads a whole split into memory as ``{feature_key: array}``."""
  source, _ = _opened(name, split, data_dir, download, feature_keys)
  return _read_columns(source, feature_keys, chunk)


def _read_columns(source, feature_keys: tuple[str, ...], chunk: int) -> dict[str, np.ndarray]:
  """Every record of an opened split, ``chunk`` at a time, as ``{feature_key: array}``."""
  columns = {k: [] for k in feature_keys}
  for start in range(0, len(source), chunk):
    records = _read(source, list(range(start, min(start + chunk, len(source)))))
    for k in feature_keys:
      columns[k].append(np.stack([np.asarray(r[k]) for r in records]))
  return {k: np.concatenate(v) for k, v in columns.items()}


def _read(source, keys: list[int]) -> list:
  try:
    return source.__getitems__(keys)  # One batched read from the array_record files.
  except TypeError:
    # tfds.testing.mock_data patches the reader in a way that breaks batched
    # reads (TFDS 4.9.10); fall back to one record at a time.
    return [source[k] for k in keys]


def num_classes(name: str, label_key: str, data_dir: str) -> int:
  """The number of classes TFDS declares for ``label_key`` (0 if it declares none)."""
  import tensorflow_datasets as tfds

  try:
    feature = tfds.builder(name, data_dir=data_dir or None).info.features[label_key]
  except Exception:  # Builder metadata unavailable: fall back to the labels seen.
    return 0
  return int(getattr(feature, "num_classes", 0) or 0)


def is_text(name: str, split: str, data_dir: str, download: bool, text_key: str) -> bool:
  """Whether the dataset's ``text_key`` feature holds strings (a text dataset)."""
  source = _open(name, split, data_dir, download)
  if len(source) == 0:
    return False
  value = source[0].get(text_key)
  return isinstance(value, (bytes, str)) or (
      isinstance(value, np.ndarray) and value.dtype.kind in "SUO")
