"""Steps on CPU keep their temporaries in blocks that glibc's malloc reuses (jaxdl.training.heaps)."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl.errors import ConfigError
from jaxdl.training import heaps


@pytest.fixture
def as_a_script(monkeypatch):
  """This process as a script or notebook has it: glibc's defaults, no persistent compilation
  cache (tests that run the jaxdl command in-process turn both on)."""
  from jaxdl import host
  monkeypatch.setattr(host, "_state", {"applied": False, "reason": "not attempted"})
  cache = jax.config.jax_compilation_cache_dir
  jax.config.update("jax_compilation_cache_dir", None)
  yield
  jax.config.update("jax_compilation_cache_dir", cache)


def _recurrence(x, steps=20):
  """tanh(c W + 1) for ``steps`` steps over x [512, 256]: each state is kept for the gradient."""
  def body(c, _):
    c = jnp.tanh(c @ (0.5 * jnp.eye(x.shape[1])) + 1.0)
    return c, c
  _, states = jax.lax.scan(body, x, None, length=steps)
  return jnp.sum(states ** 2)


def test_the_largest_array_is_found_inside_scans_custom_derivatives_and_nested_jits():
  @jax.custom_vjp
  def inner(x):
    return jnp.outer(x, x).sum()  # [300, 300] float32: 360,000 bytes, inside the custom rule.

  inner.defvjp(lambda x: (inner(x), x), lambda x, g: (g * 2 * x.sum() * jnp.ones_like(x),))

  def f(x):
    return inner(x) + jax.jit(lambda y: jnp.tile(y, 3).sum())(x)

  x = jnp.ones(300)
  assert heaps.largest_array_bytes(jax.jit(f).trace(x).jaxpr) == 300 * 300 * 4
  assert heaps.largest_array_bytes(jax.make_jaxpr(lambda y: jnp.tile(y, 3))(x)) == 900 * 4
  # A scan's stacked outputs ([5, 7, 11] bfloat16: 770 bytes), counted with their item size.
  jaxpr = jax.make_jaxpr(lambda c: jax.lax.scan(
      lambda c, _: (c, jnp.zeros((7, 11), jnp.bfloat16)), c, None, length=5))(0.0)
  assert heaps.largest_array_bytes(jaxpr) == 5 * 7 * 11 * 2


def test_heaps_are_split_on_cpu_only_and_only_where_every_array_fits_one(as_a_script):
  small = jax.make_jaxpr(lambda x: x * 2)(jnp.ones(1000))
  assert heaps.heap_options(small, "cpu") == {heaps.HEAP_OPTION: heaps.HEAP_BYTES}
  assert heaps.heap_options(small, "gpu") is None
  assert heaps.heap_options(small, "tpu") is None
  too_big = jax.make_jaxpr(lambda x: jnp.broadcast_to(x, (heaps.HEAP_BYTES // 4 + 1,)))(
      jnp.ones(()))
  assert heaps.heap_options(too_big, "cpu") is None
  fits = jax.make_jaxpr(lambda x: jnp.broadcast_to(x, (heaps.HEAP_BYTES // 4,)))(jnp.ones(()))
  assert heaps.heap_options(fits, "cpu") is not None


def test_one_heap_where_the_allocator_keeps_it_or_the_compilation_cache_must_store_it(
    as_a_script, monkeypatch, tmp_path):
  from jaxdl import host
  small = jax.make_jaxpr(lambda x: x * 2)(jnp.ones(1000))
  assert heaps.heap_options(small, "cpu") is not None
  monkeypatch.setattr(host, "_state", {"applied": True, "reason": "glibc mallopt"})
  assert heaps.heap_options(small, "cpu") is None  # The jaxdl command's process.
  assert "allocator is tuned" in heaps.setting()["one_heap_because"]
  monkeypatch.setattr(host, "_state", {"applied": False, "reason": "not attempted"})
  jax.config.update("jax_compilation_cache_dir", str(tmp_path))  # as_a_script restores it.
  assert heaps.heap_options(small, "cpu") is None
  assert "compilation cache is on" in heaps.setting()["one_heap_because"]


def test_a_split_step_computes_exactly_what_jax_jit_computes(as_a_script):
  x = jax.random.normal(jax.random.key(0), (512, 256))
  step = heaps.HeapSplitJit(jax.value_and_grad(_recurrence), "cpu")
  value, grad = step(x)
  assert step.options == {heaps.HEAP_OPTION: heaps.HEAP_BYTES}  # Its arrays fit: split.
  expected_value, expected_grad = jax.jit(jax.value_and_grad(_recurrence))(x)
  np.testing.assert_array_equal(value, expected_value)
  np.testing.assert_array_equal(grad, expected_grad)
  again = step(x[:256])  # Another shape: compiled the same way, still right.
  np.testing.assert_array_equal(again[1], jax.jit(jax.grad(_recurrence))(x[:256]))


FAULTS = """
import json, resource, jax, jax.numpy as jnp
from jaxdl.host import allocator_state
from jaxdl.errors import ConfigError
from jaxdl.training import heaps
import test_heaps
import functools, os
x = jnp.ones((512, 256))
step = jax.grad(functools.partial(test_heaps._recurrence, steps=int(os.environ.get("STEPS", 20))))
temp = jax.jit(step).lower(x).compile().memory_analysis().temp_size_in_bytes
faults = {}
for name, fn in (("jit", jax.jit(step)), ("split", heaps.HeapSplitJit(step, "cpu"))):
  for _ in range(3):
    fn(x).block_until_ready()
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  for _ in range(10):
    fn(x).block_until_ready()
  faults[name] = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10
