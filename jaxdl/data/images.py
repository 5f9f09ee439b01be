"""Image-classification datasets: digits, TFDS and IDX folders, split and normalised.

Every image source returns raw splits; this module holds out test and
validation sets where needed, scales pixels to [0, 1] as float32 NHWC,
optionally resizes and standardises with training-set statistics, and checks
labels and shapes.
"""

import dataclasses

import jax
import ml_collections
import numpy as np

from jaxdl.data import idx, tfds_source
from jaxdl.data.image_folder import load_image_folder
from jaxdl.data.arrays import (Split, check_images, check_labels, check_split_sizes, hold_out_test,
                               refuse_folds, split_indices)
from jaxdl.data.spec import DataSpec, Datasets
from jaxdl.errors import DataError

RawSplits = dict[str, tuple[np.ndarray, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class _Raw:
  splits: RawSplits  # 'train' and optionally 'test'.
  max_value: float  # The value of a white pixel: 16 for digits, 255 for uint8.
  num_classes: int  # 0: count the labels.
  notes: tuple[str, ...] = ()
  class_names: tuple[str, ...] = ()


def _digits(cfg: ml_collections.ConfigDict) -> _Raw:
  from sklearn.datasets import load_digits  # Bundled with scikit-learn: no download.

  digits = load_digits()
  return _Raw({"train": (digits.images, digits.target)}, 16.0, 10,
              ("scikit-learn's bundled digits (UCI optdigits test part, 1,797 8x8 images, "
               "pixels 0..16)",))


def _idx(cfg: ml_collections.ConfigDict, folder: str) -> _Raw:
  splits, notes = idx.load_idx_folder(folder)
  if "train" not in splits:  # E.g. only the MNIST test set is present.
    only = sorted(splits)[0]
    notes.append(f"{folder} holds only the {only!r} split ({len(splits[only][1])} examples); "
                 "train and test are both drawn from it")
    splits = {"train": splits[only]}
  max_value = float(np.iinfo(splits["train"][0].dtype).max) if np.issubdtype(
      splits["train"][0].dtype, np.integer) else 1.0
  return _Raw(splits, max_value, 0, tuple(notes))


def _tfds(cfg: ml_collections.ConfigDict, name: str) -> _Raw:
  keys = (cfg.image_key, cfg.label_key)
  splits = {}
  for split, tfds_split in (("train", cfg.train_split), ("test", cfg.test_split)):
    if tfds_split:
      columns = tfds_source.load_split(name, tfds_split, cfg.data_dir, cfg.download, keys)
      splits[split] = (columns[cfg.image_key], columns[cfg.label_key])
  images = splits["train"][0]
  max_value = float(np.iinfo(images.dtype).max) if np.issubdtype(images.dtype, np.integer) else 1.0
  return _Raw(splits, max_value, tfds_source.num_classes(name, cfg.label_key, cfg.data_dir),
              (f"TFDS {name} (train split {cfg.train_split!r}, test split {cfg.test_split!r})",))


def _imagefolder(cfg: ml_collections.ConfigDict, folder: str) -> _Raw:
  splits, classes, notes = load_image_folder(folder, cfg.image_size)
  return _Raw(splits, 255.0, len(classes), tuple(notes), classes)


def _load_raw(cfg: ml_collections.ConfigDict) -> _Raw:
  kind, _, arg = cfg.name.partition(":")
  if kind == "imagefolder" and arg:
    return _imagefolder(cfg, arg)
  if kind == "digits" and not arg:
    return _digits(cfg)
  if kind == "idx" and arg:
    return _idx(cfg, arg)
  if kind == "tfds" and arg:
    return _tfds(cfg, arg)
  raise DataError(f"unknown data.name {cfg.name!r}; use 'digits', 'tfds:<name>' "
                  "(e.g. tfds:mnist), 'idx:<folder>', 'imagefolder:<folder>', "
                  "'textfile:<folder>', 'py:PKG.MODULE:ATTR', 'adding', 'memory' or 'seq_digits'")


def _resize(images: np.ndarray, size: int) -> np.ndarray:
  n, h, w, c = images.shape
  if size <= 0 or (h, w) == (size, size):
    return images
  return np.asarray(jax.image.resize(images, (n, size, size, c), "linear", antialias=True))


def build_image_data(cfg: ml_collections.ConfigDict) -> Datasets:
  """Loads, splits and normalises an image dataset described by ``config.data``."""
  raw = _load_raw(cfg)
  notes = list(raw.notes)
  train_images, train_labels = raw.splits["train"]
  num_classes = cfg.num_classes or raw.num_classes or int(np.max(train_labels)) + 1
  train_labels = check_labels(train_labels, num_classes, f"{cfg.name} train labels")
  train_images = check_images(train_images, f"{cfg.name} train images")
  present = np.unique(train_labels)
  if len(present) < 2:
    raise DataError(f"{cfg.name}: the training labels hold one class only ({int(present[0])}); "
                    "a classifier needs examples of at least two classes")
  if "test" in raw.splits:
    refuse_folds(cfg, cfg.name)
    test_images = check_images(raw.splits["test"][0], f"{cfg.name} test images")
    test_labels = check_labels(raw.splits["test"][1], num_classes, f"{cfg.name} test labels")
    if test_images.shape[1:] != train_images.shape[1:]:
      raise DataError(f"{cfg.name}: test images are {test_images.shape[1:]} but train images "
                      f"are {train_images.shape[1:]}")
  else:
    keep, held, note = hold_out_test(train_labels, cfg, cfg.name)
    test_images, test_labels = train_images[held], train_labels[held]
    train_images, train_labels = train_images[keep], train_labels[keep]
    notes.append(note)
  if "val" in raw.splits:  # The source's own validation split, appended after train.
    val_images = check_images(raw.splits["val"][0], f"{cfg.name} val images")
    val_labels = check_labels(raw.splits["val"][1], num_classes, f"{cfg.name} val labels")
    keep = np.arange(len(train_labels))
    held = np.arange(len(train_labels), len(train_labels) + len(val_labels))
    train_images = np.concatenate([train_images, val_images])
    train_labels = np.concatenate([train_labels, val_labels])
  else:
    keep, held = split_indices(len(train_labels), cfg.val_fraction, [cfg.split_seed, 1],
                               train_labels, "validation")
  check_split_sizes(cfg.name, len(keep), len(test_labels))

  def prepare(images):
    return _resize(images.astype(np.float32) / raw.max_value, cfg.image_size)

  train_x, test_x = prepare(train_images), prepare(test_images)
  if cfg.standardize:
    fit = train_x[keep]  # Statistics of the training examples only, never val or test.
    mean, std = fit.mean(axis=(0, 1, 2)), fit.std(axis=(0, 1, 2)) + 1e-6
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
  train_all = Split(train_x, train_labels)
  train, val, test = train_all.take(keep), train_all.take(held), Split(test_x, test_labels)
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
