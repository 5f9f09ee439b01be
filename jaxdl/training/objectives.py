"""Objectives: a loss and its metrics, as masked sums (see metric_sums.py).

An objective maps ``(outputs, batch)`` to per-example losses and a dict of
metric *sums* over the real (mask = 1) examples, with the count under
``"count"``; ``Objective`` names the means it reports, so a config can
select a model by one of them before any training.
"""

import dataclasses
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import optax

from jaxdl import parts
from jaxdl.errors import ConfigError
from jaxdl.training.metric_sums import Sums, known_mode

LossAndSums = Callable[[jax.Array, Mapping[str, jax.Array]], tuple[jax.Array, Sums]]


@dataclasses.dataclass(frozen=True)
class Objective:
  """A loss with its metrics.

  Attributes:
    name: how configs and results name it.
    fn: ``(outputs, batch) -> (<float32>[batch] losses, sums)``; the sums hold
      ``loss``, ``count`` and one entry per name in ``metrics``.
    metrics: the means it reports besides ``loss`` (``accuracy``, ``mse``, ...).
    modes: ``metric -> 'max' | 'min'``: which way is better, for metrics jaxdl does not
      define itself (``loss`` is always 'min'); selection needs it to pick an epoch.
  """

  name: str
  fn: LossAndSums
  metrics: tuple[str, ...]
  modes: Mapping[str, str] = dataclasses.field(default_factory=dict)

  def __call__(self, outputs: jax.Array, batch: Mapping[str, jax.Array]
               ) -> tuple[jax.Array, Sums]:
    return self.fn(outputs, batch)

  @property
  def metric_names(self) -> tuple[str, ...]:
    """Every mean it reports, ``loss`` first."""
    return ("loss", *self.metrics)

  def mode(self, metric: str) -> str | None:
    """'max' or 'min' for one of its metrics (``val_``/``test_`` prefixes allowed); None if
    neither this objective nor jaxdl declares it."""
    name = metric.removeprefix("val_").removeprefix("test_").removeprefix("train_")
    if name == "loss":
      return "min"
    return self.modes.get(name) or known_mode(name)

  def metric_modes(self) -> dict[str, str]:
    """The declared direction of every metric it reports (those without one left out)."""
    return {m: self.mode(m) for m in self.metric_names if self.mode(m)}


def classification(logits: jax.Array, batch: Mapping[str, jax.Array]) -> tuple[jax.Array, Sums]:
  """Softmax cross-entropy on integer labels (Keras's sparse_categorical_crossentropy).

  Args:
    logits: ``<float>[batch, num_classes]``.
    batch: holds ``label <int32>[batch]`` and ``mask <float32>[batch]``.

  Returns:
    ``<float32>[batch]`` losses (0 on padding) and sums of loss, correct, count.
  """
  mask = batch["mask"]
  logits = logits.astype(jnp.float32)
  losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]) * mask
  correct = (jnp.argmax(logits, -1) == batch["label"]).astype(mask.dtype) * mask
  return losses, {"loss": losses.sum(), "accuracy": correct.sum(), "count": mask.sum()}


def regression(outputs: jax.Array, batch: Mapping[str, jax.Array]) -> tuple[jax.Array, Sums]:
  """Mean squared error on float targets.

  Args:
    outputs: ``<float>[batch]`` or ``[batch, 1]`` predictions.
    batch: holds ``label <float32>[batch]`` targets and ``mask``.
  """
  mask = batch["mask"]
  error = outputs.reshape(mask.shape).astype(jnp.float32) - batch["label"]
  losses = jnp.square(error) * mask
  return losses, {"loss": losses.sum(), "mse": losses.sum(), "count": mask.sum()}


def _adapt(name: str, found) -> Objective:
  """A researcher's objective at an import path: an ``Objective``, or a function."""
  if isinstance(found, Objective):
    return found
  if callable(found):
    return Objective(name, found, ())
  raise ConfigError(f"objective {name} is a {type(found).__name__}; give a jaxdl.Objective or a "
                    "function (outputs, batch) -> (losses, sums)")


OBJECTIVES: parts.Registry[Objective] = parts.Registry("objective", _adapt)
OBJECTIVES.register("classification", Objective("classification", classification, ("accuracy",)))
OBJECTIVES.register("regression", Objective("regression", regression, ("mse",)))


def resolve(name: str, task: str, experiment: str = "") -> Objective:
  """The objective ``config.objective`` names.

  Args:
    name: ``auto`` (the data's task: classification or regression), a built-in
      name, or ``PKG.MODULE:ATTR`` of an ``Objective`` or of a function
      ``(outputs, batch) -> (<float32>[batch] losses, sums)`` whose sums hold
      ``loss`` and ``count`` (its other sums are averaged and reported too).
    task: the data's task, for ``auto``.
    experiment: the experiment file, whose folder resolves the import path.
  """
  return OBJECTIVES.resolve(task if name == "auto" else name, experiment)


def with_metrics(objective: Objective, names: tuple[str, ...], functions,
                 modes: Mapping[str, str] | None = None) -> Objective:
  """``objective`` with the sums of extra metrics (see metrics.py) added to its own."""
  if not functions:
    return objective

  def fn(outputs, batch):
    losses, sums = objective(outputs, batch)
    for metric in functions:
      sums = {**sums, **metric(outputs, batch)}
    return losses, sums

  return Objective(objective.name, fn, (*objective.metrics, *names),
                   {**objective.modes, **(modes or {})})
