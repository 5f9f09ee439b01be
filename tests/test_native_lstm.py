"""jaxdl's C++ LSTM kernel (models/native/) against the pure-JAX layer it replaces.

Same math, not the same rounding: outputs and gradients must agree to float
tolerance, masks must hold the state exactly, and where the kernel cannot be
built the layer must fall back with one warning, never an error.
"""

import shutil
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import init

from jaxdl.models import LSTMCell, RecurrentLayer
from jaxdl.models.native import build
from jaxdl.models.native import lstm as native_lstm
from jaxdl.models.custom_gradients import custom_gradients
from jaxdl.models.lstm_scan import lstm_scan

pytestmark = [pytest.mark.skipif(shutil.which("g++") is None, reason="no C++ compiler here"),
              pytest.mark.usefixtures("native_kernels_on")]  # On any CPU: conftest.py.


@pytest.fixture(autouse=True)
def kernel_built():
  assert native_lstm.available(), "the kernel must build where g++ is installed"


def _arguments(key, t, b, d, h, lengths):
  keys = jax.random.split(key, 7)
  kernel_x = jax.random.normal(keys[0], (d, 4 * h)) * 0.4
  bias = jax.random.normal(keys[1], (4 * h,)) * 0.1
  kernel_h = jax.random.normal(keys[2], (h, 4 * h)) * 0.3
  x = jax.random.normal(keys[3], (t, b, d))
  valid = jnp.arange(t)[:, None] < jnp.asarray(lengths)[None, :]
  c0, h0 = (jax.random.normal(k, (b, h)) * 0.5 for k in keys[4:6])
  weights = jax.random.normal(keys[6], (t, b, h))
  return (kernel_x, bias, kernel_h, x, valid, c0, h0), weights


def _reference(kernel_x, bias, kernel_h, x, valid, c0, h0):
  """The pure-JAX layer: input projection, then the XLA recurrence."""
  return lstm_scan(kernel_h, x @ kernel_x + bias[None, None], valid, c0, h0)


def _value_and_grads(layer, args, weights):
  valid = args[4]

  def loss(kernel_x, bias, kernel_h, x, c0, h0):
    c_last, h_last, outputs = layer(kernel_x, bias, kernel_h, x, valid, c0, h0)
    return jnp.sum(outputs * weights) + jnp.sum(jnp.sin(c_last)) + 0.5 * jnp.sum(h_last ** 2)
  differentiable = (*args[:4], *args[5:])
  return jax.jit(jax.value_and_grad(loss, argnums=tuple(range(6))))(*differentiable)


