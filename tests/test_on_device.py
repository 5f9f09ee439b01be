"""Pixels scaled and images shifted on the device after a uint8 transfer (data/on_device.py).

The reference is the host-side preparation every published number was trained
on: the device's batches must be bitwise the same.
"""

import dataclasses

import jax
import numpy as np
import pytest

from jaxdl import data
from jaxdl.data import batches, on_device


def _digits_split(standardize: bool = False) -> data.Split:
  """scikit-learn's digits as uint8 pixels (0..255), stored as a source of uint8 images is."""
  from sklearn.datasets import load_digits

  digits = load_digits()
  pixels = (digits.images * 255 / 16).round().astype(np.uint8)[..., None]
  scaling = data.Scaling(255.0)
  if standardize:
    scaled = scaling(pixels)
    scaling = scaling.standardized(scaled.mean(axis=(0, 1, 2)), scaled.std(axis=(0, 1, 2)))
  return data.Split(pixels, digits.target.astype(np.int32), scaling=scaling)


def _assert_same(device_batch, host_batch):
  assert set(device_batch) == set(host_batch)
  for key, value in host_batch.items():
    got = np.asarray(device_batch[key])
    assert got.dtype == value.dtype, key
    np.testing.assert_array_equal(got, value, err_msg=key)


@pytest.mark.parametrize("standardize", [False, True])
@pytest.mark.parametrize("shift", [0, 2])
def test_a_batch_finished_on_the_device_is_bitwise_the_host_batch(standardize, shift):
  split = _digits_split(standardize)
  assert split.device_scaling is not None
  finish = on_device.finisher([split], shift, stacked=False)
  for step in range(3):
    plan = dict(split=split, batch_length=64, seed=5, epoch=1, shift=shift)
    sent = batches.ShuffledPlan(**plan, on_device=True)(step)
    assert sent["inputs"].dtype == np.uint8  # A quarter of float32's bytes cross over.
    assert ("shift" in sent) == bool(shift)
    _assert_same(finish(jax.device_put(sent)), batches.ShuffledPlan(**plan)(step))


def test_each_member_of_a_stacked_batch_gets_its_own_scaling():
  split = _digits_split(standardize=True)
  other = dataclasses.replace(split, scaling=split.scaling.standardized(
      split.scaling.mean + 0.25, split.scaling.std * 3))

  def group(on_device):
    return batches.GroupPlan([batches.ShuffledPlan(s, 32, seed, 0, shift=1, on_device=on_device)
                              for s, seed in ((split, 0), (other, 1))], stacked=True)

  finish = on_device.finisher([split, other], 1, stacked=True)
  host = group(False)(4)
  assert not np.array_equal(host["inputs"][0], host["inputs"][1])
  _assert_same(finish(jax.device_put(group(True)(4))), host)


def test_nothing_to_finish_gives_no_finisher_and_leaves_float_inputs_on_the_host():
  split = _digits_split()
  floats = dataclasses.replace(split, inputs=split.scaling(split.inputs))
  assert floats.device_scaling is None
  assert on_device.finisher([floats], 2, stacked=False) is None
  batch = batches.ShuffledPlan(floats, 16, 0, 0, shift=2, on_device=True)(0)
  assert batch["inputs"].dtype == np.float32 and "shift" not in batch  # Shifted here.
  np.testing.assert_array_equal(batch["inputs"],
                                batches.ShuffledPlan(floats, 16, 0, 0, shift=2)(0)["inputs"])


def test_finishers_are_compiled_once_per_split():
  split = _digits_split()
  assert on_device.finisher([split], 0, False) is on_device.finisher([split], 0, False)
  assert on_device.finisher([split], 1, False) is not on_device.finisher([split], 0, False)
