"""Facts found in the data that the model and the loop need."""

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # arrays.py imports nothing from here; the names are for annotations only.
  from jaxdl.data.arrays import Split


@dataclasses.dataclass(frozen=True)
class DataSpec:
  """What a dataset is, as found in the data (the config is never written to).

  Attributes:
    name: the ``config.data.name`` it was built from.
    task: 'classification' (integer labels) or 'regression' (float targets).
    input_shape: one example's input, e.g. ``(28, 28, 1)`` for NHWC images.
    input_dtype: numpy dtype name of the inputs ('float32' images, 'int32' tokens).
    num_classes: classes for classification (0 for regression).
    num_train, num_val, num_test: examples in each split.
    notes: how the splits were made, for results.json and the paper.
    vocab_size: rows of the embedding table for token inputs (0 otherwise).
    class_names: the label of each class id, where the data names them.
    changes: examples the source left out or changed (blank lines, cut texts), each a
      sentence that says how many and where; printed when a run starts, and in ``notes``.
  """

  name: str
  task: str
  input_shape: tuple[int, ...]
  input_dtype: str
  num_classes: int
  num_train: int
  num_val: int
  num_test: int
  notes: tuple[str, ...] = ()
  vocab_size: int = 0
  class_names: tuple[str, ...] = ()
  changes: tuple[str, ...] = ()

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Datasets:
  """The three splits, the facts about them, and the vocabulary of text data.

  Attributes:
    train, val, test: the splits (``val`` may be empty).
    spec: the DataSpec.
    vocab: the word list of text data (index = token id), else None.
  """

  train: "Split"
  val: "Split"
  test: "Split"
  spec: DataSpec
  vocab: tuple[str, ...] | None = None
