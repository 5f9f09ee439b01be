"""Recurrent cells and layers against NumPy implementations of the seed's equations."""

import chex
from conftest import assert_gradient_matches_finite_differences, float64_params, init, maybe_jit
import jax
import jax.numpy as jnp
import numpy as np
import pytest


from jaxdl.models import (CELLS, GRUCell, LSTMCell, RecurrentLayer, RecurrentStack, SequenceModel,
                          SimpleRNNCell, TextClassifier)
from jaxdl.models.recurrent import reverse_padded


def sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def numpy_rnn(p, x, h):
  """Seed 3.3: h_t = tanh(W_hh h_{t-1} + W_xh x_t + b_h)."""
  return np.tanh(h @ p["recurrent_kernel"] + x @ p["input_projection"]["kernel"]
                 + p["input_projection"]["bias"])


def numpy_lstm(p, x, carry):
  """Seed 3.4, gate by gate, with separate W_x* and W_h* matrices."""
  c, h = carry
  wx, b, wh = p["input_projection"]["kernel"], p["input_projection"]["bias"], p["recurrent_kernel"]
  n = wh.shape[0]
  gate = lambda k: x @ wx[:, k * n:(k + 1) * n] + h @ wh[:, k * n:(k + 1) * n] + b[k * n:(k + 1) * n]
  i, f, c_tilde, o = sigmoid(gate(0)), sigmoid(gate(1)), np.tanh(gate(2)), sigmoid(gate(3))
  c = f * c + i * c_tilde
  return c, o * np.tanh(c)


def numpy_gru(p, x, h):
  wx, bx = p["input_projection"]["kernel"], p["input_projection"]["bias"]
  wh, bh = p["recurrent_kernel"], p["recurrent_bias"]
  n = wh.shape[0]
  part = lambda w, b, v, k: v @ w[:, k * n:(k + 1) * n] + b[k * n:(k + 1) * n]
  z = sigmoid(part(wx, bx, x, 0) + part(wh, bh, h, 0))
  r = sigmoid(part(wx, bx, x, 1) + part(wh, bh, h, 1))
  cand = np.tanh(part(wx, bx, x, 2) + r * part(wh, bh, h, 2))
  return z * h + (1 - z) * cand


CELL_CASES = [("rnn", SimpleRNNCell, numpy_rnn), ("lstm", LSTMCell, numpy_lstm),
              ("gru", GRUCell, numpy_gru)]


def _random_params(params, seed):
  """Non-trivial parameters (biases too), so every term of the equations matters."""
  rng = np.random.default_rng(seed)
  return jax.tree_util.tree_map(lambda p: jnp.asarray(rng.normal(0, 0.5, p.shape), p.dtype), params)


@pytest.mark.parametrize("kind, cell_class, reference", CELL_CASES)
def test_cell_matches_numpy_equations_over_several_steps(getkey, kind, cell_class, reference):
  with jax.enable_x64(True):
    cell = cell_class(hidden_size=5)
    xs = np.random.default_rng(1).normal(size=(6, 3, 4))  # [time, batch, features]
    carry = cell.initialize_carry(3)
    params = _random_params(float64_params(cell, getkey(), carry, xs[0]), 2)
    np_params = jax.tree_util.tree_map(np.asarray, params)
    carry = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), carry)
    np_carry = jax.tree_util.tree_map(np.asarray, carry)
    for x in xs:
      carry, out = cell.apply({"params": params}, carry, jnp.asarray(x))
      np_carry = reference(np_params, x, np_carry)
      np_out = np_carry[1] if kind == "lstm" else np_carry
      np.testing.assert_allclose(out, np_out, rtol=1e-12, atol=1e-12)


