"""Metric sums: how batches' sums merge, and how sums become means.

Steps return metrics as masked *sums* with the number of real examples under
``"count"`` (and optimizer steps under ``"steps"``). Merging adds them (a few
bookkeeping entries are min-reduced), and only the final division turns them
into means, so padded batches and batches split over devices or hosts give
exactly the numbers of one big batch.
"""

from collections.abc import Mapping

import jax
import jax.numpy as jnp

Sums = dict[str, jax.Array]

# Metrics summed once per step (not per example), averaged over steps.
PER_STEP = ("grad_norm", "clipped")
# Bookkeeping that is not a mean: min-reduced step numbers and counts.
MIN_REDUCED = ("first_nonfinite_loss", "first_nonfinite_grad")
_NOT_MEANS = ("count", "steps", "nonfinite_steps", "truncated_steps", *MIN_REDUCED)


def merge(a: Sums, b: Sums) -> Sums:
  """Two batches' sums as one: added, except the min-reduced step numbers."""
  return {k: jnp.minimum(a[k], b[k]) if k in MIN_REDUCED else a[k] + b[k] for k in a}


def means(sums: Mapping[str, float]) -> dict[str, float]:
  """Summed metrics as means: per example, or per step for the PER_STEP ones."""
  count, steps = float(sums["count"]), float(sums.get("steps", 0.0))
  return {k: float(v) / max(steps if k in PER_STEP else count, 1.0)
          for k, v in sums.items() if k not in _NOT_MEANS}
