"""Data read on demand (ArrayRecord files, image folders) through the Grain pipeline.

The reference for every streamed run is the same data held in memory: batches
and trained numbers must be bitwise the same.
"""

import dataclasses

import numpy as np
import pytest
from PIL import Image

from conftest import comparable_files, experiment
from jaxdl import data
from jaxdl.data import arrayrecord, batches, columns, pipeline
from jaxdl.errors import ConfigError, DataError
from jaxdl.training import train_and_evaluate


def _digits_uint8() -> tuple[np.ndarray, np.ndarray]:
  from sklearn.datasets import load_digits

  digits = load_digits()
  return (digits.images * 255 / 16).round().astype(np.uint8)[..., None], digits.target


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory):
  """scikit-learn's digits as uint8 8x8 images in an ArrayRecord folder (2 files for train)."""
  images, labels = _digits_uint8()
  folder = tmp_path_factory.mktemp("records") / "digits"
  with arrayrecord.Writer(folder, num_classes=10, examples_per_file=1000) as writer:
    writer.add("train", images[:1000], labels[:1000])
    writer.add("train", images[1000:1500], labels[1000:1500])
    writer.add("test", images[1500:], labels[1500:])
  return folder


def _same_spec(a, b) -> bool:
  """Specs equal but for the first note (which says how the data is read)."""
  return dataclasses.replace(a, notes=a.notes[1:]) == dataclasses.replace(b, notes=b.notes[1:])


def _config(folder, *overrides):
  return experiment("seed_cnn_digits", f"data.name=arrayrecord:{folder}", "data.image_size=0",
                    "model.name=plugin_models:TinyCNN", *overrides)


def test_arrayrecord_read_on_demand_equals_in_memory(digits_folder):
  lazy = data.build(_config(digits_folder, "data.in_memory=no").data)
  eager = data.build(_config(digits_folder, "data.in_memory=yes").data)
  assert lazy.train.lazy and not eager.train.lazy
  assert eager.train.inputs.dtype == np.uint8  # Stored as uint8, scaled a batch at a time.
  assert _same_spec(lazy.spec, eager.spec) and lazy.spec.num_train + lazy.spec.num_val == 1500
  base = lazy.train.inputs.base
  before = base.reads
  for a, b in zip(data.train_batches(lazy.train, 64, 0, 1), data.train_batches(eager.train, 64, 0, 1)):
    for key in b:
      np.testing.assert_array_equal(a[key], b[key])
  # Every training example was read once (the last batch's padding repeats example 0).
  assert base.reads - before == lazy.spec.num_train + (-lazy.spec.num_train % 64)
  images, _ = _digits_uint8()
  np.testing.assert_array_equal(eager.test.inputs, images[1500:])


@pytest.mark.slow
def test_a_run_on_streamed_records_equals_the_in_memory_run_bitwise(digits_folder, tmp_path):
  common = ("num_epochs=3", "batch_size=32", "data.standardize=True", "data.augment_shift=1")
  train_and_evaluate(_config(digits_folder, "data.in_memory=yes", "data.prefetch=0", *common),
                     tmp_path / "memory", quiet=True)
  train_and_evaluate(_config(digits_folder, "data.in_memory=no", "data.workers=1", *common),
                     tmp_path / "streamed", quiet=True)
  rows, results = comparable_files(tmp_path / "memory")
  assert results["test_accuracy"] > 0.4  # It learns (chance: 0.1).
  streamed_rows, streamed = comparable_files(tmp_path / "streamed")
  assert "read when needed" in streamed["data_notes"][0]
  # Standardising statistics come from a sample of 10,000 examples: here all of them.
  assert streamed_rows == rows
  assert {**streamed, "data_notes": None} == {**results, "data_notes": None}


def test_a_damaged_record_is_named_or_skipped_and_counted(tmp_path):
  images, labels = _digits_uint8()
  folder = arrayrecord.write(tmp_path / "d", {"train": (images[:300], labels[:300]),
                                              "test": (images[300:400], labels[300:400])})
  from array_record.python.array_record_module import ArrayRecordWriter

  writer = ArrayRecordWriter(str(folder / "train-00000.array_record"), "group_size:1")
  for i, image in enumerate(images[:300]):
    writer.write(image.tobytes()[:10] if i == 7 else image.tobytes())  # Record 7: cut short.
  writer.close()
  cfg = _config(folder, "data.in_memory=no", "num_epochs=1", "batch_size=50", "data.val_fraction=0")
  with pytest.raises(DataError, match=r"record 7 of .*d \(1 file\(s\)\) holds 10 bytes.*write the "
                     "folder again"):
    train_and_evaluate(cfg, tmp_path / "strict", quiet=True)
  cfg.data.skip_bad_examples = True
  train_and_evaluate(cfg, tmp_path / "skip", quiet=True)
  rows, _ = comparable_files(tmp_path / "skip")
  assert rows[0]["train_skipped_examples"] == 1.0  # Record 7, in train (the folder has a test).


