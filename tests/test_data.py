"""Image data: sources, splits, batching, and clear errors for bad data."""

import gzip
import struct

import numpy as np
import pytest
import tensorflow_datasets as tfds

from conftest import experiment, shared_data
from jaxdl import data
from jaxdl.data import idx
from jaxdl.data.arrays import Split, check_images, check_labels, hold_out_test, split_indices
from jaxdl.errors import ConfigError, DataError


def write_idx(path, array, magic_type=0x08, truncate=0):
  header = bytes([0, 0, magic_type, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
  raw = header + array.astype(np.uint8).tobytes()
  raw = raw[:len(raw) - truncate]
  path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)


def test_digits_are_28x28_floats_with_stratified_splits():
  d = data.build(experiment("seed_cnn_digits").data)
  assert d.spec.input_shape == (28, 28, 1) and d.spec.num_classes == 10
  assert d.spec.num_train + d.spec.num_val + d.spec.num_test == 1797
  assert d.train.inputs.dtype == np.float32
  assert 0.0 <= d.train.inputs.min() and d.train.inputs.max() <= 1.0
  counts = np.bincount(d.test.label, minlength=10)
  assert counts.min() >= 33 and counts.max() <= 38  # ~20% of each class's ~180.
  # The split depends on data.split_seed only, so seeds share one test set.
  other = data.build(experiment("seed_cnn_digits", "seed=5").data)
  np.testing.assert_array_equal(d.test.inputs, other.test.inputs)
  moved = data.build(experiment("seed_cnn_digits", "data.split_seed=1").data)
  assert not np.array_equal(d.test.label, moved.test.label)


def test_standardize_uses_training_statistics_only():
  d = data.build(experiment("seed_cnn_digits", "data.standardize=true").data)
  np.testing.assert_allclose(d.train.inputs.mean(), 0.0, atol=0.02)
  np.testing.assert_allclose(d.train.inputs.std(), 1.0, atol=0.05)


def test_eval_batches_count_every_example_once():
  split = Split(np.arange(10, dtype=np.float32)[:, None], np.arange(10) % 3)
  batches = list(data.eval_batches(split, 4))
  assert [b["inputs"].shape[0] for b in batches] == [4, 4, 4]
  mask = np.concatenate([b["mask"] for b in batches])
  seen = np.concatenate([b["inputs"][:, 0] for b in batches])[mask > 0]
  np.testing.assert_array_equal(seen, np.arange(10))


def test_train_batches_are_a_deterministic_permutation_per_epoch():
  split = Split(np.arange(10, dtype=np.float32)[:, None], np.zeros(10, np.int32))

  def seen(seed, epoch, start=0):
    batches = list(data.train_batches(split, 4, seed, epoch, start))
    return np.concatenate([b["inputs"][b["mask"] > 0, 0] for b in batches])

  assert sorted(seen(0, 0)) == list(range(10))
  np.testing.assert_array_equal(seen(0, 0), seen(0, 0))
  assert not np.array_equal(seen(0, 0), seen(0, 1))
  np.testing.assert_array_equal(seen(0, 1, start=1), seen(0, 1)[4:])


def test_idx_loader_reads_the_real_mnist_test_set():
  folder = shared_data("mnist")
  splits, notes = idx.load_idx_folder(folder)
  images, labels = splits["test"]
  assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
  np.testing.assert_array_equal(np.bincount(labels),
                                [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
  assert any("train-labels" in n for n in notes)  # Labels without images are reported.
  d = data.build(experiment("seed_cnn_digits", f"data.name=idx:{folder}",
                            "data.image_size=0").data)
  assert d.spec.input_shape == (28, 28, 1)
  assert d.spec.num_train + d.spec.num_val + d.spec.num_test == 10_000
  assert any("only the 'test' split" in n for n in d.spec.notes)


def test_idx_round_trip_and_bad_files(tmp_path):
  images = np.random.default_rng(0).integers(0, 256, (30, 5, 5))
  write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
  write_idx(tmp_path / "train-labels-idx1-ubyte", np.arange(30) % 3)
  np.testing.assert_array_equal(idx.read_idx(tmp_path / "train-images-idx3-ubyte.gz"), images)
  bad = tmp_path / "bad"
  bad.mkdir()
  write_idx(bad / "x-images-idx3-ubyte", images, magic_type=0x42)
  with pytest.raises(DataError, match="not an IDX file"):
    idx.read_idx(bad / "x-images-idx3-ubyte")
  write_idx(bad / "y-images-idx3-ubyte", images, truncate=7)
  with pytest.raises(DataError, match="truncated or corrupt"):
    idx.read_idx(bad / "y-images-idx3-ubyte")
  (bad / "z-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
  with pytest.raises(DataError, match="missing or corrupt"):
    idx.read_idx(bad / "z-images-idx3-ubyte.gz")


def test_missing_data_folder_is_a_clear_error(tmp_path):
  with pytest.raises(DataError, match="does not exist.*idx:<folder"):
    data.build(experiment("seed_cnn_digits", f"data.name=idx:{tmp_path / 'nope'}").data)


def test_unknown_data_name_is_a_clear_error():
  # Refused when the name is set, before anything is built.
  with pytest.raises(ConfigError, match=r"unknown data.name 'digitz' \(did you mean 'digits'\?\)"):
    experiment("seed_cnn_digits", "data.name=digitz")


def test_labels_out_of_range_or_not_integers_are_clear_errors():
  with pytest.raises(DataError, match="label 10 at example 2 is out of range for 10 classes"):
    check_labels(np.array([0, 3, 10]), 10, "train")
  with pytest.raises(DataError, match="must be integers"):
    check_labels(np.array([0.5, 1.0]), 10, "train")
  np.testing.assert_array_equal(check_labels(np.array([1.0, 2.0]), 3, "train"), [1, 2])


def test_images_of_the_wrong_shape_are_clear_errors():
  with pytest.raises(DataError, match=r"\[n, height, width, channels\].*shape \(4, 784\)"):
    check_images(np.zeros((4, 784)), "train")
  assert check_images(np.zeros((4, 5, 5)), "train").shape == (4, 5, 5, 1)


@pytest.mark.parametrize("standardize", [False, True])
def test_uint8_images_are_stored_as_uint8_and_scaled_like_float32(tmp_path, standardize):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (60, 12, 12), dtype=np.uint8)
  write_idx(tmp_path / "train-images-idx3-ubyte", images)
  write_idx(tmp_path / "train-labels-idx1-ubyte", np.arange(60) % 3)
  cfg = experiment("seed_cnn_digits", f"data.name=idx:{tmp_path}", "data.image_size=0",
                   f"data.standardize={standardize}")
  d = data.build(cfg.data)
  assert d.train.inputs.dtype == np.uint8 and d.spec.input_dtype == "float32"
  # The float32 inputs the old whole-dataset path made, computed here with NumPy.
  floats = images[..., None].astype(np.float32) / np.float32(255)
  train_rows = _rows_of(images, d.train.inputs)
  if standardize:
    fit = floats[train_rows]
    mean, std = fit.mean(axis=(0, 1, 2)), fit.std(axis=(0, 1, 2)) + 1e-6
    floats = (floats - mean) / std
  batch = next(data.eval_batches(d.train, 8))
  np.testing.assert_array_equal(batch["inputs"], floats[train_rows[:8]])  # Bitwise.
  assert batch["inputs"].dtype == np.float32


def _rows_of(images: np.ndarray, stored: np.ndarray) -> np.ndarray:
  """Which rows of ``images`` (``[n, h, w]``) the stored ``[m, h, w, 1]`` split holds, in order."""
  lookup = {image.tobytes(): i for i, image in enumerate(images)}
  return np.array([lookup[image[..., 0].tobytes()] for image in stored])


def test_labels_beyond_a_pinned_class_count_are_rejected(tmp_path):
  write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((20, 28, 28)))
  write_idx(tmp_path / "train-labels-idx1-ubyte", np.arange(20) % 5)
  cfg = experiment("seed_cnn_digits", f"data.name=idx:{tmp_path}", "data.num_classes=3",
                   "data.image_size=0")
  with pytest.raises(DataError, match="out of range for 3 classes"):
    data.build(cfg.data)


def test_tfds_source_through_mock_data():
  cfg = experiment("seed_cnn_digits", "data.name=tfds:mnist", "data.image_size=0")
  with tfds.testing.mock_data(num_examples=40):
    d = data.build(cfg.data)
  assert d.spec.input_shape == (28, 28, 1) and d.spec.num_classes == 10
  assert d.spec.num_test == 40 and d.spec.num_train + d.spec.num_val == 40


def test_tfds_images_read_when_needed_equal_those_read_whole():
  name = ("seed_cnn_digits", "data.name=tfds:mnist", "data.image_size=0")
  with tfds.testing.mock_data(num_examples=40):
    whole = data.build(experiment(*name, "data.in_memory=yes").data)
    lazy = data.build(experiment(*name, "data.in_memory=no").data)
    assert lazy.train.lazy and not whole.train.lazy and whole.train.inputs.dtype == np.uint8
    for a, b in zip(data.train_batches(lazy.train, 16, 0, 0), data.train_batches(whole.train, 16, 0, 0)):
      np.testing.assert_array_equal(a["inputs"], b["inputs"])
      np.testing.assert_array_equal(a["label"], b["label"])
    assert lazy.train.inputs.base.reads >= lazy.spec.num_train  # They were read from TFDS.


def test_tfds_missing_dataset_says_how_to_prepare_it(tmp_path):
  cfg = experiment("seed_cnn_digits", "data.name=tfds:mnist", f"data.data_dir={tmp_path}")
  with pytest.raises(DataError, match="tfds build mnist --file_format=array_record"):
    data.build(cfg.data)


def test_shift_augmentation_moves_images_and_is_reproducible():
  split = Split(np.random.default_rng(0).random((8, 6, 6, 1), np.float32), np.zeros(8, np.int32))
  plain = next(data.train_batches(split, 8, 0, 0))
  shifted = next(data.train_batches(split, 8, 0, 0, shift=2))
  again = next(data.train_batches(split, 8, 0, 0, shift=2))
  np.testing.assert_array_equal(shifted["inputs"], again["inputs"])
  np.testing.assert_array_equal(shifted["label"], plain["label"])
  assert not np.array_equal(shifted["inputs"], plain["inputs"])
  # Each image is a translate of its original: its pixels are a subset of the original's.
  for a, b in zip(plain["inputs"], shifted["inputs"]):
    assert set(np.round(b[b > 0], 6)) <= set(np.round(a.ravel(), 6))


def test_cross_validation_folds_partition_the_data_by_class():
  labels = np.repeat(np.arange(3), [30, 50, 20])
  cfg = experiment("seed_cnn_digits", "data.folds=5").data
  held = []
  for fold in range(5):
    cfg.fold = fold
    keep, test, note = hold_out_test(labels, cfg, "x")
    assert len(np.intersect1d(keep, test)) == 0 and len(keep) + len(test) == 100
    assert np.bincount(labels[test]).tolist() == [6, 10, 4]  # Each class's share.
    assert f"fold {fold} of 5" in note
    held.append(test)
  assert sorted(np.concatenate(held).tolist()) == list(range(100))  # Every example tested once.
  cfg.split_seed = 1
  assert not np.array_equal(hold_out_test(labels, cfg, "x")[1], held[-1])


def test_a_fold_of_the_digits_is_its_test_set():
  datasets = data.build(experiment("seed_cnn_digits", "data.folds=10", "data.fold=3").data)
  assert datasets.spec.num_test in (179, 180, 181)
  assert any("fold 3 of 10" in note for note in datasets.spec.notes)


@pytest.mark.parametrize("overrides, message", [
    (("data.name=adding", "data.folds=5"), "has its own test split"),
    (("data.folds=200",), "needs at least 200 examples of every class"),
])
def test_bad_folds_are_clear_errors(overrides, message):
  with pytest.raises(DataError, match=message):
    data.build(experiment("seed_cnn_digits", *overrides).data)


@pytest.mark.parametrize("labels", [None, np.array([0] * 9 + [1] * 11)])
def test_split_indices_partitions_with_rounded_shares(labels):
  """Kept and held-out are disjoint and cover every index; each class (or the whole) gives
  round(n * fraction) examples: 9 * 0.3 = 2.7 -> 3, 11 * 0.3 = 3.3 -> 3 (int() would give 2)."""
  n = 20 if labels is not None else 9
  kept, held = split_indices(n, 0.3, 5, labels)
  assert np.intersect1d(kept, held).size == 0
  np.testing.assert_array_equal(np.union1d(kept, held), np.arange(n))
  assert len(held) == (6 if labels is not None else 3)
  if labels is not None:
    assert np.bincount(labels[held]).tolist() == [3, 3]
  with pytest.raises(DataError, match=r"must be in \[0, 1\), got 1.0"):
    split_indices(n, 1.0, 5, labels)
