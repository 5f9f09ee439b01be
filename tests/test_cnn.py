"""The image models against the seed's equations and the Keras reference."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest


from conftest import init, maybe_jit
from jaxdl.errors import DataError
from jaxdl.models import DeepCNN, SeedCNN, count_params, flops_per_example
from jaxdl.models.layers import max_pool


def seed_convolution(x: np.ndarray, k: np.ndarray) -> np.ndarray:
  """The seed's formula y(i,j) = sum_p sum_q x(i-p+1, j-q+1) k(p,q), 1-indexed, valid part."""
  n, m = x.shape
  size = k.shape[0]
  y = np.zeros((n - size + 1, m - size + 1))
  for i in range(size, n + 1):
    for j in range(size, m + 1):
      y[i - size, j - size] = sum(x[i - p + 1 - 1, j - q + 1 - 1] * k[p - 1, q - 1]
                                  for p in range(1, size + 1) for q in range(1, size + 1))
  return y


def seed_pooling(x: np.ndarray, size: int) -> np.ndarray:
  """The seed's y(i,j) = max_p max_q x(i-p+1, j-q+1), over windows with stride ``size``."""
  rows, cols = x.shape[0] // size, x.shape[1] // size
  y = np.zeros((rows, cols))
  for a in range(1, rows + 1):
    for b in range(1, cols + 1):
      i, j = a * size, b * size  # The window ends at (i, j), 1-indexed.
      y[a - 1, b - 1] = max(x[i - p + 1 - 1, j - q + 1 - 1]
                            for p in range(1, size + 1) for q in range(1, size + 1))
  return y


def test_seed_cnn_has_the_keras_parameter_count(key):
  variables = init(SeedCNN(num_classes=10), key, jnp.zeros((1, 28, 28, 1)))
  assert count_params(variables["params"]) == 93_322


def test_seed_cnn_uses_keras_initialisation(key):
  params = init(SeedCNN(num_classes=10), key, jnp.zeros((1, 28, 28, 1)))["params"]
  for layer in params.values():
    np.testing.assert_array_equal(layer["bias"], 0.0)
  kernel = params["Conv_1"]["kernel"]  # 3x3x32x64: Glorot-uniform limit sqrt(6/(288+576)).
  limit = np.sqrt(6.0 / (3 * 3 * 32 + 3 * 3 * 64))
  assert np.abs(kernel).max() <= limit
  assert np.abs(kernel).max() > 0.95 * limit


def test_flax_convolution_is_the_seed_formula_with_a_flipped_kernel():
  """Keras and Flax compute cross-correlation; the seed writes true convolution.

  They are the same family of models: a learned kernel k is a learned flipped kernel.
  """
  rng = np.random.default_rng(0)
  x, k = rng.normal(size=(7, 6)), rng.normal(size=(3, 3))
  conv = nn.Conv(1, (3, 3), padding="VALID", use_bias=False)
  kernel = jnp.asarray(k[::-1, ::-1].copy(), jnp.float32)[:, :, None, None]
  y = conv.apply({"params": {"kernel": kernel}}, jnp.asarray(x, jnp.float32)[None, :, :, None])
  np.testing.assert_allclose(y[0, :, :, 0], seed_convolution(x, k), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(6, 6), (7, 9), (2, 5)])
def test_max_pool_is_the_seed_formula(shape):
  x = np.random.default_rng(1).normal(size=shape)
  y = max_pool(jnp.asarray(x, jnp.float32)[None, :, :, None])
  np.testing.assert_allclose(y[0, :, :, 0], seed_pooling(x, 2), rtol=1e-6)


def test_max_pool_sends_each_window_gradient_to_its_first_maximum():
  """Ties (a relu's zeros, a flat background) go to the first maximum, as in Keras and PyTorch."""
  x = np.array([[1, 3, 0, 0, 5], [3, 2, 0, 0, 5], [7, 7, 1, 1, 9]], np.float32)
  weights = np.array([[10, 20]], np.float32)
  grad = jax.grad(lambda x: jnp.sum(max_pool(x[None, :, :, None])[0, :, :, 0] * weights))(
      jnp.asarray(x))
  want = np.zeros_like(x)
  want[0, 1], want[0, 2] = 10, 20  # 3 = 3 in the first window; four zeros in the second.
  np.testing.assert_array_equal(grad, want)  # The cropped last row and column get nothing.
  tangent = jax.jvp(lambda x: max_pool(x[None, :, :, None]), (jnp.asarray(x),),
                    (jnp.asarray(np.arange(15, dtype=np.float32).reshape(3, 5)),))[1]
  np.testing.assert_array_equal(tangent[0, :, :, 0], [[1, 2]])


