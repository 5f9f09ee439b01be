"""Compute cost: a measured matmul peak for this machine, and what a run achieves of it.

``jaxdl bench-peak`` times a large float32 matmul on the default device and
caches the FLOP/s (``~/.cache/jaxdl/peak.json``, per device kind, backend and
core count). Runs then report their achieved training FLOP/s as a fraction of
it. A training step costs about 3x the forward FLOPs (forward, and a backward
pass of about twice the forward); that factor is an estimate, stated as such.
"""

import json
import os
import pathlib
import statistics
import time

import jax
import jax.numpy as jnp

from jaxdl import host

TRAINING_FLOPS_PER_FORWARD = 3.0


def cache_path() -> pathlib.Path:
  root = os.environ.get("XDG_CACHE_HOME") or str(pathlib.Path.home() / ".cache")
  return pathlib.Path(root) / "jaxdl" / "peak.json"


def machine_key() -> str:
  """What a cached peak is valid for: backend, device, cores, and the host allocator.

  The allocator is part of it because on the CPU it changes the measured peak
  (188 vs 405-456 GFLOP/s on 2 cores, see host.py): a peak cached under one
  setting is not reused under the other.
  """
  device = jax.devices()[0]
  allocator = "tuned-malloc" if host.allocator_state()["applied"] else "default-malloc"
  return f"{jax.default_backend()}|{device.device_kind}|{os.cpu_count()} cores|{allocator}"


def measure_matmul_peak(size: int = 2048, repeats: int = 10) -> dict:
  """Median FLOP/s of a ``size`` x ``size`` float32 matmul (2 n^3 FLOPs), with min and max."""
  a = jax.random.normal(jax.random.PRNGKey(0), (size, size), jnp.float32)
  b = jax.random.normal(jax.random.PRNGKey(1), (size, size), jnp.float32)
  matmul = jax.jit(jnp.matmul)
  matmul(a, b).block_until_ready()
  rates = []
  for _ in range(repeats):
    start = time.perf_counter()
    matmul(a, b).block_until_ready()
    rates.append(2 * size ** 3 / (time.perf_counter() - start))
  return {"flops_per_s": statistics.median(rates), "min": min(rates), "max": max(rates),
          "size": size, "repeats": repeats, "machine": machine_key()}


def cached_peak() -> dict | None:
  path = cache_path()
  if not path.exists():
    return None
  try:
    return json.loads(path.read_text()).get(machine_key())
  except (OSError, json.JSONDecodeError):
    return None


def store_peak(measurement: dict) -> pathlib.Path:
  path = cache_path()
  path.parent.mkdir(parents=True, exist_ok=True)
  table = {}
  if path.exists():
    try:
      table = json.loads(path.read_text())
    except json.JSONDecodeError:
      table = {}
  table[measurement["machine"]] = measurement
  path.write_text(json.dumps(table, indent=2) + "\n")
  return path


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