def _png_folder(root, n_per_class=12, size=8, truncated=None):
  rng = np.random.default_rng(0)
  for c in ("cat", "dog"):
    (root / c).mkdir(parents=True)
    for i in range(n_per_class):
      pixels = rng.integers(0, 256, (size, size), dtype=np.uint8) // (2 if c == "cat" else 1)
      Image.fromarray(pixels).save(root / c / f"{i:03d}.png")
  if truncated:
    path = root / truncated
    path.write_bytes(path.read_bytes()[:60])  # The header reads; the pixels do not.
  return root


def test_an_image_folder_decoded_when_read_equals_decoded_at_load(tmp_path):
  root = _png_folder(tmp_path / "pets")
  name = f"data.name=imagefolder:{root}"
  lazy = data.build(experiment("seed_cnn_digits", name, "data.image_size=12",
                               "data.in_memory=no").data)
  eager = data.build(experiment("seed_cnn_digits", name, "data.image_size=12",
                                "data.in_memory=yes").data)
  assert lazy.train.lazy and _same_spec(lazy.spec, eager.spec)
  np.testing.assert_array_equal(next(data.eval_batches(lazy.test, 8))["inputs"],
                                next(data.eval_batches(eager.test, 8))["inputs"])


def test_a_truncated_image_fails_by_name_when_read_or_is_skipped(tmp_path):
  root = _png_folder(tmp_path / "pets", truncated="dog/003.png")
  cfg = experiment("seed_cnn_digits", f"data.name=imagefolder:{root}", "data.image_size=8",
                   "data.in_memory=no", "num_epochs=1", "batch_size=8", "model.name=plugin_models:TinyCNN",
                   "data.test_fraction=0.25", "data.val_fraction=0.2")
  with pytest.raises(DataError, match=r"dog/003.png: cannot decode this image"):
    train_and_evaluate(cfg, tmp_path / "strict", quiet=True)
  cfg.data.skip_bad_examples = True
  results = train_and_evaluate(cfg, tmp_path / "skip", quiet=True)
  rows, _ = comparable_files(tmp_path / "skip")
  skipped = (rows[0].get("train_skipped_examples", 0) + rows[0].get("val_skipped_examples", 0)
             + results.get("test_skipped_examples", 0))
  assert skipped == 1  # Wherever the split put it, it was left out exactly once.


def test_each_process_reads_only_its_rows_of_a_batch(digits_folder):
  split = data.build(_config(digits_folder, "data.in_memory=no").data).train
  whole = batches.ShuffledPlan(split, 16, seed=3, epoch=1, shift=1)(2)
  halves = []
  for rows in ((0, 8), (8, 16)):
    base = split.inputs.base
    before = base.reads
    halves.append(batches.ShuffledPlan(split, 16, seed=3, epoch=1, shift=1, rows=rows)(2))
    assert base.reads - before == 8  # Its own examples only.
  for key in whole:
    np.testing.assert_array_equal(np.concatenate([h[key] for h in halves]), whole[key])


@pytest.mark.parametrize("workers,prefetch", [(0, 0), (0, 3), (2, 2)])
def test_the_pipeline_yields_the_plans_batches_in_order(digits_folder, workers, prefetch):
  split = data.build(_config(digits_folder, "data.in_memory=no").data).train
  plan = batches.ShuffledPlan(split, 32, seed=0, epoch=0)
  streamed = list(pipeline.batches(plan, 3, 9, workers=workers, prefetch=prefetch))
  assert len(streamed) == 6
  for step, batch in zip(range(3, 9), streamed):
    np.testing.assert_array_equal(batch["inputs"], plan(step)["inputs"])


def test_in_memory_auto_and_bad_settings():
  assert columns.keep_in_memory("auto", 1 << 20)
  assert not columns.keep_in_memory("auto", 64 << 30)
  assert columns.keep_in_memory("yes", 64 << 30) and not columns.keep_in_memory("no", 1)
  with pytest.raises(ConfigError, match="data.workers=-2 must be >= 0"):
    pipeline.check_settings(-2, 2)
  # Auto workers: none on a CPU backend or for data in memory; half the cores, at most 8,
  # reading files for an accelerator.
  assert pipeline.worker_count(-1, True, "cpu", 16) == pipeline.worker_count(-1, False, "gpu", 16) == 0
  assert pipeline.worker_count(-1, True, "gpu", 16) == 8
  assert pipeline.worker_count(-1, True, "gpu", 6) == 3
  assert pipeline.worker_count(2, False, "cpu", 2) == 2
  # Auto prefetch: ahead when reading files or feeding an accelerator, not for in-memory CPU runs.
  assert pipeline.prefetch_depth(-1, False, "cpu") == 0
  assert pipeline.prefetch_depth(-1, True, "cpu") == pipeline.prefetch_depth(-1, False, "gpu") == 2
  assert pipeline.prefetch_depth(3, False, "cpu") == 3


def test_a_missing_or_foreign_folder_is_a_clear_error(tmp_path):
  with pytest.raises(DataError, match="is not an ArrayRecord dataset.*Writer"):
    data.build(_config(tmp_path).data)
  with pytest.raises(DataError, match="already holds an ArrayRecord dataset"):
    arrayrecord.write(tmp_path / "x", {"train": _digits_uint8()})
    arrayrecord.write(tmp_path / "x", {"train": _digits_uint8()})
