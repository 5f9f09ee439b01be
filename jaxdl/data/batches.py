"""Batches as pure functions of (seed, epoch, step): shuffled, Poisson-sampled, or in order.

A batch is a dict of arrays with a leading batch axis: the model's inputs
(``inputs`` and extras such as ``lengths``), ``label`` and ``mask`` (1.0 for
a real example, 0.0 for padding). Every batch has the same shape, so the
jitted step compiles once; the last, partial batch of an epoch is padded and
masked, so each example counts exactly once.

A *plan* computes the batch of a step from the step number alone. Plans are
small and picklable, so Grain can run them in worker processes, and a run
resumed mid-epoch replays the same batches (pipeline.py). With several
processes a plan builds only ``rows``, this process's slice of the global
batch, and reads only those examples.
"""

import dataclasses
import functools
from collections.abc import Iterator, Sequence

import numpy as np

from jaxdl.data.arrays import Batch, Split

Rows = tuple[int, int] | None  # [start, stop) of the global batch's rows; None: all.


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
  """The shuffled example order of one epoch: a pure function of (seed, epoch)."""
  return np.random.default_rng([seed, epoch]).permutation(n)


def num_batches(n: int, batch_size: int) -> int:
  return -(-n // batch_size)


def shift_offsets(max_shift: int, rng: np.random.Generator, rows: Rows,
                  batch_length: int) -> np.ndarray:
  """``<int32>[rows, 2]``: each image's (dy, dx) window offset into its padded copy.

  Drawn for the whole batch of ``batch_length`` rows, so that each process
  shifts its ``rows`` as a single process would; each offset is uniform in
  ``[0, 2 * max_shift]`` (a shift of ``offset - max_shift`` pixels).
  """
  lo, hi = rows or (0, batch_length)
  offsets = rng.integers(0, 2 * max_shift + 1, size=(2, batch_length))[:, lo:hi]
  return np.ascontiguousarray(offsets.T, np.int32)


def shift_images(images: np.ndarray, offsets: np.ndarray, max_shift: int) -> np.ndarray:
  """Translates each image by its offset (``shift_offsets``), filling with zeros.

  Args:
    images: ``[n, height, width, channels]``.
    offsets: ``<int>[n, 2]`` (dy, dx), each in ``[0, 2 * max_shift]``.
    max_shift: the largest shift in pixels per axis.
  """
  n, h, w, _ = images.shape
  s = max_shift
  padded = np.pad(images, ((0, 0), (s, s), (s, s), (0, 0)))
  row_index = offsets[:, 0, None] + np.arange(h)[None, :]  # [n, h]
  col_index = offsets[:, 1, None] + np.arange(w)[None, :]  # [n, w]
  return padded[np.arange(n)[:, None, None], row_index[:, :, None], col_index[:, None, :]]


def bucketed_width(lengths: np.ndarray, bucket: int, full: int) -> int:
  """The time steps a batch keeps: its longest sequence rounded up to a multiple of ``bucket``
  (at least one bucket, at most ``full``)."""
  longest = max(int(lengths.max()) if len(lengths) else 0, 1)
  return min(full, -(-longest // bucket) * bucket)


def padded_batch(split: Split, index: np.ndarray, batch_length: int, rows: Rows = None,
                 skip_bad: bool = False, on_device: bool = False, bucket: int = 0) -> Batch:
  """Examples ``index`` padded to ``batch_length`` and masked; only ``rows`` of it.

  With ``on_device`` pixels the device can scale stay uint8 (``Split.rows``).
  With ``skip_bad`` an example that fails to read is masked out and flagged in
  ``skipped`` (counted by the pipeline); padding repeats example 0, masked.
  With ``bucket`` > 0 (sequences with ``lengths``), the inputs keep only the time steps
  of the whole batch's longest sequence, rounded up to a multiple of ``bucket``: every
  process cuts its rows alike, and a model that reads ``lengths`` computes the same.
  """
  real = len(index)
  padded = np.concatenate([index, np.zeros(batch_length - real, index.dtype)])
  mask = (np.arange(batch_length) < real).astype(np.float32)
  lo, hi = rows or (0, batch_length)
  batch, bad = split.rows(padded[lo:hi], skip_bad, on_device)
  mask = mask[lo:hi]
  if skip_bad:
    batch["skipped"] = (bad & (mask > 0)).astype(np.float32)
    mask = np.where(bad, np.float32(0.0), mask)
  batch["mask"] = mask
  if bucket:
    width = bucketed_width(np.asarray(split.extra["lengths"][index]), bucket,
                           batch["inputs"].shape[1])
    batch["inputs"] = np.ascontiguousarray(batch["inputs"][:, :width])
  return batch


@dataclasses.dataclass(frozen=True, eq=False)
class ShuffledPlan:
  """The shuffled batches of one epoch; random shifts of ``shift`` pixels if > 0."""

  split: Split
  batch_length: int
  seed: int
  epoch: int
  shift: int = 0
  rows: Rows = None
  skip_bad: bool = False
  on_device: bool = False
  bucket: int = 0

  @property
  def steps(self) -> int:
    return num_batches(len(self.split), self.batch_length)

  @functools.cached_property
  def order(self) -> np.ndarray:
    return epoch_order(len(self.split), self.seed, self.epoch)

  def __call__(self, step: int) -> Batch:
    index = self.order[step * self.batch_length:(step + 1) * self.batch_length]
    batch = padded_batch(self.split, index, self.batch_length, self.rows, self.skip_bad,
                         self.on_device, self.bucket)
    return augment(batch, self.shift, self.seed, self.epoch, step, self.rows,
                   self.batch_length, self.on_device and self.split.device_scaling is not None)


def augment(batch: Batch, shift: int, seed: int, epoch: int, step: int, rows: Rows,
            batch_length: int, on_device: bool = False) -> Batch:
  """Random shifts drawn from (seed, epoch, step): each process shifts its rows alike.

  With ``on_device`` (uint8 pixels the device scales) the offsets go with the
  batch (``shift``), for the device to apply after scaling (on_device.py); else
  the images are shifted here.
  """
  if shift:
    offsets = shift_offsets(shift, np.random.default_rng([seed, epoch, step]), rows,
                            batch_length)
    if on_device:
      batch["shift"] = offsets
    else:
      batch["inputs"] = shift_images(batch["inputs"], offsets, shift)
  return batch


# Seeds the Poisson draws apart from the shuffles and shifts of the same (seed, epoch, step).
_POISSON_STREAM = 0x9015


@dataclasses.dataclass(frozen=True, eq=False)
class PoissonPlan:
  """The batches of one epoch of Poisson sampling, as DP-SGD's accounting assumes.

  Each step includes every training example independently with probability
  ``rate`` (Abadi et al. 2016; Chua et al. 2024 show that shuffled fixed-size
  batches do not get the privacy amplification that the accountant credits).
  The chosen examples come first in a batch padded to ``padded_size`` and
  masked, so every step has one shape (one compile). If more than
  ``padded_size`` examples are drawn (the bound makes this about as likely as
  ``privacy.settings`` says), a random ``padded_size`` of them are kept; such a
  batch says so in its ``truncated`` entry (1.0 in its first element), which
  the train step counts as ``truncated_steps``.
  """

  split: Split
  rate: float
  padded_size: int
  seed: int
  epoch: int
  steps: int
  shift: int = 0
  rows: Rows = None
  skip_bad: bool = False
  on_device: bool = False
  bucket: int = 0

  def indices(self, step: int) -> tuple[np.ndarray, bool]:
    """The examples drawn at ``step`` (sorted; at most ``padded_size``), and if truncated."""
    rng = np.random.default_rng([self.seed, self.epoch, step, _POISSON_STREAM])
    chosen = np.flatnonzero(rng.random(len(self.split)) < self.rate)
    if len(chosen) <= self.padded_size:
      return chosen, False
    return np.sort(rng.choice(chosen, self.padded_size, replace=False)), True

  def __call__(self, step: int) -> Batch:
    chosen, truncated = self.indices(step)
    batch = padded_batch(self.split, chosen, self.padded_size, self.rows, self.skip_bad,
                         self.on_device, self.bucket)
    # Per example, so it shards like the rest of the batch; the step sums it.
    flag = np.zeros(self.padded_size, np.float32)
    flag[0] = float(truncated)
    lo, hi = self.rows or (0, self.padded_size)
    batch["truncated"] = flag[lo:hi]
    return augment(batch, self.shift, self.seed, self.epoch, step, self.rows, self.padded_size,
                   self.on_device and self.split.device_scaling is not None)


@dataclasses.dataclass(frozen=True, eq=False)
class InOrderPlan:
  """Every example once, in order, in padded batches (evaluation)."""

  split: Split
  batch_length: int
  rows: Rows = None
  skip_bad: bool = False
  on_device: bool = False
  bucket: int = 0

  @property
  def steps(self) -> int:
    return num_batches(len(self.split), self.batch_length)

  def __call__(self, step: int) -> Batch:
    start = step * self.batch_length
    index = np.arange(start, min(start + self.batch_length, len(self.split)))
    return padded_batch(self.split, index, self.batch_length, self.rows, self.skip_bad,
                        self.on_device, self.bucket)


@dataclasses.dataclass(frozen=True, eq=False)
class GroupPlan:
  """The batches of several members trained as one program, stacked on axis 0."""

  members: Sequence[ShuffledPlan | PoissonPlan]
  stacked: bool

  @property
  def steps(self) -> int:
    return self.members[0].steps

  def __call__(self, step: int) -> Batch:
    batches = [plan(step) for plan in self.members]
    if not self.stacked:
      return batches[0]
    return {k: np.stack(_same_width([b[k] for b in batches])) for k in batches[0]}


def _same_width(arrays: list[np.ndarray]) -> list[np.ndarray]:
  """Members' inputs cut to different time steps (``bucket``), zero-padded to the longest."""
  width = max(a.shape[1] if a.ndim > 1 else 0 for a in arrays)
  return [np.pad(a, [(0, 0), (0, width - a.shape[1])] + [(0, 0)] * (a.ndim - 2))
          if a.ndim > 1 and a.shape[1] != width else a for a in arrays]


def train_batches(split: Split, batch_size: int, seed: int, epoch: int, start: int = 0,
                  shift: int = 0) -> Iterator[Batch]:
  """Yields the shuffled, padded batches of one epoch, from batch ``start`` on."""
  plan = ShuffledPlan(split, batch_size, seed, epoch, shift)
  return (plan(step) for step in range(start, plan.steps))


def eval_batches(split: Split, batch_size: int) -> Iterator[Batch]:
  """Yields every example once, in order, in padded batches of ``batch_size``."""
  plan = InOrderPlan(split, batch_size)
  return (plan(step) for step in range(plan.steps))


class PoissonBatches:
  """Iterates a ``PoissonPlan`` from step ``start``; ``truncated`` counts overflows."""

  def __init__(self, split: Split, rate: float, padded_size: int, seed: int, epoch: int,
               steps: int, start: int = 0, shift: int = 0):
    self.plan = PoissonPlan(split, rate, padded_size, seed, epoch, steps, shift)
    self.start, self.truncated = start, 0

  def __iter__(self) -> Iterator[Batch]:
    for step in range(self.start, self.plan.steps):
      batch = self.plan(step)
      self.truncated += int(batch["truncated"].sum())
      yield batch
