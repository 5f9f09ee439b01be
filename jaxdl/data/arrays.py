"""In-memory splits, their validation, and batching with padding masks.

The classic datasets of this field (digits, MNIST, CIFAR-10, MR, SST-2) fit in
host memory, so every source is read once into NumPy arrays and batched here.
A batch is a dict of arrays with a leading batch axis: ``inputs``, ``label``
and ``mask`` (1.0 for a real example, 0.0 for padding). Every batch has the
same shape, so the jitted step compiles once; the last, partial batch of an
epoch is padded and masked, so each example counts exactly once.
"""

import dataclasses
from collections.abc import Iterator

import numpy as np

from jaxdl.errors import DataError

Batch = dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class Split:
  """One split: arrays with the same leading length.

  Attributes:
    inputs: ``<float32>[n, height, width, channels]`` images (or tokens later).
    label: ``<int32>[n]`` class ids for classification.
    extra: further per-example arrays passed to the model (e.g. lengths).
  """

  inputs: np.ndarray
  label: np.ndarray
  extra: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

  def __len__(self) -> int:
    return len(self.label)

  def arrays(self) -> dict[str, np.ndarray]:
    return {"inputs": self.inputs, "label": self.label, **self.extra}

  def take(self, index: np.ndarray) -> "Split":
    return Split(self.inputs[index], self.label[index],
                 {k: v[index] for k, v in self.extra.items()})


def check_labels(labels: np.ndarray, num_classes: int, where: str) -> np.ndarray:
  """Returns ``labels`` as int32, or raises DataError naming the bad label."""
  labels = np.asarray(labels)
  if labels.ndim != 1:
    raise DataError(f"{where}: labels must be one id per example, got shape {labels.shape}")
  if not np.issubdtype(labels.dtype, np.integer):
    as_int = labels.astype(np.int64) if np.issubdtype(labels.dtype, np.number) else None
    if as_int is None or not np.array_equal(as_int, labels):
      raise DataError(f"{where}: labels must be integers 0..{num_classes - 1}, got dtype "
                      f"{labels.dtype} (e.g. {labels[:3].tolist()})")
    labels = as_int
  bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
  if bad.size:
    i = int(bad[0])
    raise DataError(f"{where}: label {int(labels[i])} at example {i} is out of range for "
                    f"{num_classes} classes (0..{num_classes - 1}); fix the labels or set "
                    "data.num_classes")
  return labels.astype(np.int32)


def check_images(images: np.ndarray, where: str) -> np.ndarray:
  """Returns ``images`` as NHWC, or raises DataError if they are not images."""
  images = np.asarray(images)
  if images.ndim == 3:  # [n, h, w]: grayscale without a channel axis.
    images = images[..., None]
  if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
    raise DataError(f"{where}: images must be [n, height, width, channels] with 1, 3 or 4 "
                    f"channels, got shape {images.shape}")
  return images


def split_indices(n: int, fraction: float, seed: int, labels: np.ndarray | None = None,
                  what: str = "held-out") -> tuple[np.ndarray, np.ndarray]:
  """Splits ``range(n)`` into (kept, held_out), stratified by ``labels`` if given."""
  if not 0.0 <= fraction < 1.0:
    raise DataError(f"the {what} fraction must be in [0, 1), got {fraction}")
  rng = np.random.default_rng(seed)
  if fraction == 0.0:
    return np.arange(n), np.arange(0)
  if labels is None:
    order = rng.permutation(n)
    k = int(round(n * fraction))
    return np.sort(order[k:]), np.sort(order[:k])
  held = []
  for c in np.unique(labels):  # Stratified: each class keeps its share.
    members = rng.permutation(np.flatnonzero(labels == c))
    held.append(members[:int(round(len(members) * fraction))])
  held_out = np.sort(np.concatenate(held))
  kept = np.setdiff1d(np.arange(n), held_out)
  return kept, held_out


def hold_out_test(labels: np.ndarray, cfg, where: str) -> tuple[np.ndarray, np.ndarray, str]:
  """Draws the test set of a source that has none: a fraction, or one fold of k.

  Args:
    labels: ``[n]`` class ids (the draw is stratified by class).
    cfg: ``config.data`` (``test_fraction``, or ``folds`` and ``fold``; ``split_seed``).
    where: the data's name, for errors.

  Returns:
    ``(kept, held_out, note)``: indices of the remaining and the test examples,
    and a sentence for the run's data notes.
  """
  if not cfg.folds:
    keep, held = split_indices(len(labels), cfg.test_fraction, [cfg.split_seed, 0], labels,
                               "test")
    return keep, held, (f"test set: {len(held)} examples ({cfg.test_fraction:.0%}) held out of "
                        f"the training data, stratified by class, with data.split_seed="
                        f"{cfg.split_seed}")
  from sklearn.model_selection import StratifiedKFold

  smallest = int(np.min(np.unique(labels, return_counts=True)[1]))
  if smallest < cfg.folds:
    raise DataError(f"{where}: data.folds={cfg.folds} needs at least {cfg.folds} examples of "
                    f"every class, but one class has {smallest}; use fewer folds")
  folds = StratifiedKFold(cfg.folds, shuffle=True, random_state=cfg.split_seed)
  keep, held = list(folds.split(np.zeros(len(labels)), labels))[cfg.fold]
  return np.sort(keep), np.sort(held), (
      f"test set: fold {cfg.fold} of {cfg.folds} stratified folds ({len(held)} examples), drawn "
      f"with data.split_seed={cfg.split_seed}; sweep data.fold=0:{cfg.folds} for the whole "
      "cross-validation")


