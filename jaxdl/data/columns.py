"""Columns: one per-example field of a split, held in memory or read on demand.

A column has ``len()``, ``shape`` (its leading axis counts examples), ``dtype``
and ``column[index]``, which for an integer array ``index`` returns the stacked
examples. NumPy arrays are columns. A ``LazyColumn`` reads its examples
from files when indexed (ArrayRecord records, image files), so a split larger
than memory costs only its index; ``take`` selects examples of either kind
without reading them.
"""

import os
from collections.abc import Sequence

import numpy as np

from jaxdl.errors import DataError


class LazyColumn:
  """Examples read on demand; a subclass implements ``read`` (one example).

  Subclasses must be picklable (Grain's worker processes receive them), so
  they hold paths, not open files; one that reads through a reader implements
  ``open``, and :attr:`source` opens it once per process.

  Args:
    length: the number of examples.
    example_shape: one example's shape.
    dtype: the examples' NumPy dtype.
  """

  def __init__(self, length: int, example_shape: Sequence[int], dtype):
    self.length, self.example_shape, self.dtype = length, tuple(example_shape), np.dtype(dtype)
    self.reads = 0  # Examples read by this process (tests check who reads what).
    self._source = None

  def open(self):
    """The reader of a column that reads through one (a data source), opened on first use."""
    raise NotImplementedError

  @property
  def source(self):
    if self._source is None:
      self._source = self.open()
    return self._source

  def __getstate__(self):  # Picklable for Grain's workers: each opens its own reader.
    return {**self.__dict__, "_source": None}

  def read(self, i: int) -> np.ndarray:
    """Example ``i`` as ``<dtype>[*example_shape]`` (raise DataError naming the record)."""
    raise NotImplementedError

  def read_many(self, indices: np.ndarray) -> np.ndarray:
    """Examples ``indices`` stacked; override where a batched read is faster."""
    out = np.empty((len(indices), *self.example_shape), self.dtype)
    for row, i in enumerate(indices):
      out[row] = self.checked(int(i))
    return out

  def checked(self, i: int) -> np.ndarray:
    value = np.asarray(self.read(i))
    if value.shape != self.example_shape:
      raise DataError(f"{self.describe(i)} has shape {value.shape}, but the data's examples are "
                      f"{self.example_shape}; set data.image_size to resize, or fix the record")
    return value

  def describe(self, i: int) -> str:
    """Where example ``i`` lives, for errors (a file name, a record number)."""
    return f"example {i}"

  @property
  def shape(self) -> tuple[int, ...]:
    return (self.length, *self.example_shape)

  def __len__(self) -> int:
    return self.length

  def __getitem__(self, index):
    if isinstance(index, (int, np.integer)):
      return self.checked(int(index) % self.length)
    if isinstance(index, slice):
      index = np.arange(self.length)[index]
    return self.read_many(np.asarray(index, np.int64))


class IndexedColumn(LazyColumn):
  """The examples ``index`` of a lazy column, without reading them."""

  def __init__(self, base: LazyColumn, index: np.ndarray):
    super().__init__(len(index), base.example_shape, base.dtype)
    self.base, self.index = base, np.asarray(index, np.int64)

  def read(self, i: int) -> np.ndarray:
    return self.base.read(int(self.index[i]))

  def read_many(self, indices: np.ndarray) -> np.ndarray:
    return self.base.read_many(self.index[indices])

  def describe(self, i: int) -> str:
    return self.base.describe(int(self.index[i]))


def take(column, index: np.ndarray):
  """The examples ``index`` of ``column``: copied from memory, or a view of a lazy column."""
  if isinstance(column, IndexedColumn):
    return IndexedColumn(column.base, column.index[index])
  if isinstance(column, LazyColumn):
    return IndexedColumn(column, index)
  return column[index]


def is_lazy(column) -> bool:
  return isinstance(column, LazyColumn)


def read_rows(column, index: np.ndarray, skip_bad: bool) -> tuple[np.ndarray, np.ndarray]:
  """``column[index]`` and a ``<bool>[len(index)]`` of examples that failed to read.

  With ``skip_bad`` an example that raises DataError comes back as zeros and
  is flagged (the caller masks it out and counts it); without, the error
  (which names the file or record) propagates.
  """
  bad = np.zeros(len(index), bool)
  if not skip_bad or not is_lazy(column):
    return column[index], bad
  try:
    return column[index], bad
  except DataError:  # Find the bad ones one by one; the rest of the batch stays.
    out = np.zeros((len(index), *column.example_shape), column.dtype)
    for row, i in enumerate(index):
      try:
        out[row] = column[int(i)]
      except DataError:
        bad[row] = True
    return out, bad


class ConcatColumn(LazyColumn):
  """Two columns one after the other (a source's train and val splits), unread."""

  def __init__(self, first, second):
    if first.shape[1:] != second.shape[1:] or first.dtype != second.dtype:
      raise DataError(f"cannot join examples {first.dtype}{list(first.shape[1:])} and "
                      f"{second.dtype}{list(second.shape[1:])}; the splits must match")
    super().__init__(len(first) + len(second), first.shape[1:], first.dtype)
    self.first, self.second = first, second

  def read(self, i: int) -> np.ndarray:
    n = len(self.first)
    return np.asarray(self.first[i] if i < n else self.second[i - n])

  def read_many(self, indices: np.ndarray) -> np.ndarray:
    n = len(self.first)
    out = np.empty((len(indices), *self.example_shape), self.dtype)
    low = indices < n
    if low.any():
      out[low] = self.first[indices[low]]
    if (~low).any():
      out[~low] = self.second[indices[~low] - n]
    return out

  def describe(self, i: int) -> str:
    n = len(self.first)
    part, j = (self.first, i) if i < n else (self.second, i - n)
    return part.describe(j) if is_lazy(part) else f"example {j}"


def concat(first, second):
  """``first`` then ``second``: concatenated in memory, or joined lazily if either is lazy."""
  if is_lazy(first) or is_lazy(second):
    return ConcatColumn(first, second)
  return np.concatenate([first, second])


def materialize(column, chunk: int = 4096) -> np.ndarray:
  """A lazy column read whole into memory (a NumPy array is returned as it is)."""
  if not is_lazy(column):
    return column
  out = np.empty(column.shape, column.dtype)
  for start in range(0, len(column), chunk):
    stop = min(start + chunk, len(column))
    out[start:stop] = column[np.arange(start, stop)]
  return out


def nbytes(column) -> int:
  """The bytes ``column`` takes (or would take) in memory."""
  return int(np.prod(column.shape)) * np.dtype(column.dtype).itemsize


IN_MEMORY_SETTINGS = ("auto", "yes", "no")
# 'auto' reads a split into memory up to this many bytes (and a quarter of the free memory):
# reading from memory is faster, and below this size it costs little (docs/benchmarks.md).
AUTO_IN_MEMORY_BYTES = 2 << 30


def keep_in_memory(setting: str, size: int) -> bool:
  """Whether inputs of ``size`` bytes are read whole (``data.in_memory``: auto, yes or no)."""
  if setting not in IN_MEMORY_SETTINGS:
    raise DataError(f"data.in_memory={setting!r} must be one of {IN_MEMORY_SETTINGS}")
  if setting != "auto":
    return setting == "yes"
  return size <= min(AUTO_IN_MEMORY_BYTES, _available_memory() // 4)


def _available_memory() -> int:
  try:  # Free physical memory (POSIX); elsewhere assume the limit fits.
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
  except (AttributeError, ValueError, OSError):
    return 4 * AUTO_IN_MEMORY_BYTES
