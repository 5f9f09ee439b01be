"""The fused conv -> bias -> relu -> max-pool layer (models/conv_pool.py, native/conv_cpu.cc).

Checked against the unfused layers run by XLA (the reference): pooled values, the
input, kernel and bias gradients, ties inside a window (the gradient goes to the
first maximum), windows whose maximum is not positive (no gradient), NaNs,
padding, odd sizes whose last row and column no window covers, other windows,
and ``vmap`` over examples (shared kernel) and over sweep members (own kernels).
"""

import shutil

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import init
from jax import lax

from jaxdl.models import SeedCNN
from jaxdl.models.conv_pool import ConvReluPool, conv_relu_max_pool
from jaxdl.models.custom_gradients import custom_gradients
from jaxdl.models.layers import max_pool
from jaxdl.models.native import conv as native_conv

pytestmark = [pytest.mark.skipif(shutil.which("g++") is None, reason="no C++ compiler here"),
              pytest.mark.usefixtures("native_kernels_on")]  # On any CPU: conftest.py.


def _reference(x, w, bias, padding, window):
  """The unfused layers in NumPy-checked JAX: XLA's convolution, bias, relu, max pool."""
  y = lax.conv_general_dilated(x, w, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return max_pool(jax.nn.relu(y + bias.reshape(1, 1, 1, -1)), window)


def _inputs(getkey, b, h, w, c, f, k):
  # Values on a grid of halves: ties inside pooling windows are common.
  x = jnp.round(jax.random.normal(getkey(), (b, h, w, c)) * 2) / 2
  kernel = jnp.round(jax.random.normal(getkey(), (k, k, c, f)) * 2) / 4
  bias = jnp.round(jax.random.normal(getkey(), (f,)) * 2) / 4
  return x, kernel, bias


# The seed CNN's two blocks (one input channel; 11x11 outputs whose last row and column no
# window covers), padding, a scalar channel tail (20 = 16 + 4) and a 3x3 window.
@pytest.mark.parametrize("b, h, w, c, f, k, padding, window", [
    (3, 12, 12, 1, 32, 3, ((0, 0), (0, 0)), 2),
    (2, 13, 13, 8, 64, 3, ((0, 0), (0, 0)), 2),
    pytest.param(2, 9, 10, 3, 20, 3, ((1, 1), (1, 1)), 2, marks=pytest.mark.slow),
    pytest.param(2, 12, 11, 4, 16, 3, ((1, 2), (0, 1)), 3, marks=pytest.mark.slow),
])
def test_the_fused_layer_matches_the_unfused_layers(getkey, b, h, w, c, f, k, padding, window):
  x, kernel, bias = _inputs(getkey, b, h, w, c, f, k)
  got = conv_relu_max_pool(x, kernel, bias, padding, window, "native")
  want = _reference(x, kernel, bias, padding, window)
  assert got.shape == want.shape
  np.testing.assert_allclose(native_conv.conv_relu_max_pool(x, kernel, bias, padding, window),
                             want, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(got, want)  # Outside the train step: the reference itself.
  weights = jax.random.normal(getkey(), want.shape)
  grads = lambda layer: jax.grad(lambda *a: jnp.sum(layer(*a, padding, window) * weights),
                                 (0, 1, 2))(x, kernel, bias)
  for name, got, want in zip(("x", "kernel", "bias"), grads(native_conv.conv_relu_max_pool),
                             grads(_reference)):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=name)


def test_no_gradient_where_relu_is_off_and_nans_come_through():
  x = jnp.zeros((1, 4, 4, 1)).at[0, 1, 1, 0].set(2.0).at[0, 2, 3, 0].set(-1.0)
  kernel = jnp.ones((1, 1, 1, 16))
  bias = jnp.zeros(16).at[1].set(-5.0)  # Channel 1: every value negative, relu off.
  layer = lambda x, kernel, bias: native_conv.conv_relu_max_pool(x, kernel, bias, window=2)
  pooled = layer(x, kernel, bias)
  np.testing.assert_array_equal(pooled[0, :, :, 0], [[2.0, 0.0], [0.0, 0.0]])
  np.testing.assert_array_equal(pooled[0, :, :, 1], 0.0)
  dx, dkernel, dbias = jax.grad(lambda *a: jnp.sum(layer(*a)), (0, 1, 2))(x, kernel, bias)
  # Only the one positive window passes a gradient, to its maximum, through channel 0 and
  # the 14 channels alike; the all-zero windows (relu's derivative at 0 is 0) pass none.
  np.testing.assert_array_equal(dx[0, :, :, 0], np.zeros((4, 4)) + np.eye(4)[1][:, None]
                                * np.eye(4)[1][None, :] * 15)
  np.testing.assert_array_equal(dbias, np.where(np.arange(16) == 1, 0.0, 1.0))
  np.testing.assert_array_equal(dkernel[0, 0, 0], np.where(np.arange(16) == 1, 0.0, 2.0))
  nan_in = x.at[0, 3, 0, 0].set(jnp.nan)
  assert np.isnan(layer(nan_in, kernel, bias)[0, 1, 0]).all()  # Its window, every channel.
  assert not np.isnan(layer(nan_in, kernel, bias)[0, 0]).any()


def test_per_example_gradients_and_sweep_members_match_the_reference(getkey):
  x, kernel, bias = _inputs(getkey, 4, 8, 8, 3, 16, 3)
  kernels, biases = jnp.stack([kernel, -kernel]), jnp.stack([bias, bias + 0.5])
  padding = ((0, 0), (0, 0))

  def loss(layer):
    return lambda x, w, b: jnp.sum(jnp.tanh(layer(x, w, b, padding, 2)) ** 2)

  per_example = lambda layer: jax.jit(jax.vmap(jax.grad(loss(layer), (1, 2)), (0, None, None)))(
      x[:, None], kernel, bias)
  per_member = lambda layer: jax.jit(jax.vmap(jax.grad(loss(layer), (0, 1, 2)), (None, 0, 0)))(
      x, kernels, biases)
  for check in (per_example, per_member):
    for got, want in zip(check(native_conv.conv_relu_max_pool), check(_reference)):
      np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_the_module_has_nn_conv_parameters_and_fuses_only_in_the_train_step(getkey):
  x = jax.random.normal(getkey(), (2, 10, 10, 3))
  fused = ConvReluPool(8, (3, 3), "SAME", conv_kernel="native")
  params = init(fused, jax.random.key(0), x)
  conv = nn.Conv(8, (3, 3), padding="SAME", kernel_init=nn.initializers.xavier_uniform())
  conv_params = init(conv, jax.random.key(0), x)
  jax.tree.map(np.testing.assert_array_equal, params, conv_params)  # Same names and values.
  want = max_pool(nn.relu(conv.apply(conv_params, x)))
  np.testing.assert_array_equal(fused.apply(params, x), want)
  loss = lambda p: jnp.sum(fused.apply(p, x) ** 2)
  assert native_conv.CONV_RELU_POOL not in str(jax.make_jaxpr(jax.grad(loss))(params))
  with custom_gradients():
    jaxpr = str(jax.make_jaxpr(jax.grad(loss))(params))
    np.testing.assert_allclose(fused.apply(params, x), want, rtol=1e-5, atol=1e-5)
  # The forward pass is the fused call alone (no full-size convolution output); the
  # backward pass convolves once (the input gradient) and takes the kernel gradient from
  # the pooled gradient.
  calls = sorted(line.split("target_name=")[1].split()[0] for line in jaxpr.splitlines()
                 if "target_name=" in line)
  assert calls == sorted([native_conv.CONV, native_conv.POOL_KERNEL_GRAD,
                          native_conv.CONV_RELU_POOL])


def test_the_seed_cnn_keeps_its_parameters_and_small_images_still_get_a_clear_error(getkey):
  x = jax.random.normal(getkey(), (2, 28, 28, 1))
  params = init(SeedCNN(), jax.random.key(0), x)["params"]
  assert sorted(params) == ["Conv_0", "Conv_1", "Conv_2", "Dense_0", "Dense_1"]
  assert sum(p.size for p in jax.tree.leaves(params)) == 93_322
  with pytest.raises(Exception, match="at least 18x18"):
    with custom_gradients():
      init(SeedCNN(conv_kernel="native"), jax.random.key(0), jnp.zeros((1, 5, 5, 1)))