def refuse_folds(cfg, where: str) -> None:
  """Cross-validation draws test folds from the data, so a source's own test split conflicts."""
  if cfg.folds:
    raise DataError(f"{where} has its own test split, but data.folds={cfg.folds} asks for "
                    "cross-validation folds; set data.folds=0, or leave out the test split "
                    "(TFDS: data.test_split='') so the folds are drawn from the training data")


def check_split_sizes(where: str, train: int, test: int) -> None:
  """Refuses an empty training or test split, naming the setting to change."""
  if train == 0:
    raise DataError(f"{where}: the training split is empty (test {test}); lower "
                    "data.val_fraction / data.test_fraction or use more data")
  if test == 0:
    raise DataError(f"{where}: the test split is empty (train {train}); raise "
                    "data.test_fraction (or add a test split to the data)")


def _pad_batch(arrays: dict[str, np.ndarray], index: np.ndarray, batch_size: int) -> Batch:
  real = len(index)
  padded = np.concatenate([index, np.zeros(batch_size - real, index.dtype)])
  batch = {k: v[padded] for k, v in arrays.items()}
  batch["mask"] = (np.arange(batch_size) < real).astype(np.float32)
  return batch


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
  """The shuffled example order of one epoch: a pure function of (seed, epoch)."""
  return np.random.default_rng([seed, epoch]).permutation(n)


def num_batches(n: int, batch_size: int) -> int:
  return -(-n // batch_size)


def shift_images(images: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
  """Translates each image by up to ``max_shift`` pixels per axis, filling with zeros.

  Args:
    images: ``<float32>[n, height, width, channels]``.
    max_shift: the largest shift in pixels (each of dy, dx is uniform in [-s, s]).
    rng: the source of the shifts.
  """
  n, h, w, _ = images.shape
  s = max_shift
  padded = np.pad(images, ((0, 0), (s, s), (s, s), (0, 0)))
  dy, dx = rng.integers(0, 2 * s + 1, size=(2, n))
  rows = dy[:, None] + np.arange(h)[None, :]  # [n, h]
  cols = dx[:, None] + np.arange(w)[None, :]  # [n, w]
  return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def train_batches(split: Split, batch_size: int, seed: int, epoch: int, start: int = 0,
                  shift: int = 0) -> Iterator[Batch]:
  """Yields the shuffled, padded batches of one epoch, from batch ``start`` on.

  The order, and the random shifts of ``shift`` > 0 pixels (image augmentation),
  depend only on (seed, epoch, batch index), so a run resumed mid-epoch sees the
  same batches as an uninterrupted one.
  """
  order = epoch_order(len(split), seed, epoch)
  arrays = split.arrays()
  for b in range(start, num_batches(len(split), batch_size)):
    batch = _pad_batch(arrays, order[b * batch_size:(b + 1) * batch_size], batch_size)
    yield _augment(batch, shift, seed, epoch, b)


def _augment(batch: Batch, shift: int, seed: int, epoch: int, b: int) -> Batch:
  if shift:
    batch["inputs"] = shift_images(batch["inputs"], shift, np.random.default_rng([seed, epoch, b]))
  return batch


# Seeds the Poisson draws apart from the shuffles and shifts of the same (seed, epoch, step).
_POISSON_STREAM = 0x9015


class PoissonBatches:
  """The batches of one epoch of Poisson sampling, as DP-SGD's accounting assumes.

  Each step includes every training example independently with probability
  ``rate`` (Abadi et al. 2016; Chua et al. 2024 show that shuffled fixed-size
  batches do not get the privacy amplification that the accountant credits).
  The chosen examples come first in a batch padded to ``padded_size`` and
  masked, so every step has one shape (one compile). If more than
  ``padded_size`` examples are drawn (the bound makes this about as likely as
  ``privacy.resolve`` says), a random ``padded_size`` of them are kept; such a
  batch says so in its ``truncated`` entry (1.0 in its first element), which
  the train step counts as ``truncated_steps``.

  Args:
    split: the training split.
    rate: q, the inclusion probability (batch_size / N).
    padded_size: the padded batch length.
    seed, epoch: the draws depend only on (seed, epoch, step), so resuming
      mid-epoch replays them.
    steps: steps in the epoch.
    start: the first step to yield (resuming).
    shift: image augmentation, as in :func:`train_batches`.
  """

  def __init__(self, split: Split, rate: float, padded_size: int, seed: int, epoch: int,
               steps: int, start: int = 0, shift: int = 0):
    self.split, self.rate, self.padded_size = split, rate, padded_size
    self.seed, self.epoch, self.steps, self.start, self.shift = seed, epoch, steps, start, shift
    self.truncated = 0

  def indices(self, step: int) -> np.ndarray:
    """The examples drawn at ``step`` (sorted; at most ``padded_size``)."""
    rng = np.random.default_rng([self.seed, self.epoch, step, _POISSON_STREAM])
    chosen = np.flatnonzero(rng.random(len(self.split)) < self.rate)
    if len(chosen) > self.padded_size:
      self.truncated += 1
      chosen = np.sort(rng.choice(chosen, self.padded_size, replace=False))
    return chosen

  def __iter__(self) -> Iterator[Batch]:
    arrays = self.split.arrays()
    for step in range(self.start, self.steps):
      before = self.truncated
      batch = _pad_batch(arrays, self.indices(step), self.padded_size)
      # Per example, so it shards like the rest of the batch; the step sums it.
      batch["truncated"] = np.zeros(self.padded_size, np.float32)
      batch["truncated"][0] = float(self.truncated > before)
      yield _augment(batch, self.shift, self.seed, self.epoch, step)


def eval_batches(split: Split, batch_size: int) -> Iterator[Batch]:
  """Yields every example once, in order, in padded batches of ``batch_size``."""
  arrays = split.arrays()
  for start in range(0, len(split), batch_size):
    yield _pad_batch(arrays, np.arange(start, min(start + batch_size, len(split))), batch_size)
