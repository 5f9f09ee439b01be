"""Image-classification datasets: digits, TFDS and IDX folders, split and normalised.

Every image source returns raw splits; this module holds out test and
validation sets where needed, checks labels and shapes, and says how pixels
become model inputs: scaled to [0, 1] float32 NHWC, optionally resized and
standardised with training-set statistics. Integer images kept at their size
are stored as uint8 and scaled a batch at a time (``Split.scaling``).
"""

import dataclasses
from collections.abc import Callable

import jax
import ml_collections
import numpy as np

from jaxdl.data import arrayrecord, columns, idx, tfds_source
from jaxdl.data.image_folder import load_image_folder
from jaxdl.data.arrays import (Scaling, Split, check_images, check_labels, check_split_sizes, hold_out_test,
                               refuse_folds, split_indices)
from jaxdl.data.spec import DataSpec, Datasets
from jaxdl.errors import DataError

RawSplits = dict[str, tuple[np.ndarray, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class Raw:
  """An image source's splits as it read them, before jaxdl splits and scales them."""

  splits: RawSplits  # 'train' and optionally 'test'.
  max_value: float  # The value of a white pixel: 16 for digits, 255 for uint8.
  num_classes: int  # 0: count the labels.
  notes: tuple[str, ...] = ()
  class_names: tuple[str, ...] = ()


Loader = Callable[[ml_collections.ConfigDict, str], Raw]


def digits(cfg: ml_collections.ConfigDict, argument: str) -> Raw:
  """scikit-learn's bundled 8x8 digits (``digits``: no argument)."""
  from sklearn.datasets import load_digits  # Bundled with scikit-learn: no download.

  bundled = load_digits()
  return Raw({"train": (bundled.images, bundled.target)}, 16.0, 10,
              ("scikit-learn's bundled digits (UCI optdigits test part, 1,797 8x8 images, "
               "pixels 0..16)",))


def idx_folder(cfg: ml_collections.ConfigDict, folder: str) -> Raw:
  """MNIST-format IDX files in ``folder`` (``idx:FOLDER``)."""
  splits, notes = idx.load_idx_folder(folder)
  if "train" not in splits:  # E.g. only the MNIST test set is present.
    only = sorted(splits)[0]
    notes.append(f"{folder} holds only the {only!r} split ({len(splits[only][1])} examples); "
                 "train and test are both drawn from it")
    splits = {"train": splits[only]}
  max_value = float(np.iinfo(splits["train"][0].dtype).max) if np.issubdtype(
      splits["train"][0].dtype, np.integer) else 1.0
  return Raw(splits, max_value, 0, tuple(notes))


def tfds_images(cfg: ml_collections.ConfigDict, name: str) -> Raw:
  """The TFDS dataset ``name``'s images (``tfds:NAME``)."""
  splits = {}
  for split, tfds_split in (("train", cfg.train_split), ("test", cfg.test_split)):
    if tfds_split:
      splits[split] = tfds_source.open_split(name, tfds_split, cfg.data_dir, cfg.download,
                                             cfg.image_key, cfg.label_key, cfg.in_memory)
  images = splits["train"][0]
  max_value = float(np.iinfo(images.dtype).max) if np.issubdtype(images.dtype, np.integer) else 1.0
  read = "read when needed" if columns.is_lazy(images) else "read into memory"
  return Raw(splits, max_value, tfds_source.num_classes(name, cfg.label_key, cfg.data_dir),
              (f"TFDS {name} (train split {cfg.train_split!r}, test split {cfg.test_split!r}; "
               f"{read})",))


def image_folder(cfg: ml_collections.ConfigDict, folder: str) -> Raw:
  """One sub-folder of image files per class (``imagefolder:FOLDER``)."""
  splits, classes, notes = load_image_folder(folder, cfg.image_size, cfg.in_memory)
  return Raw(splits, 255.0, len(classes), tuple(notes), classes)


def arrayrecord_folder(cfg: ml_collections.ConfigDict, folder: str) -> Raw:
  """Image examples in ArrayRecord files (``arrayrecord:FOLDER``)."""
  loaded, info = arrayrecord.load_splits(folder)
  size = sum(columns.nbytes(column) for column, _, _ in loaded.values())
  eager = columns.keep_in_memory(cfg.in_memory, size)
  splits = {name: (columns.materialize(column) if eager else column, labels)
            for name, (column, labels, _) in loaded.items()}
  dtype = loaded["train"][0].dtype
  max_value = float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0
  note = (f"ArrayRecord folder {folder} ({size / 2**20:.1f} MiB of inputs, "
          + ("read into memory)" if eager else "read when needed)"))
  return Raw(splits, max_value, info.get("num_classes", 0), (note,),
              tuple(info.get("class_names", ())))


def _resize(images: np.ndarray, size: int) -> np.ndarray:
  n, h, w, c = images.shape
  if size <= 0 or (h, w) == (size, size):
    return images
  return np.asarray(jax.image.resize(images, (n, size, size, c), "linear", antialias=True))


def _stored_inputs(raw: Raw, train: np.ndarray, test: np.ndarray, keep: np.ndarray, cfg):
  """The train and test images as stored, and the Scaling that makes them model inputs.

  Integer pixels the model sees at their own size stay as they are (uint8: a
  quarter of float32's memory), scaled a batch at a time; images to resize
  are scaled and resized once, as float32. Standardising uses the statistics
  of the training examples ``keep`` only, never validation or test.
  """
  size = cfg.image_size
  resized = size > 0 and train.shape[1:3] != (size, size)
  if columns.is_lazy(train) or columns.is_lazy(test):
    return _lazy_inputs(raw, train, test, keep, cfg, resized)
  if resized or not np.issubdtype(train.dtype, np.integer) or raw.max_value > 255:
    scaling = Scaling(raw.max_value)
    train, test = (_resize(scaling(x), size) for x in (train, test))
    mean_std = _statistics(train[keep]) if cfg.standardize else None
    if mean_std:
      train, test = ((x - mean_std[0]) / mean_std[1] for x in (train, test))
    return train, test, None
  scaling = Scaling(raw.max_value)
  if cfg.standardize:
    scaling = scaling.standardized(*_statistics(scaling(train[keep])))
  return train.astype(np.uint8), test.astype(np.uint8), scaling


# Training examples whose pixels give the standardising statistics of data read on demand.
STATISTICS_SAMPLE = 10_000


def _lazy_inputs(raw: Raw, train, test, keep: np.ndarray, cfg, resized: bool):
  """Inputs read on demand: stored as they come, scaled (and standardised) a batch at a time."""
  if resized:
    raise DataError(f"{cfg.name}: its examples are {list(train.shape[1:3])} pixels and are read "
                    f"when needed, so they are not resized; set data.image_size=0 (or "
                    f"{train.shape[1]}), or data.in_memory=yes to resize them all at load")
  scaling = Scaling(raw.max_value)
  if cfg.standardize:  # From a fixed sample of the training examples (all of them if fewer).
    sample = keep[np.linspace(0, len(keep) - 1, min(len(keep), STATISTICS_SAMPLE)).astype(int)]
    scaling = scaling.standardized(*_statistics(scaling(train[sample])))
  return train, test, scaling


def _statistics(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Per-channel mean and std (+1e-6) of ``<float32>[n, h, w, c]`` images."""
  return images.mean(axis=(0, 1, 2)), images.std(axis=(0, 1, 2)) + 1e-6


def _checked_split(raw: Raw, split: str, num_classes: int, cfg) -> tuple[np.ndarray, np.ndarray]:
  images, labels = raw.splits[split]
  if columns.is_lazy(images):  # Checked by shape now, and each example as it is read.
    check_images(np.zeros((0, *images.shape[1:]), images.dtype), f"{cfg.name} {split} images")
  else:
    images = check_images(images, f"{cfg.name} {split} images")
  return (images,
          check_labels(labels, num_classes, f"{cfg.name} {split} labels"))


def _test_split(raw: Raw, train: tuple, num_classes: int, cfg, notes: list[str]):
  """``(train, test)`` image/label pairs: the source's test split, or one held out of train."""
  train_images, train_labels = train
  if "test" in raw.splits:
    refuse_folds(cfg, cfg.name)
    test = _checked_split(raw, "test", num_classes, cfg)
    if test[0].shape[1:] != train_images.shape[1:]:
      raise DataError(f"{cfg.name}: test images are {test[0].shape[1:]} but train images "
                      f"are {train_images.shape[1:]}")
    return train, test
  keep, held, note = hold_out_test(train_labels, cfg, cfg.name)
  notes.append(note)
  return ((columns.take(train_images, keep), train_labels[keep]),
          (columns.take(train_images, held), train_labels[held]))


def _val_indices(raw: Raw, train: tuple, num_classes: int, cfg):
  """Train (with the source's val split appended after it) and the kept/held-out indices."""
  train_images, train_labels = train
  if "val" not in raw.splits:
    keep, held = split_indices(len(train_labels), cfg.val_fraction, [cfg.split_seed, 1],
                               train_labels, "validation")
    return train, keep, held
  val_images, val_labels = _checked_split(raw, "val", num_classes, cfg)
  keep = np.arange(len(train_labels))
  held = np.arange(len(train_labels), len(train_labels) + len(val_labels))
  return ((columns.concat(train_images, val_images), np.concatenate([train_labels, val_labels])),
          keep, held)


def build_image_data(cfg: ml_collections.ConfigDict, load: Loader) -> Datasets:
  """Splits and normalises the images ``load`` reads for ``config.data``.

  Args:
    cfg: ``config.data``.
    load: ``(cfg, argument) -> Raw``, the argument being what follows the source's
      prefix in ``data.name`` (``idx:FOLDER`` gives FOLDER; ``digits`` gives '').
  """
  raw = load(cfg, cfg.name.partition(":")[2])
  notes = list(raw.notes)
  num_classes = cfg.num_classes or raw.num_classes or int(np.max(raw.splits["train"][1])) + 1
  train = _checked_split(raw, "train", num_classes, cfg)
  present = np.unique(train[1])
  if len(present) < 2:
    raise DataError(f"{cfg.name}: the training labels hold one class only ({int(present[0])}); "
                    "a classifier needs examples of at least two classes")
  train, (test_images, test_labels) = _test_split(raw, train, num_classes, cfg, notes)
  (train_images, train_labels), keep, held = _val_indices(raw, train, num_classes, cfg)
  check_split_sizes(cfg.name, len(keep), len(test_labels))

  train_x, test_x, scaling = _stored_inputs(raw, train_images, test_images, keep, cfg)
  train_all = Split(train_x, train_labels, scaling=scaling)
  train, val, test = (train_all.take(keep), train_all.take(held),
                      Split(test_x, test_labels, scaling=scaling))
  if "val" in raw.splits:
    notes.append("validation set: the source's own val split")
  elif len(val):
    notes.append(f"validation set: {len(val)} examples ({cfg.val_fraction:.0%}) held out of "
                 f"the training data, stratified, with data.split_seed={cfg.split_seed}")
  spec = DataSpec(name=cfg.name, task="classification", input_shape=tuple(train.inputs.shape[1:]),
                  input_dtype="float32", num_classes=num_classes, num_train=len(train),
                  num_val=len(val), num_test=len(test), notes=tuple(notes),
                  class_names=raw.class_names)
  return Datasets(train, val, test, spec)