def test_max_pool_gradient_matches_reduce_window(key):
  x = jax.random.normal(key, (2, 8, 6, 3))
  ours = jax.grad(lambda x: jnp.sum(max_pool(x) ** 2))(x)
  reference = jax.grad(lambda x: jnp.sum(nn.max_pool(x, (2, 2), (2, 2)) ** 2))(x)
  np.testing.assert_allclose(ours, reference, rtol=1e-6)


@pytest.mark.parametrize("jit", [True, False])
@pytest.mark.parametrize("batch, classes", [(1, 10), (3, 2), (5, 7)])
def test_seed_cnn_logits_shape(getkey, jit, batch, classes):
  model = SeedCNN(num_classes=classes)
  variables = init(model, getkey(), jnp.zeros((1, 28, 28, 1)))
  logits = maybe_jit(lambda v, x: model.apply(v, x), jit)(variables, jnp.ones((batch, 28, 28, 1)))
  chex.assert_shape(logits, (batch, classes))
  chex.assert_tree_all_finite(logits)


@pytest.mark.parametrize("jit", [pytest.param(True, marks=pytest.mark.slow), False])  # Jitted: 10 s to compile.
@pytest.mark.parametrize("batch_norm, residual", [  # Batch norm's compile: 15 s under jit.
    pytest.param(True, True, marks=pytest.mark.slow),
    pytest.param(True, False, marks=pytest.mark.slow), (False, True)])
def test_deep_cnn_logits_shape(getkey, jit, batch_norm, residual):
  model = DeepCNN(num_classes=4, widths=(8, 16), blocks_per_stage=2, batch_norm=batch_norm,
                  residual=residual)
  variables = init(model, getkey(), jnp.zeros((1, 12, 12, 3)))
  logits = maybe_jit(lambda v, x: model.apply(v, x), jit)(variables, jnp.ones((2, 12, 12, 3)))
  chex.assert_shape(logits, (2, 4))


@pytest.mark.slow
def test_deep_cnn_depth_and_width_are_config_values(key):
  model = DeepCNN(widths=(8, 16, 32), blocks_per_stage=7, batch_norm=True, residual=True)
  params = init(model, key, jnp.zeros((1, 16, 16, 1)))["params"]
  convs = [name for name in jax.tree_util.tree_flatten_with_path(params)[0]
           if "Conv_0" in jax.tree_util.keystr(name[0]) and "kernel" in jax.tree_util.keystr(name[0])]
  assert len(convs) == 21


def test_deep_cnn_batch_norm_train_and_eval(key):
  model = DeepCNN(num_classes=3, widths=(4,), blocks_per_stage=1, batch_norm=True, residual=False)
  x = jax.random.normal(key, (8, 6, 6, 1)) * 3.0 + 2.0
  variables = init(model, key, x[:1])
  before = variables["batch_stats"]
  _, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
  after = updates["batch_stats"]
  # Training moves the running averages; evaluation reads them and changes nothing.
  assert not np.allclose(before["ConvBlock_0"]["BatchNorm_0"]["mean"],
                         after["ConvBlock_0"]["BatchNorm_0"]["mean"])
  trained = {"params": variables["params"], "batch_stats": after}
  alone = model.apply(trained, x[:1])
  together = model.apply(trained, x)[:1]
  np.testing.assert_allclose(alone, together, rtol=1e-5, atol=1e-6)


def test_deep_cnn_batch_norm_ignores_padding(key):
  model = DeepCNN(num_classes=3, widths=(4,), blocks_per_stage=1, batch_norm=True, residual=False)
  x = jax.random.normal(key, (4, 6, 6, 1))
  variables = init(model, key, x[:1])
  padded = jnp.concatenate([x, 100.0 * jnp.ones((4, 6, 6, 1))])
  mask = jnp.array([1.0] * 4 + [0.0] * 4)
  _, real = model.apply(variables, x, train=True, mutable=["batch_stats"])
  _, with_pad = model.apply(variables, padded, train=True, mask=mask, mutable=["batch_stats"])
  chex.assert_trees_all_close(real, with_pad, rtol=1e-5, atol=1e-6)


def test_flops_per_example_counts_the_convolutions(key):
  model = SeedCNN(num_classes=10)
  variables = init(model, key, jnp.zeros((1, 28, 28, 1)))
  flops = flops_per_example(model, variables, (28, 28, 1))
  # Multiply-adds of the three convolutions and two dense layers, 2 FLOPs each.
  macs = 26 * 26 * 9 * 32 + 11 * 11 * 9 * 32 * 64 + 3 * 3 * 9 * 64 * 64 + 576 * 64 + 64 * 10
  assert 2 * macs <= flops <= 2 * macs * 1.05


def test_seed_cnn_rejects_images_that_are_too_small(key):
  with pytest.raises(DataError, match="at least 18x18.*data.image_size"):
    init(SeedCNN(), key, jnp.zeros((1, 8, 8, 1)))
