"""jaxdl's kernels with the batch split over two (fake CPU) devices: each device runs them
on its own examples, and the gradients equal those of one device (per_device.py)."""

import pytest

from conftest import report_from_fake_devices

pytestmark = pytest.mark.usefixtures("native_kernels_on")  # conftest.py; inherited by the subprocess

_CHECK = """
import functools, json, re
import flax.linen as nn
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from jaxdl.models import LSTMCell, RecurrentLayer
from jaxdl.models.convolution import convolution
from jaxdl.models.conv_pool import ConvReluPool
from jaxdl.models.custom_gradients import custom_gradients

mesh = Mesh(np.array(jax.devices()).reshape(2, 1), ("data", "model"))

class Conv(nn.Module):  # A researcher's layer through jaxdl's convolution.
  @nn.compact
  def __call__(self, x):
    w = self.param("w", jax.nn.initializers.lecun_normal(), (3, 3, x.shape[-1], 5))
    return convolution("auto")(x, w, (1, 1), "SAME",
                               dimension_numbers=("NHWC", "HWIO", "NHWC"))

def check(layer, x):
  variables = layer.init(jax.random.PRNGKey(0), x)
  def loss(variables, x, mesh):
    with custom_gradients(mesh):
      return jnp.sum(jnp.sin(layer.apply(variables, x)))
  split = jax.device_put(x, NamedSharding(mesh, P("data")))
  per_device = jax.jit(jax.grad(functools.partial(loss, mesh=mesh)))
  got = jax.tree_util.tree_leaves(per_device(variables, split))
  want = jax.tree_util.tree_leaves(jax.jit(jax.grad(functools.partial(loss, mesh=None)))(
      variables, x))
  error = max(float(jnp.abs(g - w).max() / jnp.abs(w).max()) for g, w in zip(got, want))
  program = per_device.lower(variables, split).compile().as_text()
  calls = [line for line in program.splitlines() if "custom-call(" in line]
  # Every size in the kernels' operand and result shapes (no other size here is 4 or 8).
  sizes = {int(n) for c in calls for shape in re.findall(r"f32\\[([\\d,]+)\\]", c)
           for n in shape.split(",")}
  return {"error": error, "all_gathers": program.count("all-gather("), "kernels": len(calls),
          "whole_batch": 8 in sizes, "half_batch": 4 in sizes}

# A batch of 8 split over 2 devices; no other size in these layers is 4 or 8.
key = jax.random.PRNGKey(1)
print(json.dumps({
    "lstm": check(RecurrentLayer(LSTMCell, 16), jax.random.normal(key, (8, 10, 3))),
    "conv_relu_pool": check(ConvReluPool(6, (3, 3), "VALID"),
                            jax.random.normal(key, (8, 12, 12, 2))),
    "conv": check(Conv(), jax.random.normal(key, (8, 9, 9, 2)))}))
"""


@pytest.mark.slow  # A subprocess with two devices: about 10 s.
def test_each_device_runs_the_native_kernels_on_its_own_examples():
  results = report_from_fake_devices(_CHECK, devices=2)
  for name, result in results.items():
    assert result["kernels"] >= 2, (name, result)  # Forward and backward.
    assert result["half_batch"] and not result["whole_batch"], (name, result)
    assert result["all_gathers"] == 0, (name, result)
    assert result["error"] < 1e-5, (name, result)  # Relative to the largest gradient.
