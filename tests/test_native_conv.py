"""jaxdl's C++ convolution kernel (models/native/conv*) against XLA's convolution.

Same math, not the same rounding: outputs and both gradients must agree with
``lax.conv_general_dilated`` to float tolerance, under ``vmap`` too (sweep
members, DP-SGD's per-example gradients), and where the kernel cannot run the
layer must fall back with at most one warning, never an error.
"""

import shutil
import warnings

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from conftest import assert_float32_close, init

from jaxdl.models import SeedCNN
from jaxdl.models.convolution import convolution
from jaxdl.models.custom_gradients import custom_gradients
from jaxdl.models.native import conv as native_conv

pytestmark = [pytest.mark.skipif(shutil.which("g++") is None, reason="no C++ compiler here"),
              pytest.mark.usefixtures("native_kernels_on")]  # On any CPU: conftest.py.


@pytest.fixture(autouse=True)
def kernel_built():
  assert native_conv.available(), "the kernel must build where g++ is installed"


def _reference(x, w, padding):
  return lax.conv_general_dilated(x, w, (1, 1), padding,
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _value_and_grads(conv, x, w, weights, padding):
  loss = lambda x, w: jnp.sum(conv(x, w, padding) * weights) + jnp.sum(jnp.sin(w))
  return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(x, w)


# Shapes that reach every path: one input channel (the first layer), output channels in
# 32-wide blocks, a 16-wide block and a scalar tail (20 = 16 + 4, 80 = 32 + 32 + 16, 7),
# pixel counts off the 12-pixel block, kernels 1x1 to 5x5 and one-sided padding.
@pytest.mark.parametrize("b, h, w, c, f, k, padding", [
    (3, 9, 9, 1, 32, 3, ((0, 0), (0, 0))),
    pytest.param(2, 7, 6, 5, 20, 3, ((1, 1), (1, 1)), marks=pytest.mark.slow),  # The quick suite: 2 cases.
    pytest.param(5, 8, 8, 3, 80, 2, ((0, 1), (1, 0)), marks=pytest.mark.slow),
    pytest.param(4, 5, 5, 7, 64, 1, ((0, 0), (0, 0)), marks=pytest.mark.slow),
    (1, 9, 11, 4, 7, 5, ((2, 2), (0, 3))),
])
def test_the_kernel_matches_xla_convolution(getkey, b, h, w, c, f, k, padding):
  x = jax.random.normal(getkey(), (b, h, w, c))
  kernel = jax.random.normal(getkey(), (k, k, c, f)) * 0.3
  weights = jax.random.normal(getkey(), (b, h + sum(padding[0]) - k + 1,
                                         w + sum(padding[1]) - k + 1, f))

  def outputs(conv, *arrays):
    return conv(*arrays[:2], padding), _value_and_grads(conv, *arrays, padding)

  got = outputs(native_conv.conv2d, x, kernel, weights)
  want32 = outputs(_reference, x, kernel, weights)
  with jax.enable_x64(True):
    want64 = outputs(_reference, *(jnp.asarray(a, jnp.float64) for a in (x, kernel, weights)))
  # The loss sums every output times its weight: terms that cancel, so its rounding is that
  # of the terms' total size (an AMD host: 1.2e-5 off float64, 4x XLA's own error 0.98e-5).
  terms = float(np.sum(np.abs(np.asarray(want64[0]) * np.asarray(weights, np.float64))))
  assert_float32_close(got, want32, want64, scales=[None, terms, None, None])


def test_per_example_gradients_and_sweep_members_match_xla(getkey):
  """Under vmap: a shared kernel folds the mapped axis into the batch; own kernels run apart."""
  x = jax.random.normal(getkey(), (4, 6, 6, 3))
  kernels = jax.random.normal(getkey(), (3, 3, 3, 3, 16)) * 0.3
  padding = ((1, 1), (1, 1))

  def loss(conv):
    return lambda x, w: jnp.sum(jnp.tanh(conv(x, w, padding)) ** 2)

  per_example = lambda conv: jax.jit(jax.vmap(jax.grad(loss(conv), 1), (0, None)))(
      x[:, None], kernels[0])
  per_member = lambda conv: jax.jit(jax.vmap(jax.grad(loss(conv), (0, 1)), (None, 0)))(
      x, kernels)
  np.testing.assert_allclose(per_example(native_conv.conv2d), per_example(_reference),
                             rtol=1e-4, atol=1e-5)
  for got, want in zip(per_member(native_conv.conv2d), per_member(_reference)):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_sweep_members_of_the_fused_layer_are_their_lone_calls_bit_for_bit(getkey):
  """Each member of a vmapped fused layer (own data, kernel and bias: a vectorized sweep) runs
  its own kernel calls, so its value and its input and kernel gradients are the lone call's
  exactly; a mixed-up member, a shared accumulator or a read past its slice would not be. The
  bias gradient is XLA's sum, which vmap may round otherwise."""
  members, padding = 3, ((1, 1), (1, 1))
  x = jax.random.normal(getkey(), (members, 8, 8, 8, 4))
  w = jax.random.normal(getkey(), (members, 3, 3, 4, 16)) * 0.3
  bias = jax.random.normal(getkey(), (members, 16)) * 0.1
  d_pooled = jax.random.normal(getkey(), (members, 8, 4, 4, 16))

  def value_and_grads(x, w, bias, d_pooled):
    layer = lambda x, w, bias: native_conv.conv_relu_max_pool(x, w, bias, padding, 2)
    pooled, vjp = jax.vjp(layer, x, w, bias)
    return pooled, *vjp(d_pooled)

  together = jax.jit(jax.vmap(value_and_grads))(x, w, bias, d_pooled)
  assert float(jnp.abs(together[0]).sum()) > 0  # Some windows pass the relu.
  for m in range(members):
    alone = jax.jit(value_and_grads)(x[m], w[m], bias[m], d_pooled[m])
    for got, want in zip(together[:3], alone[:3]):
      np.testing.assert_array_equal(got[m], want)
    np.testing.assert_allclose(together[3][m], alone[3], rtol=1e-5, atol=1e-5)


def test_padding_is_never_written_out_and_more_than_a_kernel_reaches_still_works(getkey):
  """The zeros around the input (forward) and the output gradient (input gradient) are the
  kernel's attributes, not padded arrays; padding past the kernel's reach is written out."""
  x = jax.random.normal(getkey(), (2, 6, 6, 3))
  w = jax.random.normal(getkey(), (3, 3, 3, 8))
  cases = ((((0, 0), (0, 0)), False), (((1, 1), (1, 1)), True), (((3, 0), (0, 4)), True))
  for padding, pads_in_jax in cases:
    loss = lambda x, w: jnp.sum(jnp.sin(native_conv.conv2d(x, w, padding)))
    hlo = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(x, w).as_text()
    # A padded layer pads x once, for the kernel gradient; a 'VALID' one pads nothing.
    assert ("stablehlo.pad" in hlo) == pads_in_jax, padding
    assert hlo.count(f"@{native_conv.CONV}(") == 2 and "pad_top" in hlo  # Forward, input grad.
    ref = lambda x, w: jnp.sum(jnp.sin(_reference(x, w, padding)))
    for got, want in zip(jax.grad(loss, (0, 1))(x, w), jax.grad(ref, (0, 1))(x, w)):
      np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_a_model_asking_for_the_kernel_trains_as_with_xla(getkey):
  x = jax.random.uniform(getkey(), (5, 28, 28, 1))
  labels = jnp.arange(5) % 10
  model = SeedCNN(conv_kernel="native")
  params = init(model, getkey(), x)["params"]

  def grads(model):
    def loss(p):
      logits = model.apply({"params": p}, x)
      return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(5), labels])
    with custom_gradients():  # The train step's context, where the kernel runs.
      fn = jax.jit(jax.value_and_grad(loss))
      return fn(params), str(jax.make_jaxpr(fn)(params))

  (value, got), jaxpr = grads(model)
  (ref_value, want), ref_jaxpr = grads(model.clone(conv_kernel="xla"))
  assert native_conv.CONV in jaxpr and native_conv.KERNEL_GRAD in jaxpr
  assert jaxpr.count(native_conv.CONV_RELU_POOL) == 2  # Conv -> relu -> pool, twice: fused.
  assert native_conv.CONV not in ref_jaxpr
  np.testing.assert_allclose(value, ref_value, rtol=1e-5)
  for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_outside_the_train_step_and_where_it_does_not_apply_xla_convolves(getkey):
  x = jax.random.normal(getkey(), (2, 8, 8, 3))
  w = jax.random.normal(getkey(), (3, 3, 3, 4))
  convolve = convolution("native")
  nhwc = ("NHWC", "HWIO", "NHWC")
  traced = lambda *args, **kw: str(jax.make_jaxpr(
      lambda x, w: convolve(x, w, *args, dimension_numbers=nhwc, **kw))(x, w))
  assert native_conv.CONV not in traced((1, 1), "SAME")  # Not in the train step: plain XLA.
  with custom_gradients():
    assert native_conv.CONV in traced((1, 1), "SAME")
    assert native_conv.CONV not in traced((2, 2), "SAME")  # Strided.
    assert native_conv.CONV not in traced((1, 1), "SAME", rhs_dilation=(2, 2))
  # Forward mode through a model still works: the kernel is reverse-mode only.
  module = nn.Conv(4, (3, 3), conv_general_dilated=convolution("native"))
  params = init(module, getkey(), x)
  tangent = jax.jvp(lambda x: module.apply(params, x), (x,), (jnp.ones_like(x),))[1]
  assert tangent.shape == (2, 8, 8, 4)


