"""Losses and metrics as masked sums, so batches and devices add up exactly.

An objective maps ``(outputs, batch)`` to per-example losses and a dict of
metric *sums* over the real (mask = 1) examples, with the count under
``"count"``. Dividing sums by the count only at the end makes a padded last
batch, or a batch split over devices, give the same numbers as one big batch.
"""

from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import optax

Sums = dict[str, jax.Array]
Objective = Callable[[jax.Array, Mapping[str, jax.Array]], tuple[jax.Array, Sums]]


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


OBJECTIVES: dict[str, Objective] = {"classification": classification, "regression": regression}


# Metrics summed once per step (not per example), averaged over steps.
PER_STEP = ("grad_norm", "clipped")
# Bookkeeping that is not a mean: min-reduced step numbers and counts.
MIN_REDUCED = ("first_nonfinite_loss", "first_nonfinite_grad")
_NOT_MEANS = ("count", "steps", "nonfinite_steps", *MIN_REDUCED)


def add(a: Sums, b: Sums) -> Sums:
  """Merges two batches' sums: added, except the min-reduced step numbers."""
  return {k: jnp.minimum(a[k], b[k]) if k in MIN_REDUCED else a[k] + b[k] for k in a}


def means(sums: Mapping[str, float]) -> dict[str, float]:
  """Turns summed metrics into means: per example, or per step for PER_STEP ones."""
  count, steps = float(sums["count"]), float(sums.get("steps", 0.0))
  return {k: float(v) / max(steps if k in PER_STEP else count, 1.0)
          for k, v in sums.items() if k not in _NOT_MEANS}
