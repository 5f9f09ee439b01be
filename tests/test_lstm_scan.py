"""The fused LSTM recurrence (hand-written backward pass) against JAX's autodiff of the scan."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import (assert_float32_close, assert_gradient_matches_finite_differences,
                      float64_params, init)

from jaxdl.models import LSTMCell, RecurrentLayer, TextClassifier
from jaxdl.models.custom_gradients import custom_gradients

LENGTHS = np.array([7, 3, 1, 5])


def padded_inputs(seed=0, batch=4, time=7, features=3):
  x = np.array(jax.random.normal(jax.random.PRNGKey(seed), (batch, time, features)))
  for b, n in enumerate(LENGTHS[:batch]):
    x[b, n:] = 99.0  # Padding garbage must reach neither outputs nor gradients.
  return jnp.asarray(x)


def value_and_grads(layer, variables, x, lengths, weights):
  """A loss that weights every output, so every cotangent path is exercised."""
  def loss(params, x):
    out = layer.apply({"params": params}, x, lengths)
    if out.ndim == 3:  # Weight the steps differently too.
      out = out * jnp.arange(1.0, out.shape[1] + 1)[None, :, None]
      return jnp.sum(out * weights[:, None, :])
    return jnp.sum(out * weights)
  return jax.value_and_grad(loss, argnums=(0, 1))(variables["params"], x)


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_fused_lstm_matches_autodiff(getkey, return_sequences, reverse, masked):
  x = padded_inputs()
  lengths = jnp.asarray(LENGTHS) if masked else None
  fused = RecurrentLayer(LSTMCell, 5, return_sequences=return_sequences, reverse=reverse)
  reference = fused.clone(lstm_vjp=False)
  variables = init(fused, getkey(), x)
  weights = jax.random.normal(getkey(), (4, 5))
  with custom_gradients():  # Where the train step uses the hand-written backward pass.
    got = jax.jit(lambda v, x: value_and_grads(fused, v, x, lengths, weights))(variables, x)
  want32 = value_and_grads(reference, variables, x, lengths, weights)
  with jax.enable_x64(True):
    as64 = lambda tree: jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), tree)
    lengths64 = jnp.asarray(LENGTHS) if masked else None  # int64 under x64, as the layer's.
    want64 = value_and_grads(reference, as64(variables), as64(x), lengths64, as64(weights))
  assert_float32_close(got, want32, want64)
  if masked:  # No gradient reaches the padding.
    for b, n in enumerate(LENGTHS):
      np.testing.assert_array_equal(got[1][1][b, n:], 0.0)


def test_the_float32_comparison_fails_on_a_missing_term_or_a_wrong_sign(getkey):
  """The tolerance of ``assert_float32_close`` is rounding, not room for a real error."""
  x = padded_inputs()
  layer = RecurrentLayer(LSTMCell, 5, return_sequences=True, lstm_vjp=False)
  variables = init(layer, getkey(), x)
  weights = jax.random.normal(getkey(), (4, 5))
  want32 = value_and_grads(layer, variables, x, jnp.asarray(LENGTHS), weights)
  with jax.enable_x64(True):
    as64 = lambda tree: jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), tree)
    want64 = value_and_grads(layer, as64(variables), as64(x), jnp.asarray(LENGTHS),
                             as64(weights))
  assert_float32_close(want32, want32, want64)
  # One sequence's last step left out of the sums (its length one shorter).
  missing = value_and_grads(layer, variables, x, jnp.asarray(LENGTHS - (LENGTHS == 5)), weights)
  with pytest.raises(AssertionError, match="exceeds"):
    assert_float32_close(missing[1], want32[1], want64[1])
  # One wrong sign, on an entry of median magnitude of the first parameter's gradient.
  leaves, tree = jax.tree_util.tree_flatten(want32[1][0])
  flat = np.asarray(leaves[0]).ravel().copy()
  flat[np.argsort(np.abs(flat))[flat.size // 2]] *= -1.0
  leaves[0] = flat.reshape(leaves[0].shape)
  with pytest.raises(AssertionError, match="exceeds"):
    assert_float32_close(jax.tree_util.tree_unflatten(tree, leaves), want32[1][0], want64[1][0])


def test_fused_lstm_gradient_matches_finite_differences(getkey):
  with jax.enable_x64(True):
    layer = RecurrentLayer(LSTMCell, 3, return_sequences=True)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 5, 2)))
    lengths = jnp.asarray([5, 3])
    params = float64_params(layer, getkey(), x)
    loss = jax.jit(lambda p: jnp.sum(jnp.sin(layer.apply({"params": p}, x, lengths))))
    with custom_gradients():
      assert_gradient_matches_finite_differences(loss, params)


def test_fused_lstm_under_vmap_matches_each_member(getkey):
  """Vectorized sweeps vmap the training step over stacked parameters."""
  x = padded_inputs()
  lengths = jnp.asarray(LENGTHS)
  layer = RecurrentLayer(LSTMCell, 4)
  members = [init(layer, getkey(), x)["params"] for _ in range(3)]
  stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *members)
  grad = lambda p: jax.grad(lambda p: jnp.sum(layer.apply({"params": p}, x, lengths) ** 2))(p)
  with custom_gradients():
    together = jax.jit(jax.vmap(grad))(stacked)
    alone_grads = [grad(params) for params in members]
  for k, alone in enumerate(alone_grads):
    for got, want in zip(jax.tree_util.tree_leaves(together), jax.tree_util.tree_leaves(alone)):
      np.testing.assert_allclose(got[k], want, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_seed_text_model_gradient_equals_the_autodiff_reference(getkey):
  """The whole seed text model: the fused LSTM changes speed, not the gradient."""
  tokens = jax.random.randint(getkey(), (8, 20), 2, 100)
  lengths = jnp.asarray([20, 17, 3, 9, 20, 1, 12, 20])
  labels = jnp.arange(8) % 10
  model = TextClassifier(cell=LSTMCell, hidden_sizes=(16, 16), vocab_size=100, embed_dim=8,
                         num_classes=10)
  params = init(model, getkey(), tokens, lengths)["params"]

  def grads(model):
    def loss(params):
      logits = model.apply({"params": params}, tokens, lengths)
      return jnp.mean(jax.nn.logsumexp(logits, -1)
                      - jnp.take_along_axis(logits, labels[:, None], -1)[:, 0])
    return jax.jit(jax.grad(loss))(params)

  with custom_gradients():
    fused = grads(model)
  reference = grads(model.clone(lstm_vjp=False))
  for got, want in zip(jax.tree_util.tree_leaves(fused), jax.tree_util.tree_leaves(reference)):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7)


def test_flops_count_every_step_of_the_fused_recurrence(getkey):
  """XLA counts a loop body once; the count must still cover all T steps."""
  from jaxdl.models import flops_per_example
  model = TextClassifier(cell=LSTMCell, hidden_sizes=(16, 16), vocab_size=100, embed_dim=8,
                         num_classes=10)
  tokens = jnp.zeros((1, 20), jnp.int32)
  variables = init(model, getkey(), tokens)
  matmuls = 20 * 2 * (8 * 64 + 16 * 64 + 16 * 64 + 16 * 64) + 2 * 16 * 10
  flops = flops_per_example(model, variables, (20,), "int32")
  assert matmuls <= flops <= 1.5 * matmuls


@pytest.mark.parametrize("rows", [8, 4096 * 2])  # One matmul, and the chunked sum.
def test_projection_gradients_equal_lax_dot_general(getkey, rows):
  from jaxdl.models.matmul import dense_dot_general
  x = jax.random.normal(getkey(), (rows // 8, 8, 16))
  w = jax.random.normal(getkey(), (16, 12))
  dims = (((2,), (0,)), ((), ()))
  weights = jax.random.normal(getkey(), (rows // 8, 8, 12))
  loss = lambda dot: lambda x, w: jnp.sum(dot(x, w, dims) * weights)
  with custom_gradients():
    ours = jax.jit(jax.grad(loss(dense_dot_general), argnums=(0, 1)))(x, w)
  theirs = jax.grad(loss(jax.lax.dot_general), argnums=(0, 1))(x, w)
  np.testing.assert_allclose(dense_dot_general(x, w, dims), jax.lax.dot_general(x, w, dims),
                             rtol=1e-6)
  for got, want in zip(ours, theirs):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
