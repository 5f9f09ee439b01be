"""Splits of examples, their validation, and how test and validation sets are drawn.

A split holds one column per field (``inputs``, ``label``, extras such as
``lengths``): NumPy arrays in memory, or lazy columns read from files on
demand (columns.py). Batching lives in batches.py, the Grain pipeline that
feeds the loop in pipeline.py.
"""

import dataclasses

import numpy as np

from jaxdl.data import columns
from jaxdl.errors import DataError

Batch = dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True, eq=False)
class Scaling:
  """How stored pixels become the model's inputs: ``(x / divisor - mean) / std``.

  Images are stored as they come (uint8: a quarter of float32's memory) and
  scaled a batch at a time: on the host (``__call__``), or for uint8 pixels on
  the device by looking each value up in ``table`` (on_device.py), which
  gives bitwise the same numbers.

  Attributes:
    divisor: the value of a white pixel (16 for digits, 255 for uint8 images).
    mean, std: ``<float32>[channels]`` training-set statistics, or None.
  """

  divisor: float
  mean: np.ndarray | None = None
  std: np.ndarray | None = None

  def __call__(self, pixels: np.ndarray) -> np.ndarray:
    x = pixels.astype(np.float32) / np.float32(self.divisor)
    if self.mean is not None:
      x = (x - self.mean) / self.std
    return x

  def table(self, channels: int) -> np.ndarray:
    """``<float32>[256, channels]``: what each uint8 value becomes in each channel.

    Computed by ``__call__`` itself, so looking pixels up in it is bitwise
    equal to scaling them (an elementwise result depends only on the value).
    """
    values = self(np.arange(256, dtype=np.uint8).reshape(256, 1))
    return np.ascontiguousarray(np.broadcast_to(values, (256, channels)), np.float32)

  def standardized(self, mean: np.ndarray, std: np.ndarray) -> "Scaling":
    return dataclasses.replace(self, mean=np.asarray(mean, np.float32),
                               std=np.asarray(std, np.float32))


@dataclasses.dataclass(frozen=True)
class Split:
  """One split: columns with the same leading length.

  Attributes:
    inputs: ``[n, ...]`` model inputs as stored: images ``[n, height, width,
      channels]`` (uint8 with ``scaling``, else float32), tokens ``<int32>[n, len]``.
    label: ``<int32>[n]`` class ids (or float targets for regression).
    extra: further per-example columns passed to the model (e.g. lengths).
    scaling: turns stored ``inputs`` into the model's (None: they already are).
  """

  inputs: np.ndarray
  label: np.ndarray
  extra: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
  scaling: Scaling | None = None

  def __len__(self) -> int:
    return len(self.label)

  def arrays(self) -> dict[str, np.ndarray]:
    """The stored columns (lazy ones unread)."""
    return {"inputs": self.inputs, "label": self.label, **self.extra}

  def take(self, index: np.ndarray) -> "Split":
    return Split(columns.take(self.inputs, index), self.label[index],
                 {k: columns.take(v, index) for k, v in self.extra.items()}, self.scaling)

  @property
  def device_scaling(self) -> "Scaling | None":
    """The scaling the device can do (uint8 pixels, by table lookup), else None."""
    if self.scaling is not None and np.dtype(self.inputs.dtype) == np.uint8:
      return self.scaling
    return None

  @property
  def lazy(self) -> bool:
    """Whether examples are read from files on demand (not held in memory)."""
    return any(columns.is_lazy(c) for c in self.arrays().values())

  def rows(self, index: np.ndarray, skip_bad: bool = False,
           on_device: bool = False) -> tuple[Batch, np.ndarray]:
    """The examples ``index`` as model inputs, and which of them failed to read.

    With ``on_device`` the inputs the device can scale (:attr:`device_scaling`)
    stay uint8, for on_device.py to scale after the transfer.

    Returns:
      ``({'inputs': ..., 'label': ..., **extra}, <bool>[len(index)])``; with
      ``skip_bad`` an unreadable example is zeros and flagged, else its error
      (naming the file or record) is raised.
    """
    inputs, bad = columns.read_rows(self.inputs, index, skip_bad)
    if self.scaling is not None and not (on_device and self.device_scaling):
      inputs = self.scaling(inputs)
    out = {"inputs": inputs, "label": self.label[index]}
    out.update({k: np.asarray(v[index]) for k, v in self.extra.items()})
    return out, bad

  def model_inputs(self, index) -> np.ndarray:
    """Inputs ``index`` (an int or an index array) as the model sees them."""
    single = isinstance(index, (int, np.integer))
    batch, _ = self.rows(np.atleast_1d(np.asarray(index, np.int64)))
    return batch["inputs"][0] if single else batch["inputs"]


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