print(json.dumps({"temp": temp, "faults": faults, "allocator": allocator_state()}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_split_temporaries_stop_the_page_faults_that_glibc_costs_every_step():
  # A fresh process with glibc's defaults (the jaxdl command, run in-process by other
  # tests, tunes the allocator, and then neither step would fault).
  here = os.path.dirname(__file__)
  env = {**os.environ, "JAXDL_HOST_ALLOCATOR": "default",
         "PYTHONPATH": os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])}
  out = subprocess.run([sys.executable, "-c", FAULTS], env=env, capture_output=True, text=True,
                       check=True, cwd=here)
  result = json.loads(out.stdout.strip().splitlines()[-1])
  assert result["allocator"]["applied"] is False
  assert result["temp"] > 32 << 20  # Above glibc's largest mmap threshold: mapped every call.
  pages = result["temp"] / 4096
  assert result["faults"]["jit"] > 0.8 * pages, result  # Every page of it faulted in, each call.
  assert result["faults"]["split"] < 0.25 * result["faults"]["jit"], result


def test_one_heap_can_be_asked_for_and_a_bad_setting_is_named(monkeypatch, as_a_script):
  small = jax.make_jaxpr(lambda x: x * 2)(jnp.ones(10))
  monkeypatch.setenv(heaps.HEAPS_ENV, "one")
  assert heaps.setting() == {"mode": "one", "heap_bytes": heaps.HEAP_BYTES,
                             "one_heap_because": "JAXDL_XLA_HEAPS=one"}
  assert heaps.heap_options(small, "cpu") is None
  monkeypatch.setenv(heaps.HEAPS_ENV, "split")
  assert heaps.heap_options(small, "cpu") is not None
  monkeypatch.setenv(heaps.HEAPS_ENV, "many")
  with pytest.raises(ConfigError, match="JAXDL_XLA_HEAPS='many' is not one of split, one"):
    heaps.setting()


def test_training_on_cpu_compiles_its_steps_with_split_heaps_and_records_it(tmp_path, monkeypatch,
                                                                          as_a_script):
  from conftest import experiment
  from jaxdl.training import train_and_evaluate

  chosen = []
  real = heaps.heap_options
  monkeypatch.setattr(heaps, "heap_options",
                      lambda jaxpr, platform: chosen.append(real(jaxpr, platform)) or chosen[-1])
  train_and_evaluate(experiment("seed_cnn_digits", "num_epochs=1", "batch_size=128"), tmp_path,
                     quiet=True)
  # The train step, the evaluation step (validation and test batches alike: chosen once).
  assert chosen == [{heaps.HEAP_OPTION: heaps.HEAP_BYTES}] * 2
  provenance = json.loads((tmp_path / "provenance.json").read_text())
  assert provenance["xla_heaps"] == {"mode": "split", "heap_bytes": heaps.HEAP_BYTES,
                                     "one_heap_because": None}