# Shapes that reach every path of the kernel: 4H below, at and past one 64-column block,
# inputs narrower and wider than H, batches that are and are not a multiple of its 6- and
# 4-row blocks, and one time step.
@pytest.mark.parametrize("t, b, d, h, lengths", [
    (7, 4, 3, 5, [7, 3, 1, 5]),
    pytest.param(9, 11, 16, 16, [9, 9, 0, 4, 9, 2, 9, 9, 1, 7, 9], marks=pytest.mark.slow),  # Quick: 2 cases.
    pytest.param(3, 14, 70, 20, [3] * 14, marks=pytest.mark.slow),
    (1, 5, 2, 32, [1, 0, 1, 1, 1]),
])
def test_the_kernel_matches_the_xla_layer(getkey, t, b, d, h, lengths):
  args, weights = _arguments(getkey(), t, b, d, h, lengths)
  value, grads = _value_and_grads(native_lstm.lstm_layer, args, weights)
  ref_value, ref_grads = _value_and_grads(_reference, args, weights)
  np.testing.assert_allclose(value, ref_value, rtol=1e-5)
  names = ("kernel_x", "bias", "kernel_h", "x", "c0", "h0")
  for name, got, want in zip(names, grads, ref_grads):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-5, err_msg=name)
  # Where a step is not valid its input gets no gradient, exactly.
  invalid = ~np.asarray(args[4])
  np.testing.assert_array_equal(np.asarray(grads[3])[invalid], 0.0)
  # The forward pass alone: outputs zero where not valid, the final states the reference's.
  outputs, c_all, h_all, gates = native_lstm.forward(*args)
  ref = _reference(*args)
  np.testing.assert_allclose(outputs, ref[2], rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(np.asarray(outputs)[invalid], 0.0)
  np.testing.assert_allclose(c_all[-1], ref[0], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(h_all[-1], ref[1], rtol=1e-5, atol=1e-6)
  assert gates.shape == (t, b, 4 * h) and np.all(np.abs(np.asarray(gates)) <= 1)


def test_a_layer_asking_for_the_kernel_trains_as_the_xla_layer(getkey):
  x = jax.random.normal(getkey(), (6, 12, 3))
  lengths = jnp.asarray([12, 5, 1, 12, 8, 3])
  native = RecurrentLayer(LSTMCell, 8, return_sequences=True, lstm_kernel="native")
  variables = init(native, getkey(), x, lengths)

  def grads(layer):
    loss = lambda p, x: jnp.sum(jnp.tanh(layer.apply({"params": p}, x, lengths)) ** 2)
    with custom_gradients():  # The train step's context, where the kernel runs.
      fn = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
      jaxpr = str(jax.make_jaxpr(fn)(variables["params"], x))
      return fn(variables["params"], x), jaxpr

  (value, got), jaxpr = grads(native)
  (ref_value, want), ref_jaxpr = grads(native.clone(lstm_kernel="xla"))
  assert native_lstm.FORWARD in jaxpr and native_lstm.FORWARD not in ref_jaxpr
  np.testing.assert_allclose(value, ref_value, rtol=1e-5)
  for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_members_of_a_vectorized_sweep_each_get_their_own_layer(getkey):
  args, weights = _arguments(getkey(), 5, 4, 3, 8, [5, 2, 5, 1])
  kernels = jnp.stack([args[2], 0.5 * args[2], -args[2]])
  per_member = lambda layer: jax.vmap(
      lambda k: _value_and_grads(layer, (*args[:2], k, *args[3:]), weights)[1])(kernels)
  for got, want in zip(per_member(native_lstm.lstm_layer), per_member(_reference)):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-5)


def test_without_a_compiler_the_layer_warns_once_and_runs_the_xla_layer(
    getkey, monkeypatch, tmp_path, fresh_build_state):
  monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
  monkeypatch.setenv("JAXDL_KERNEL_CACHE", str(tmp_path / "kernels"))
  with pytest.warns(RuntimeWarning, match="native LSTM kernel is unavailable .*no-such-compiler"):
    assert not native_lstm.available()
  x = jax.random.normal(getkey(), (2, 4, 3))
  layer = RecurrentLayer(LSTMCell, 4, lstm_kernel="native")
  variables = init(layer, getkey(), x)
  grad = lambda layer: jax.grad(lambda p: jnp.sum(layer.apply({"params": p}, x)))(
      variables["params"])
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # Once: a second ask does not warn again.
    assert not native_lstm.usable(jnp.float32)
    with custom_gradients():
      fell_back, xla = grad(layer), grad(layer.clone(lstm_kernel="xla"))
  for a, b in zip(jax.tree_util.tree_leaves(fell_back), jax.tree_util.tree_leaves(xla)):
    np.testing.assert_array_equal(a, b)
  assert not list((tmp_path / "kernels").glob("*.so"))


def test_bfloat16_warns_and_is_not_sent_to_the_kernel(fresh_build_state):
  with pytest.warns(RuntimeWarning, match="float32 only, not bfloat16"):
    assert not native_lstm.usable(jnp.bfloat16)
  assert native_lstm.usable(jnp.float32)


def test_the_build_is_cached_by_source_flags_and_cpu(monkeypatch, tmp_path):
  monkeypatch.setenv("JAXDL_KERNEL_CACHE", str(tmp_path))
  path = build.library_path(native_lstm.SOURCE, "g++")
  assert path.parent == tmp_path and path.name.startswith("lstm_cpu-") and path.suffix == ".so"
  build.compile_library(native_lstm.SOURCE, "g++", path)
  assert path.stat().st_size > 0 and list(tmp_path.glob("*.so")) == [path]  # No partial files.
  assert not [p for p in tmp_path.iterdir() if p.is_dir()]
  monkeypatch.setattr(build, "FLAGS", (*build.FLAGS, "-DJAXDL_OTHER"))
  assert build.library_path(native_lstm.SOURCE, "g++") != path


def test_a_changed_header_is_a_new_build(tmp_path):
  """Kernels include the headers beside them (parallel.h): a change to one rebuilds."""
  source = tmp_path / "kernel_cpu.cc"
  source.write_text('#include "parallel.h"\n')
  (tmp_path / "parallel.h").write_text("// one\n")
  before = build.library_path(source, "g++")
  (tmp_path / "parallel.h").write_text("// two\n")
  assert build.library_path(source, "g++") != before
  assert (native_lstm.SOURCE.parent / "parallel.h").exists()


@pytest.mark.slow
def test_the_seed_lstm_learns_movie_reviews_as_the_xla_layer_does(tmp_path):
  """Real data: the seed LSTM on MR, one epoch each way, selected and tested alike."""
  from conftest import experiment, shared_data
  from jaxdl.training import train_and_evaluate

  shared_data("mr")
  runs = {kernel: train_and_evaluate(experiment("seed_lstm_mr", "num_epochs=1",
                                                f"model.lstm_kernel={kernel}"),
                                     tmp_path / kernel, quiet=True)
          for kernel in ("xla", "native")}
  assert runs["native"]["val_accuracy"] > 0.68  # Learned: MR is balanced, chance is 0.5.
  for key in ("val_accuracy", "test_accuracy"):  # Rounding-level differences, not learning.
    assert abs(runs["native"][key] - runs["xla"][key]) < 0.01, key
  np.testing.assert_allclose(runs["native"]["test_loss"], runs["xla"]["test_loss"], rtol=1e-3)


def test_one_call_over_all_members_is_bitwise_one_call_per_member(getkey):
  """Under vmap the kernel takes every member in one call (nested vmaps too, and arguments
  members share): each member's value and gradients are bitwise its own call's."""
  members, lengths = 3, [5, 2, 5, 1, 4, 5, 3, 5, 0, 5, 2, 1, 5]
  sets = [_arguments(getkey(), 5, 13, 3, 8, np.roll(lengths, m)) for m in range(members)]
  stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *sets)  # Every argument its own.
  grads = lambda args, weights: _value_and_grads(native_lstm.lstm_layer, args, weights)
  together = jax.jit(jax.vmap(grads))(*stacked)
  assert "while" not in str(jax.make_jaxpr(jax.vmap(grads))(*stacked))  # One call, no loop.
  for m, (args, weights) in enumerate(sets):
    alone = grads(args, weights)
    for got, want in zip(jax.tree_util.tree_leaves(together), jax.tree_util.tree_leaves(alone)):
      np.testing.assert_array_equal(got[m], want)
  # Shared arguments, and members of members (per-example gradients inside a sweep): the
  # recurrent kernel over one vmap, x over another, the rest the same for all.
  args = sets[0][0]
  kernels, xs = stacked[0][2], stacked[0][3]
  shared = lambda *over: (None, None, *over, None, None, None)
  nested = jax.jit(jax.vmap(jax.vmap(native_lstm.forward, in_axes=shared(None, 0)),
                            in_axes=shared(0, None)))
  outputs = nested(args[0], args[1], kernels, xs, *args[4:])
  assert outputs[0].shape == (members, members, 5, 13, 8)
  for i in range(members):
    for j in range(members):
      want = native_lstm.forward(args[0], args[1], kernels[i], xs[j], *args[4:])
      for got, w in zip(outputs, want):
        np.testing.assert_array_equal(got[i, j], w)
