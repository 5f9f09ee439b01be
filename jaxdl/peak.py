"""The matmul peak of this machine: ``jaxdl bench-peak`` measures it and caches it.

A large float32 matmul is timed on the default device and its FLOP/s cached in
``~/.cache/jaxdl/peak.json``, per device kind, backend, core count and host
allocator (cost.py reports a run's achieved FLOP/s as a fraction of it).
"""

import json
import os
import pathlib
import statistics
import time

import jax
import jax.numpy as jnp

from jaxdl import host


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
