"""Objectives: a loss and its metrics, as masked sums (see metric_sums.py).

An objective maps ``(outputs, batch)`` to per-example losses and a dict of
metric *sums* over the real (mask = 1) examples, with the count under
``"count"``; :class:`Objective` names the means it reports, so a config can
select a model by one of them before any training.
"""

import dataclasses
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import optax

from jaxdl.training.metric_sums import Sums

LossAndSums = Callable[[jax.Array, Mapping[str, jax.Array]], tuple[jax.Array, Sums]]


@dataclasses.dataclass(frozen=True)
class Objective:
  """A loss with its metrics.

  Attributes:
    name: how configs and results name it.
    fn: ``(outputs, batch) -> (<float32>[batch] losses, sums)``; the sums hold
      ``loss``, ``count`` and one entry per name in ``metrics``.
    metrics: the means it reports besides ``loss`` (``accuracy``, ``mse``, ...).
  """

  name: str
  fn: LossAndSums
  metrics: tuple[str, ...]

  def __call__(self, outputs: jax.Array, batch: Mapping[str, jax.Array]
               ) -> tuple[jax.Array, Sums]:
    return self.fn(outputs, batch)

  @property
  def metric_names(self) -> tuple[str, ...]:
    """Every mean it reports, ``loss`` first."""
    return ("loss", *self.metrics)


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
  correct = (jnp.argmax(logits, -1) == batch["label"]) * mask
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


OBJECTIVES: dict[str, Objective] = {
    "classification": Objective("classification", classification, ("accuracy",)),
    "regression": Objective("regression", regression, ("mse",)),
}