def test_an_unknown_kernel_name_is_refused():
  with pytest.raises(ValueError, match="unknown convolution kernel 'cudnn'; choose one of"):
    convolution("cudnn")


def test_without_a_compiler_auto_warns_once_and_convolves_with_xla(
    getkey, monkeypatch, tmp_path, fresh_build_state):
  monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
  monkeypatch.setenv("JAXDL_KERNEL_CACHE", str(tmp_path / "kernels"))
  x = jax.random.uniform(getkey(), (2, 28, 28, 1))
  model = SeedCNN(conv_kernel="auto")
  params = init(model, getkey(), x)["params"]
  grad = lambda model: jax.grad(lambda p: jnp.sum(model.apply({"params": p}, x)))(params)
  with custom_gradients():
    with pytest.warns(RuntimeWarning, match="native convolution kernel is unavailable"):
      fell_back = grad(model)
    with warnings.catch_warnings():
      warnings.simplefilter("error")  # Once: a second ask does not warn again.
      xla = grad(model.clone(conv_kernel="xla"))
      grad(model)
  for a, b in zip(jax.tree_util.tree_leaves(fell_back), jax.tree_util.tree_leaves(xla)):
    np.testing.assert_array_equal(a, b)


def test_auto_is_silent_for_bfloat16_and_native_warns(fresh_build_state):
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    assert not native_conv.usable(jnp.bfloat16, quiet=True)
  with pytest.warns(RuntimeWarning, match="float32 only, not bfloat16"):
    assert not native_conv.usable(jnp.bfloat16)
  assert native_conv.usable(jnp.float32)


