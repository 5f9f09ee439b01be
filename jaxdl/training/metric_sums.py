"""Metric sums: how batches' sums merge, and how sums become means.

Steps return metrics as masked *sums* with the number of real examples under
``"count"`` (and optimizer steps under ``"steps"``). Merging adds them (a few
bookkeeping entries are min-reduced), and only the final division turns them
into means, so padded batches and batches split over devices or hosts give
exactly the numbers of one big batch.
"""

import re
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Sums = dict[str, jax.Array]

# Metrics summed once per step (not per example), averaged over steps.
PER_STEP = ("grad_norm", "clipped")
# Bookkeeping that is not a mean: min-reduced step numbers and counts.
MIN_REDUCED = ("first_nonfinite_loss", "first_nonfinite_grad")
# Counts reported as they are (not divided).
COUNTS = ("skipped_examples",)
# Which way is better for the metrics jaxdl defines ('max' or 'min'); a researcher's own
# metric declares its own (jaxdl.Metric), or the run names select.mode.
KNOWN_MODES = {"loss": "min", "mse": "min", "accuracy": "max", "macro_f1": "max", "mcc": "max"}
_TOP_K = re.compile(r"top\d+_accuracy")


def known_mode(metric: str) -> str | None:
  """'max' or 'min' for a metric jaxdl defines (any split prefix: ``val_``, ``test_``, ...)."""
  name = re.sub(r"^(last_test_|last_val_|test_|val_|train_)", "", metric)
  if _TOP_K.fullmatch(name):
    return "max"
  return KNOWN_MODES.get(name)


_NOT_MEANS = ("count", "steps", "nonfinite_steps", "truncated_steps", "confusion", *COUNTS,
              *MIN_REDUCED)


def merge(a: Sums, b: Sums) -> Sums:
  """Two batches' sums as one: added, except the min-reduced step numbers."""
  return {k: jnp.minimum(a[k], b[k]) if k in MIN_REDUCED else a[k] + b[k] for k in a}


def means(sums: Mapping[str, Any]) -> dict[str, float]:
  """Summed metrics as means: per example, or per step for the PER_STEP ones.

  A summed confusion matrix (``confusion``) gives macro-F1 and Matthews'
  correlation (``from_confusion``).
  """
  count, steps = float(sums["count"]), float(sums.get("steps", 0.0))
  out = {k: float(v) / max(steps if k in PER_STEP else count, 1.0)
         for k, v in sums.items() if k not in _NOT_MEANS}
  out.update({k: float(sums[k]) for k in COUNTS if k in sums})
  if "confusion" in sums:
    out.update(from_confusion(sums["confusion"]))
  return out


def to_host(sums: Mapping[str, Any]) -> dict[str, Any]:
  """Sums as host values: floats, and NumPy arrays for array-valued sums (a confusion matrix)."""
  return {k: float(v) if np.ndim(v) == 0 else np.asarray(v, np.float64) for k, v in sums.items()}


def to_json(sums: Mapping[str, Any]) -> dict[str, Any]:
  """Host sums as JSON values (arrays as nested lists), for a checkpoint's progress."""
  return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in sums.items()}


def from_json(sums: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """Sums read back from JSON in a step's dtypes (int32 step numbers, float32 the rest)."""
  return {k: np.asarray(v, np.int32 if k in MIN_REDUCED else np.float32) for k, v in sums.items()}


def from_confusion(confusion: np.ndarray) -> dict[str, float]:
  """Macro-F1 and Matthews' correlation from a summed confusion matrix."""
  c = np.asarray(confusion, np.float64)
  tp = np.diag(c)
  predicted, true, total = c.sum(0), c.sum(1), c.sum()
  denominator = predicted + true
  f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
  present = true > 0  # Classes absent from the split (and never predicted) do not count.
  macro_f1 = float(f1[present | (predicted > 0)].mean()) if total else 0.0
  covariance = tp.sum() * total - predicted @ true
  scale = np.sqrt((total ** 2 - predicted @ predicted) * (total ** 2 - true @ true))
  return {"macro_f1": macro_f1, "mcc": float(covariance / scale) if scale > 0 else 0.0}