def test_lstm_initialisation(getkey):
  cell = LSTMCell(hidden_size=8)
  params = init(cell, getkey(), cell.initialize_carry(1), jnp.zeros((1, 3)))["params"]
  bias = params["input_projection"]["bias"]
  np.testing.assert_array_equal(bias[8:16], 1.0)  # Forget gate.
  np.testing.assert_array_equal(np.delete(bias, np.s_[8:16]), 0.0)
  kernel = params["recurrent_kernel"]  # [8, 32]: orthonormal rows.
  np.testing.assert_allclose(kernel @ kernel.T, np.eye(8), atol=1e-5)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_scanned_layer_equals_a_python_loop_over_the_cell(getkey, kind):
  layer = RecurrentLayer(CELLS[kind], 6, return_sequences=True)
  x = jax.random.normal(getkey(), (2, 9, 3))
  variables = init(layer, getkey(), x)
  outputs = layer.apply(variables, x)
  cell_class = dict((k, c) for k, c, _ in CELL_CASES)[kind]
  cell = cell_class(hidden_size=6)
  carry, expected = cell.initialize_carry(2), []
  for t in range(9):
    carry, out = cell.apply({"params": variables["params"]["cell"]}, carry, x[:, t])
    expected.append(out)
  np.testing.assert_allclose(outputs, jnp.stack(expected, 1), rtol=1e-5, atol=1e-6)
  final = RecurrentLayer(CELLS[kind], 6).apply(variables, x)
  np.testing.assert_allclose(final, expected[-1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind, reverse", [  # The quick suite: each cell once.
    pytest.param("rnn", False, marks=pytest.mark.slow), ("lstm", False), pytest.param("gru", False, marks=pytest.mark.slow),
    ("rnn", True), ("lstm", True), ("gru", True)])
def test_padded_batch_equals_each_example_alone(getkey, kind, reverse):
  lengths = np.array([7, 3, 1, 5])
  x = np.array(jax.random.normal(getkey(), (4, 7, 3)))
  for b, n in enumerate(lengths):
    x[b, n:] = 99.0  # Padding garbage must not leak.
  layer = RecurrentLayer(CELLS[kind], 4, return_sequences=True, reverse=reverse)
  variables = init(layer, getkey(), x)
  batch_out = layer.apply(variables, x, jnp.asarray(lengths))
  batch_final = layer.clone(return_sequences=False).apply(variables, x, jnp.asarray(lengths))
  for b, n in enumerate(lengths):
    alone = layer.apply(variables, x[b:b + 1, :n])
    np.testing.assert_allclose(batch_out[b, :n], alone[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(batch_out[b, n:], 0.0)
    alone_final = layer.clone(return_sequences=False).apply(variables, x[b:b + 1, :n])
    np.testing.assert_allclose(batch_final[b], alone_final[0], rtol=1e-5, atol=1e-6)


def test_reverse_layer_runs_the_sequence_backwards(getkey):
  x = jax.random.normal(getkey(), (2, 5, 3))
  forward = RecurrentLayer(LSTMCell, 4, return_sequences=True)
  variables = init(forward, getkey(), x)
  backward = forward.clone(reverse=True).apply(variables, x)
  np.testing.assert_allclose(backward, forward.apply(variables, x[:, ::-1])[:, ::-1], rtol=1e-5,
                             atol=1e-6)


def test_reverse_padded_is_an_involution_that_keeps_padding():
  x = jnp.arange(10).reshape(2, 5)
  flipped = reverse_padded(x, jnp.array([3, 5]))
  np.testing.assert_array_equal(flipped, [[2, 1, 0, 3, 4], [9, 8, 7, 6, 5]])
  np.testing.assert_array_equal(reverse_padded(flipped, jnp.array([3, 5])), x)


def test_bidirectional_concatenates_forward_and_backward(getkey):
  x = jax.random.normal(getkey(), (2, 6, 3))
  lengths = jnp.array([6, 4])
  stack = RecurrentStack(GRUCell, (5,), bidirectional=True)
  variables = init(stack, getkey(), x, lengths)
  out = stack.apply(variables, x, lengths)
  chex.assert_shape(out, (2, 10))
  p = variables["params"]
  fwd = RecurrentLayer(GRUCell, 5).apply({"params": p["forward_0"]}, x, lengths)
  bwd = RecurrentLayer(GRUCell, 5, reverse=True).apply({"params": p["backward_0"]}, x, lengths)
  np.testing.assert_allclose(out, jnp.concatenate([fwd, bwd], -1), rtol=1e-6)
  # The backward state of example 1 ends at its first token: it saw tokens 3..0.
  alone = RecurrentLayer(GRUCell, 5).apply({"params": p["backward_0"]}, x[1:, :4][:, ::-1])
  np.testing.assert_allclose(bwd[1], alone[0], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_rnn_gradient_matches_finite_differences(getkey):
  with jax.enable_x64(True):
    layer = RecurrentLayer(SimpleRNNCell, 3)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 6, 2)))
    params = float64_params(layer, getkey(), x)
    loss = lambda p: jnp.sum(layer.apply({"params": p}, x) ** 2)
    assert_gradient_matches_finite_differences(loss, params)