@pytest.mark.parametrize("flags, setting, picked", [
    ("fpu sse avx2 fma", "auto", False), ("fpu avx2 avx512f avx512bw", "auto", True),
    ("fpu sse avx2 fma", "on", True), ("fpu avx2 avx512f", "off", False)])
def test_auto_picks_the_kernels_where_they_were_measured_faster(monkeypatch, flags, setting,
                                                                 picked):
  """Without AVX-512 the kernels ran 5-7x slower than XLA (AMD EPYC, AVX2), so 'auto' runs
  XLA there, silently; 'native' still asks for them; the run's provenance says why."""
  from jaxdl.models.native import build
  from jaxdl.training.run_folder import provenance

  monkeypatch.setattr(build, "_cpu_identity", lambda: f"model name : CPU\nflags : {flags}")
  monkeypatch.setenv("JAXDL_NATIVE_KERNELS", setting)
  chosen, why = build.auto_choice()
  assert chosen == picked and why
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # 'auto' never warns about the choice.
    assert native_conv.usable(jnp.float32, quiet=True) == picked
  assert native_conv.usable(jnp.float32)  # Asked for by name: it runs wherever it builds.
  assert provenance([])["native_kernels_auto"] == {"picked": picked, "why": why}
  if setting == "auto" and not picked:
    assert "no AVX-512" in why
