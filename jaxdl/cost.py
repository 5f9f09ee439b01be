"""Compute cost of a run: achieved training FLOP/s, its fraction of the machine's peak, memory.

A training step costs about 3x the forward FLOPs (forward, and a backward pass
of about twice the forward); that factor is an estimate, stated as such. The
peak is the one ``jaxdl bench-peak`` cached (peak.py), if it has run here.
"""

import jax

from jaxdl.peak import cached_peak

TRAINING_FLOPS_PER_FORWARD = 3.0


def peak_memory_bytes() -> int | None:
  """Peak device memory in use, where the backend reports it (GPU, TPU; not CPU)."""
  try:
    stats = jax.local_devices()[0].memory_stats() or {}
  except jax.errors.JaxRuntimeError:  # Backends that keep no statistics.
    return None
  return stats.get("peak_bytes_in_use")


def cost_report(flops_per_example: float, examples_per_s: float | None) -> dict:
  """Achieved training FLOP/s, its fraction of the cached peak, and peak memory."""
  achieved = (TRAINING_FLOPS_PER_FORWARD * flops_per_example * examples_per_s
              if examples_per_s else None)
  peak = cached_peak()
  return {"achieved_flops_per_s": achieved,
          "fraction_of_matmul_peak": (achieved / peak["flops_per_s"]
                                      if achieved and peak else None),
          "matmul_peak_flops_per_s": peak["flops_per_s"] if peak else None,
          "peak_memory_bytes": peak_memory_bytes()}