def test_hidden_offsets_give_the_gradient_with_respect_to_each_state(getkey):
  layer = RecurrentLayer(LSTMCell, 4)
  x = jax.random.normal(getkey(), (1, 8, 2))
  variables = init(layer, getkey(), x)
  zeros = jnp.zeros((1, 8, 4))
  np.testing.assert_allclose(layer.apply(variables, x, hidden_offsets=zeros),
                             layer.apply(variables, x), rtol=1e-6)
  grads = jax.grad(lambda o: jnp.sum(layer.apply(variables, x, hidden_offsets=o)))(zeros)
  # The last state's gradient is exactly 1 (the loss is its sum); earlier ones are smaller.
  np.testing.assert_allclose(grads[0, -1], 1.0)
  assert jnp.all(jnp.abs(grads[0, :-1]) < 1.0)


@pytest.mark.parametrize("jit", [True, False])
@pytest.mark.parametrize("cell, bidirectional", [("lstm", False), ("gru", True), ("rnn", False)])
def test_text_classifier_shapes(getkey, jit, cell, bidirectional):
  model = TextClassifier(vocab_size=50, embed_dim=8, num_classes=3, cell=CELLS[cell],
                         hidden_sizes=(6, 5), bidirectional=bidirectional)
  tokens = jnp.ones((4, 12), jnp.int32)
  variables = init(model, getkey(), tokens)
  logits = maybe_jit(lambda v, t, n: model.apply(v, t, n), jit)(variables, tokens,
                                                                jnp.array([12, 3, 1, 7]))
  chex.assert_shape(logits, (4, 3))


@pytest.mark.parametrize("jit", [True, False])
def test_sequence_regressor_outputs_one_number_per_example(getkey, jit):
  model = SequenceModel(num_outputs=1, cell=LSTMCell, hidden_sizes=(8,))
  x = jnp.ones((3, 10, 2))
  variables = init(model, getkey(), x)
  chex.assert_shape(maybe_jit(model.apply, jit)(variables, x), (3,))


def test_seed_text_model_matches_keras_parameter_count(getkey):
  # Keras: Embedding 640,000 + LSTM 33,024 + LSTM 33,024 + Dense(10) 650 = 706,698.
  model = TextClassifier(vocab_size=10_000, embed_dim=64, num_classes=10)
  variables = init(model, getkey(), jnp.ones((1, 100), jnp.int32))
  from jaxdl.models import count_params
  assert count_params(variables["params"]) == 706_698


def test_dropout_acts_on_a_one_layer_sequence_model(getkey):
  # Dropout sits before the head too, so a single recurrent layer's output is dropped out.
  model = SequenceModel(num_outputs=3, cell=LSTMCell, hidden_sizes=(8,), dropout_rate=0.5)
  x = jax.random.normal(getkey(), (4, 6, 2))
  variables = init(model, getkey(), x)
  train = [model.apply(variables, x, train=True, rngs={"dropout": getkey()}) for _ in range(2)]
  assert not np.allclose(train[0], train[1])
  np.testing.assert_array_equal(model.apply(variables, x), model.apply(variables, x))
